//! A sampled 4-gram index for large keyword sets (every keyword at least 4 bytes long).
//!
//! An Aho-Corasick DFA walks the text one dependent table lookup per byte; with thousands
//! of keywords its tables outgrow the L1 cache and each byte waits on memory. This index
//! instead looks at every `stride`-th position of the text, folds the 4 bytes there into a
//! `u32`, and tests one bit of a bitmap: the loads are independent, so the CPU overlaps
//! them. Only when a bit is set are the keywords with that 4-gram at that offset compared
//! byte for byte. With `stride = shortest keyword − 3`, every occurrence of every keyword
//! covers exactly one sampled position, so each occurrence is reported exactly once
//! (the Wu–Manber sampling argument).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Keywords shorter than this stay with the Aho-Corasick automaton.
pub const MIN_LEN: usize = 4;
const MAX_STRIDE: usize = 8;
const CROWDED_ENTRIES_PER_GRAM: usize = 4;

/// A multiplicative hasher for `u32` keys (the keys are already well mixed by folding).
#[derive(Default)]
struct GramHasher(u64);

impl Hasher for GramHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Debug)]
pub struct GramIndex {
    fold: bool,
    stride: usize,
    shift: u32,
    bits: Vec<u64>,
    /// Folded 4-gram → (first, count) into `entries`.
    table: HashMap<u32, (u32, u32), BuildHasherDefault<GramHasher>>,
    /// (pattern id, offset of the 4-gram inside the pattern).
    entries: Vec<(u32, u8)>,
    patterns: Vec<Box<[u8]>>,
    ids: Vec<u32>,
}

#[inline]
fn gram(bytes: &[u8], at: usize, fold: bool) -> u32 {
    let g = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    // OR-ing 0x20 lower-cases ASCII letters; it also merges a few non-letters, which only
    // adds candidates that the byte comparison then rejects.
    if fold {
        g | 0x2020_2020
    } else {
        g
    }
}

