//! Content policy matching.
//!
//! Rules flow in once (at config load) as [`RuleSpec`]s and are compiled into an
//! immutable [`PolicyMatcher`]: every keyword of every rule goes into one of three keyword
//! sets (ASCII-case-insensitive, exact, and Unicode-lower-cased for non-ASCII keywords of
//! case-insensitive rules, searched in the lower-cased text), every regex is compiled
//! with the regex crate (so matching stays linear in the text), and model globs and size
//! limits are kept per rule. A check is one pass of each keyword set over the text plus
//! one search per regex; it returns at most one [`Hit`] per rule, in rule order, naming
//! the keyword, pattern or glob that fired — never the surrounding text.

mod glob;
mod grams;
mod keywords;

use regex::{Regex, RegexBuilder};

use crate::CoreError;

pub use glob::matches as glob_matches;
use keywords::{KeywordSet, KeywordSetBuilder, Owner};

/// What a rule asks the gateway to do when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    #[default]
    Block,
    Warn,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "block" => Some(Action::Block),
            "warn" => Some(Action::Warn),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Warn => "warn",
        }
    }
}

/// Which condition of a rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Keyword,
    Regex,
    Model,
    Size,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Keyword => "keyword",
            MatchKind::Regex => "regex",
            MatchKind::Model => "model",
            MatchKind::Size => "size",
        }
    }
}

/// One rule as configured. A rule matches when any of its conditions fires.
#[derive(Debug, Clone, Default)]
pub struct RuleSpec {
    pub id: String,
    pub action: Action,
    pub keywords: Vec<String>,
    pub case_sensitive: bool,
    pub whole_word: bool,
    pub regex: Vec<String>,
    pub models_allow: Vec<String>,
    pub models_deny: Vec<String>,
    pub max_bytes: Option<u64>,
    pub max_tokens: Option<u64>,
}

/// A rule that matched: its index in the rule list, which condition fired, and what fired
/// (the keyword, the regex pattern, the deny glob or the disallowed model name, or
/// `max_bytes=N` / `max_tokens=N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: usize,
    pub kind: MatchKind,
    pub detail: String,
}

/// Limits that keep a hostile or mistaken config from exhausting memory at compile time.
const REGEX_SIZE_LIMIT: usize = 16 * 1024 * 1024;
#[derive(Debug)]
struct Rule {
    id: String,
    action: Action,
    keywords: Vec<String>,
    regex: Vec<String>,
    models_allow: Vec<String>,
    models_deny: Vec<String>,
    max_bytes: Option<u64>,
    max_tokens: Option<u64>,
}

/// A user regex, searched on its own so the engine can use its literal prefilters.
#[derive(Debug)]
struct UserRegex {
    rule: u32,
    index: u32,
    regex: Regex,
}

/// The compiled, immutable rule set.
#[derive(Debug)]
pub struct PolicyMatcher {
    rules: Vec<Rule>,
    insensitive: Option<KeywordSet>,
    sensitive: Option<KeywordSet>,
    /// Non-ASCII keywords of case-insensitive rules, lower-cased; searched in the
    /// lower-cased text.
    lowered: Option<KeywordSet>,
    regexes: Vec<UserRegex>,
}

fn rule_name(spec: &RuleSpec, index: usize) -> String {
    if spec.id.is_empty() {
        format!("policy rule #{index}")
    } else {
        format!("policy rule '{}'", spec.id)
    }
}

