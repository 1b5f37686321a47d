//! Keyword search for the policy matcher: each distinct keyword of a case mode maps to
//! the rule keywords it stands for; small sets and short keywords go through an
//! Aho-Corasick DFA, large sets of 4+ byte keywords through the sampled 4-gram index.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind as AcMatchKind};

use super::grams::{self, GramIndex};
use super::MatchKind;
use crate::CoreError;

/// Above this many keyword bytes the automaton is left as an NFA rather than a DFA.
const DFA_PATTERN_BYTES: usize = 1 << 20;
/// From this many keywords of 4+ bytes on, they go into the sampled 4-gram index; fewer
/// are faster in the automaton (which then has a SIMD prefilter).
const GRAM_INDEX_PATTERNS: usize = 64;

#[derive(Debug, Clone, Copy)]
pub(super) struct Owner {
    pub rule: u32,
    pub keyword: u32,
    pub whole_word: bool,
}

#[derive(Debug)]
pub(super) struct KeywordSet {
    /// For each distinct pattern, the rule keywords it stands for.
    owners: Vec<Vec<Owner>>,
    /// The distinct rules with a keyword here.
    rules: Vec<u32>,
    /// The automaton over the patterns the gram index does not hold (all of them for
    /// small sets), the pattern id of each of its patterns, and its longest pattern.
    ac: Option<(AhoCorasick, Vec<u32>, usize)>,
    pub(super) grams: Option<GramIndex>,
}

#[derive(Default)]
pub(super) struct KeywordSetBuilder {
    patterns: Vec<String>,
    index: std::collections::HashMap<String, usize>,
    owners: Vec<Vec<Owner>>,
}

impl KeywordSetBuilder {
    pub(super) fn add(&mut self, key: String, owner: Owner) {
        let slot = match self.index.get(&key) {
            Some(&slot) => slot,
            None => {
                self.patterns.push(key.clone());
                self.owners.push(Vec::new());
                self.index.insert(key, self.patterns.len() - 1);
                self.patterns.len() - 1
            }
        };
        self.owners[slot].push(owner);
    }

    pub(super) fn build(self, case_insensitive: bool) -> Result<Option<KeywordSet>, CoreError> {
        if self.patterns.is_empty() {
            return Ok(None);
        }
        let long = self
            .patterns
            .iter()
            .filter(|p| p.len() >= grams::MIN_LEN)
            .count();
        let mut gram_index = None;
        if long >= GRAM_INDEX_PATTERNS {
            let long_patterns = self
                .patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| p.len() >= grams::MIN_LEN)
                .map(|(id, p)| (id as u32, p.as_bytes().to_vec()))
                .collect();
            let index = GramIndex::new(long_patterns, case_insensitive);
            if !index.crowded() {
                gram_index = Some(index);
            }
        }
        let mut ac_patterns = Vec::new();
        let mut ac_ids = Vec::new();
        for (id, pattern) in self.patterns.iter().enumerate() {
            if gram_index.is_none() || pattern.len() < grams::MIN_LEN {
                ac_patterns.push(pattern.as_str());
                ac_ids.push(id as u32);
            }
        }
        let ac = if ac_patterns.is_empty() {
            None
        } else {
            let max_len = ac_patterns.iter().map(|p| p.len()).max().unwrap_or(0);
            Some((automaton(&ac_patterns, case_insensitive)?, ac_ids, max_len))
        };
        let mut rules: Vec<u32> = self.owners.iter().flatten().map(|o| o.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        Ok(Some(KeywordSet {
            owners: self.owners,
            rules,
            ac,
            grams: gram_index,
        }))
    }
}

fn automaton(patterns: &[&str], case_insensitive: bool) -> Result<AhoCorasick, CoreError> {
    let bytes: usize = patterns.iter().map(|p| p.len()).sum();
    let mut builder = AhoCorasick::builder();
    builder
        .match_kind(AcMatchKind::Standard)
        .ascii_case_insensitive(case_insensitive);
    if bytes <= DFA_PATTERN_BYTES {
        // A DFA too large for the automaton's own limits falls back to the NFA below.
        let dfa = builder
            .clone()
            .kind(Some(AhoCorasickKind::DFA))
            .build(patterns);
        if let Ok(ac) = dfa {
            return Ok(ac);
        }
    }
    builder
        .build(patterns)
        .map_err(|e| CoreError::config("policy keywords", e.to_string()))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `text[start..end]` stands as a whole word: no word character touches it.
pub(super) fn whole_word_at(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
}

impl KeywordSet {
    /// How many rules with a keyword here have no match in `found` yet.
    pub(super) fn pending(&self, found: &[Option<(MatchKind, String)>]) -> usize {
        self.rules
            .iter()
            .filter(|&&r| found[r as usize].is_none())
            .count()
    }

    /// Record, for every rule whose slot in `found` is still empty, the first of its
    /// keywords that occurs in `text` (honouring whole-word), as `keyword(owner)` names it.
    pub(super) fn scan(
        &self,
        text: &str,
        found: &mut [Option<(MatchKind, String)>],
        keyword: impl Fn(&Owner) -> String,
    ) {
        // Rules with a keyword here that have not matched yet: stop early once none is left.
        let mut pending = self.pending(found);
        if pending == 0 {
            return;
        }
        let mut record = |pattern: u32, start: usize, end: usize| -> bool {
            for owner in &self.owners[pattern as usize] {
                let slot = &mut found[owner.rule as usize];
                if slot.is_some() || (owner.whole_word && !whole_word_at(text, start, end)) {
                    continue;
                }
                *slot = Some((MatchKind::Keyword, keyword(owner)));
                pending -= 1;
            }
            pending == 0
        };
        if let Some((ac, ids, max_len)) = &self.ac {
            // Most texts match nothing: one plain search (the automaton's fastest loop)
            // answers that. Only after a hit does the overlapping walk start, from the
            // earliest place a match ending at or after the first one can begin.
            if let Some(first) = ac.find(text) {
                let from = first.end().saturating_sub(*max_len);
                let input = aho_corasick::Input::new(text).span(from..text.len());
                for m in ac.find_overlapping_iter(input) {
                    if record(ids[m.pattern().as_usize()], m.start(), m.end()) {
                        return;
                    }
                }
            }
        }
        if let Some(grams) = &self.grams {
            grams.scan(text.as_bytes(), record);
        }
    }
}