#[inline]
fn slot(g: u32, shift: u32) -> usize {
    (g.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

impl GramIndex {
    /// Index `patterns` (each with its caller's id); `fold` compares ASCII letters
    /// case-insensitively. Every pattern must be at least [`MIN_LEN`] bytes.
    pub fn new(patterns: Vec<(u32, Vec<u8>)>, fold: bool) -> Self {
        let min_len = patterns
            .iter()
            .map(|(_, p)| p.len())
            .min()
            .unwrap_or(MIN_LEN);
        debug_assert!(min_len >= MIN_LEN);
        let stride = (min_len + 1 - MIN_LEN).clamp(1, MAX_STRIDE);
        let count = patterns.len() * stride;
        // About 64 bits per entry keeps false candidates near 1.5 %.
        let log2 = (count.max(1) * 64)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(12, 26);
        let mut bits = vec![0u64; (1usize << log2) / 64];
        let shift = 32 - log2;

        let mut grouped: HashMap<u32, Vec<(u32, u8)>, BuildHasherDefault<GramHasher>> =
            HashMap::default();
        let mut stored = Vec::with_capacity(patterns.len());
        let mut ids = Vec::with_capacity(patterns.len());
        for (index, (id, pattern)) in patterns.into_iter().enumerate() {
            for offset in 0..stride {
                let g = gram(&pattern, offset, fold);
                let s = slot(g, shift);
                bits[s / 64] |= 1 << (s % 64);
                grouped
                    .entry(g)
                    .or_default()
                    .push((index as u32, offset as u8));
            }
            stored.push(pattern.into_boxed_slice());
            ids.push(id);
        }
        let mut table = HashMap::with_capacity_and_hasher(grouped.len(), Default::default());
        let mut entries = Vec::with_capacity(count);
        for (g, list) in grouped {
            table.insert(g, (entries.len() as u32, list.len() as u32));
            entries.extend(list);
        }
        GramIndex {
            fold,
            stride,
            shift,
            bits,
            table,
            entries,
            patterns: stored,
            ids,
        }
    }

    /// Whether the keywords share so few distinct 4-grams (small alphabets, two-byte
    /// scripts) that most sampled positions would be candidates with long lists to
    /// verify; the automaton is then the faster choice.
    pub fn crowded(&self) -> bool {
        self.entries.len() > CROWDED_ENTRIES_PER_GRAM * self.table.len()
    }

    /// Call `found(id, start, end)` for every occurrence of every pattern in `text`, in
    /// roughly increasing order of position; stop early when it returns `true`.
    pub fn scan(&self, text: &[u8], mut found: impl FnMut(u32, usize, usize) -> bool) {
        if text.len() < MIN_LEN {
            return;
        }
        let last = text.len() - MIN_LEN;
        let mut i = 0;
        while i <= last {
            let g = gram(text, i, self.fold);
            let s = slot(g, self.shift);
            if self.bits[s / 64] & (1 << (s % 64)) != 0 && self.candidates(text, i, g, &mut found) {
                return;
            }
            i += self.stride;
        }
    }

    #[cold]
    fn candidates(
        &self,
        text: &[u8],
        at: usize,
        g: u32,
        found: &mut impl FnMut(u32, usize, usize) -> bool,
    ) -> bool {
        let Some(&(first, count)) = self.table.get(&g) else {
            return false;
        };
        for &(index, offset) in &self.entries[first as usize..(first + count) as usize] {
            let Some(start) = at.checked_sub(usize::from(offset)) else {
                continue;
            };
            let pattern = &self.patterns[index as usize];
            let end = start + pattern.len();
            let Some(window) = text.get(start..end) else {
                continue;
            };
            let same = if self.fold {
                window.eq_ignore_ascii_case(pattern)
            } else {
                window == &pattern[..]
            };
            if same && found(self.ids[index as usize], start, end) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occurrences(index: &GramIndex, text: &str) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        index.scan(text.as_bytes(), |id, start, _| {
            out.push((id, start));
            false
        });
        out.sort_unstable();
        out
    }

    /// An index of `patterns`, each pattern's id its position.
    fn index_of(patterns: &[&str], fold: bool) -> GramIndex {
        GramIndex::new(
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| (i as u32, p.as_bytes().to_vec()))
                .collect(),
            fold,
        )
    }

    fn naive(patterns: &[&str], text: &str, fold: bool) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        let t = text.as_bytes();
        for (id, p) in patterns.iter().enumerate() {
            let p = p.as_bytes();
            for start in 0..=t.len().saturating_sub(p.len()) {
                let w = &t[start..(start + p.len()).min(t.len())];
                if w.len() == p.len()
                    && (if fold {
                        w.eq_ignore_ascii_case(p)
                    } else {
                        w == p
                    })
                {
                    out.push((id as u32, start));
                }
            }
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn finds_every_occurrence_once() {
        let patterns = ["abcd", "bcdef", "needle", "NeedleS", "dddd", "a`bc"];
        let text = "xxabcdefg needles NEEDLE ddddddd A@BC a`bcd";
        for fold in [false, true] {
            let index = index_of(&patterns, fold);
            assert_eq!(
                occurrences(&index, text),
                naive(&patterns, text, fold),
                "fold={fold}"
            );
        }
    }

    #[test]
    fn longer_minimum_uses_a_stride() {
        let patterns = ["secret-plan", "password123", "topsecret"];
        let index = index_of(&patterns, true);
        assert_eq!(index.stride, 6);
        for shift in 0..12 {
            let text = format!("{}TopSecret secret-plan x password123", "-".repeat(shift));
            assert_eq!(occurrences(&index, &text), naive(&patterns, &text, true));
        }
    }

    #[test]
    fn crowding() {
        let spread: Vec<(u32, Vec<u8>)> = (0..500u32)
            .map(|i| (i, format!("w{i:04}q").into_bytes()))
            .collect();
        assert!(!GramIndex::new(spread, false).crowded());
        let narrow: Vec<(u32, Vec<u8>)> = (0..500u32)
            .map(|i| {
                (
                    i,
                    format!("abababab{}", "ab".repeat(i as usize % 7)).into_bytes(),
                )
            })
            .collect();
        assert!(GramIndex::new(narrow, false).crowded());
    }

    #[test]
    fn stops_when_told() {
        let index = GramIndex::new(vec![(7, b"word".to_vec())], false);
        let mut seen = 0;
        index.scan(b"word word word", |id, _, _| {
            assert_eq!(id, 7);
            seen += 1;
            true
        });
        assert_eq!(seen, 1);
    }
}