impl PolicyMatcher {
    /// Compile `rules`. Errors name the rule: an empty or duplicate id, no conditions, an
    /// empty keyword or glob, or a regex the engine rejects.
    pub fn new(rules: Vec<RuleSpec>) -> Result<Self, CoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut insensitive = KeywordSetBuilder::default();
        let mut sensitive = KeywordSetBuilder::default();
        let mut lowered = KeywordSetBuilder::default();
        let mut regexes = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());

        for (index, spec) in rules.into_iter().enumerate() {
            let name = rule_name(&spec, index);
            if spec.id.is_empty() {
                return Err(CoreError::config(name, "id must be a non-empty string"));
            }
            if !seen.insert(spec.id.clone()) {
                return Err(CoreError::config(name, "duplicate rule id"));
            }
            if spec.keywords.is_empty()
                && spec.regex.is_empty()
                && spec.models_allow.is_empty()
                && spec.models_deny.is_empty()
                && spec.max_bytes.is_none()
                && spec.max_tokens.is_none()
            {
                return Err(CoreError::config(
                    name,
                    "has no conditions (keywords, regex, models_allow, models_deny, \
                     max_bytes or max_tokens)",
                ));
            }
            let rule = u32::try_from(index)
                .map_err(|_| CoreError::config(name.clone(), "too many rules"))?;
            for (k, keyword) in spec.keywords.iter().enumerate() {
                if keyword.is_empty() {
                    return Err(CoreError::config(
                        name,
                        "keywords must be non-empty strings",
                    ));
                }
                let owner = Owner {
                    rule,
                    keyword: k as u32,
                    whole_word: spec.whole_word,
                };
                if spec.case_sensitive {
                    sensitive.add(keyword.clone(), owner);
                } else if keyword.is_ascii() {
                    insensitive.add(keyword.to_ascii_lowercase(), owner);
                } else {
                    lowered.add(keyword.to_lowercase(), owner);
                }
            }
            for (i, pattern) in spec.regex.iter().enumerate() {
                let regex = RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        CoreError::config(name.clone(), format!("invalid regex {pattern:?}: {e}"))
                    })?;
                regexes.push(UserRegex {
                    rule,
                    index: i as u32,
                    regex,
                });
            }
            for glob in spec.models_allow.iter().chain(&spec.models_deny) {
                if glob.is_empty() {
                    return Err(CoreError::config(name, "model globs must be non-empty"));
                }
            }
            compiled.push(Rule {
                id: spec.id,
                action: spec.action,
                keywords: spec.keywords,
                regex: spec.regex,
                models_allow: spec.models_allow,
                models_deny: spec.models_deny,
                max_bytes: spec.max_bytes,
                max_tokens: spec.max_tokens,
            });
        }

        Ok(PolicyMatcher {
            rules: compiled,
            insensitive: insensitive.build(true)?,
            sensitive: sensitive.build(false)?,
            lowered: lowered.build(false)?,
            regexes,
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn rule_id(&self, rule: usize) -> &str {
        &self.rules[rule].id
    }

    pub fn action(&self, rule: usize) -> Action {
        self.rules[rule].action
    }

    /// Check `text` (and optionally the request's `model` and prompt `tokens`) against
    /// every rule. At most one hit per rule, in rule order; per rule the first condition
    /// to fire in the order keyword, regex, model, size.
    pub fn check(&self, text: &str, model: Option<&str>, tokens: Option<u64>) -> Vec<Hit> {
        let mut found: Vec<Option<(MatchKind, String)>> = vec![None; self.rules.len()];
        let keyword = |o: &Owner| self.rules[o.rule as usize].keywords[o.keyword as usize].clone();
        for set in [&self.insensitive, &self.sensitive].into_iter().flatten() {
            set.scan(text, &mut found, keyword);
        }
        if let Some(set) = &self.lowered {
            // Lower-casing the text costs an allocation: only when a rule is still open.
            if set.pending(&found) > 0 {
                let lower = if text.is_ascii() {
                    text.to_ascii_lowercase()
                } else {
                    text.to_lowercase()
                };
                set.scan(&lower, &mut found, keyword);
            }
        }
        for user in &self.regexes {
            let slot = &mut found[user.rule as usize];
            if slot.is_none() && user.regex.is_match(text) {
                let pattern = &self.rules[user.rule as usize].regex[user.index as usize];
                *slot = Some((MatchKind::Regex, pattern.clone()));
            }
        }
        for (rule, slot) in self.rules.iter().zip(found.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            if let Some(model) = model {
                if let Some(glob) = rule.models_deny.iter().find(|g| glob_matches(g, model)) {
                    *slot = Some((MatchKind::Model, glob.clone()));
                    continue;
                }
                if !rule.models_allow.is_empty()
                    && !rule.models_allow.iter().any(|g| glob_matches(g, model))
                {
                    *slot = Some((MatchKind::Model, model.to_owned()));
                    continue;
                }
            }
            if let Some(max) = rule.max_bytes {
                if text.len() as u64 > max {
                    *slot = Some((MatchKind::Size, format!("max_bytes={max}")));
                    continue;
                }
            }
            if let (Some(max), Some(tokens)) = (rule.max_tokens, tokens) {
                if tokens > max {
                    *slot = Some((MatchKind::Size, format!("max_tokens={max}")));
                }
            }
        }
        found
            .into_iter()
            .enumerate()
            .filter_map(|(rule, slot)| slot.map(|(kind, detail)| Hit { rule, kind, detail }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::keywords::whole_word_at;
    use super::*;

    fn rule(id: &str) -> RuleSpec {
        RuleSpec {
            id: id.to_owned(),
            ..RuleSpec::default()
        }
    }

    fn kw(id: &str, words: &[&str]) -> RuleSpec {
        RuleSpec {
            keywords: words.iter().map(|w| (*w).to_owned()).collect(),
            ..rule(id)
        }
    }

    fn ids(m: &PolicyMatcher, hits: &[Hit]) -> Vec<String> {
        hits.iter().map(|h| m.rule_id(h.rule).to_owned()).collect()
    }

    #[test]
    fn keywords_case_insensitive_by_default() {
        let m = PolicyMatcher::new(vec![kw("a", &["Secret Plan"])]).unwrap();
        let hits = m.check("the SECRET plan is", None, None);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].kind, MatchKind::Keyword);
        assert_eq!(hits[0].detail, "Secret Plan");
        assert!(m.check("secret-plan", None, None).is_empty());
    }

    #[test]
    fn case_sensitive_and_whole_word() {
        let mut cs = kw("cs", &["Bomb"]);
        cs.case_sensitive = true;
        let mut ww = kw("ww", &["bomb"]);
        ww.whole_word = true;
        let m = PolicyMatcher::new(vec![cs, ww]).unwrap();
        assert!(m.check("a bomber", None, None).is_empty());
        assert_eq!(ids(&m, &m.check("a bomb!", None, None)), ["ww"]);
        assert_eq!(ids(&m, &m.check("Bomb.", None, None)), ["cs", "ww"]);
        assert_eq!(ids(&m, &m.check("Bombers", None, None)), ["cs"]);
        assert_eq!(ids(&m, &m.check("_bomb", None, None)), Vec::<String>::new());
    }

    #[test]
    fn overlapping_keywords_of_different_rules_both_fire() {
        let mut a = kw("a", &["bomber"]);
        a.whole_word = true;
        let mut b = kw("b", &["bomb"]);
        b.whole_word = false;
        let m = PolicyMatcher::new(vec![a, b, kw("c", &["omb"])]).unwrap();
        assert_eq!(ids(&m, &m.check("x bomber y", None, None)), ["a", "b", "c"]);
    }

    #[test]
    fn a_rejected_first_hit_does_not_hide_later_ones() {
        let mut ww = kw("ww", &["bomb"]);
        ww.whole_word = true;
        let m = PolicyMatcher::new(vec![ww, kw("long", &["xbombx"])]).unwrap();
        assert_eq!(ids(&m, &m.check("_bomb then bomb", None, None)), ["ww"]);
        assert_eq!(ids(&m, &m.check("abomb xbombx", None, None)), ["long"]);
    }

    #[test]
    fn large_keyword_sets_agree_with_small_ones() {
        // 200 keywords take the 4-gram index; the same keywords one rule at a time (with
        // a few short ones) are checked against a brute-force reference.
        let words: Vec<String> = (0..200).map(|i| format!("kw{i:03}x")).collect();
        let mut rules: Vec<RuleSpec> = words
            .chunks(10)
            .enumerate()
            .map(|(r, chunk)| RuleSpec {
                id: format!("r{r}"),
                keywords: chunk.to_vec(),
                whole_word: r % 2 == 1,
                case_sensitive: r % 3 == 2,
                ..RuleSpec::default()
            })
            .collect();
        rules.push(kw("short", &["zq"]));
        let m = PolicyMatcher::new(rules.clone()).unwrap();
        assert!(m.insensitive.as_ref().unwrap().grams.is_some());
        for text in [
            "nothing here",
            "KW005X and kw017x",
            "xkw031x kw033x_ kw045X.",
            "kw199x",
            "zq kw100xkw101x",
            "Kw062x kw062x",
        ] {
            let expected: Vec<String> = rules
                .iter()
                .filter(|r| {
                    r.keywords.iter().any(|k| {
                        let (t, k) = if r.case_sensitive {
                            (text.to_owned(), k.clone())
                        } else {
                            (text.to_ascii_lowercase(), k.to_ascii_lowercase())
                        };
                        t.match_indices(&k)
                            .any(|(at, _)| !r.whole_word || whole_word_at(&t, at, at + k.len()))
                    })
                })
                .map(|r| r.id.clone())
                .collect();
            assert_eq!(ids(&m, &m.check(text, None, None)), expected, "{text}");
        }
    }

    #[test]
    fn one_hit_per_rule_in_rule_order() {
        let m = PolicyMatcher::new(vec![kw("z", &["beta"]), kw("a", &["alpha", "beta"])]).unwrap();
        let hits = m.check("alpha beta alpha beta", None, None);
        assert_eq!(ids(&m, &hits), ["z", "a"]);
        assert_eq!(hits[1].detail, "alpha");
    }

    #[test]
    fn unicode_keywords_fold_case() {
        let mut ww = kw("ww", &["straße"]);
        ww.whole_word = true;
        let m = PolicyMatcher::new(vec![kw("u", &["Über"]), ww]).unwrap();
        assert_eq!(ids(&m, &m.check("ÜBER alles", None, None)), ["u"]);
        assert_eq!(
            ids(&m, &m.check("die STRASSE", None, None)),
            Vec::<String>::new()
        );
        assert_eq!(ids(&m, &m.check("die STRAßE", None, None)), ["ww"]);
        assert!(m.check("hauptstraßen", None, None).is_empty());
    }

    #[test]
    fn many_non_ascii_keywords_compile_fast_and_match() {
        let words: Vec<String> = (0..2000).map(|i| format!("слово{i}ъ")).collect();
        let start = std::time::Instant::now();
        let mut ww = kw("ru", &[]);
        ww.keywords = words;
        ww.whole_word = true;
        let m = PolicyMatcher::new(vec![ww]).unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let hits = m.check("Это СЛОВО1234Ъ, да", None, None);
        assert_eq!(hits[0].detail, "слово1234ъ");
        assert!(m.check("этослово1234ъ", None, None).is_empty());
        assert!(m.check("слово12345ъ", None, None).is_empty());
    }

    #[test]
    fn regexes_and_invalid_regex() {
        let mut r = rule("ssn");
        r.regex = vec![r"\b\d{3}-\d{2}-\d{4}\b".to_owned()];
        let m = PolicyMatcher::new(vec![r]).unwrap();
        let hits = m.check("my ssn is 123-45-6789", None, None);
        assert_eq!(hits[0].kind, MatchKind::Regex);
        assert_eq!(hits[0].detail, r"\b\d{3}-\d{2}-\d{4}\b");
        let mut bad = rule("broken");
        bad.regex = vec!["(unclosed".to_owned()];
        let err = PolicyMatcher::new(vec![bad]).unwrap_err().to_string();
        assert!(err.contains("'broken'"), "{err}");
        // look-around is not in the linear-time engine: rejected, not slow
        let mut look = rule("look");
        look.regex = vec!["(?=x)".to_owned()];
        assert!(PolicyMatcher::new(vec![look]).is_err());
    }

    #[test]
    fn models_and_sizes() {
        let mut allow = rule("allow");
        allow.models_allow = vec!["gpt-4o*".to_owned()];
        let mut deny = rule("deny");
        deny.models_deny = vec!["*mini*".to_owned()];
        let mut size = rule("size");
        size.max_bytes = Some(5);
        size.max_tokens = Some(100);
        let m = PolicyMatcher::new(vec![allow, deny, size]).unwrap();
        assert!(m.check("hi", Some("gpt-4o"), Some(10)).is_empty());
        let hits = m.check("hi", Some("gpt-4o-mini"), None);
        assert_eq!(ids(&m, &hits), ["deny"]);
        assert_eq!(hits[0].detail, "*mini*");
        let hits = m.check("hi", Some("claude-3-5-sonnet"), Some(101));
        assert_eq!(ids(&m, &hits), ["allow", "size"]);
        assert_eq!(hits[0].detail, "claude-3-5-sonnet");
        assert_eq!(hits[1].detail, "max_tokens=100");
        let hits = m.check("hello!", None, None);
        assert_eq!(hits[0].detail, "max_bytes=5");
        assert!(m.check("hello", None, None).is_empty());
    }

    #[test]
    fn bad_rules_are_named() {
        let err = |rules: Vec<RuleSpec>| PolicyMatcher::new(rules).unwrap_err().to_string();
        assert!(err(vec![rule("empty")]).contains("'empty'"));
        assert!(err(vec![kw("d", &["x"]), kw("d", &["y"])]).contains("duplicate"));
        assert!(err(vec![kw("e", &[""])]).contains("'e'"));
        assert!(err(vec![kw("", &["x"])]).contains("#0"));
    }

    #[test]
    fn duplicate_keywords_across_rules() {
        let m = PolicyMatcher::new(vec![kw("a", &["dup"]), kw("b", &["DUP"])]).unwrap();
        assert_eq!(ids(&m, &m.check("a dup", None, None)), ["a", "b"]);
        assert_eq!(m.rule_count(), 2);
    }
}
