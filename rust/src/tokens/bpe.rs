//! The fast counter: `pretok` pieces, then byte-pair merges over the same ranks as the
//! reference encoder, counting parts instead of building token vectors. The merge loops
//! follow tiktoken's (`_byte_pair_merge` for short pieces, the heap variant for long
//! ones, so a huge piece stays O(n log n)), which keeps the counts identical.

use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::pretok::{Pattern, Pieces};

type Rank = u32;

/// Pieces at least this long use the heap-based merge.
const LARGE_PIECE: usize = 100;

/// Token ranks of one encoding, plus how it splits text.
pub struct FastEncoder {
    /// Keys borrow from one leaked arena holding every token's bytes back to back (the
    /// encoders are process-wide statics), so the map is ~200k small entries and no
    /// allocation per token.
    ranks: FxHashMap<&'static [u8], Rank>,
    /// Ranks of all two-byte tokens, indexed by `b0 << 8 | b1` (no hashing).
    pairs: Box<[Rank]>,
    pattern: Pattern,
}

impl FastEncoder {
    /// Builds the counter from a freshly loaded reference encoder and drops that
    /// encoder: `tiktoken-rs`'s `CoreBPE` holds the vocabulary three times (encoder,
    /// decoder, sorted tokens), which a worker must not keep for the counts it never
    /// asks of it. Only tests and benches load the reference (`Encoding::reference`).
    pub fn load(pattern: Pattern) -> FastEncoder {
        let reference = match pattern {
            Pattern::O200k => tiktoken_rs::o200k_base(),
            Pattern::Cl100k => tiktoken_rs::cl100k_base(),
        }
        .expect("the embedded tiktoken vocabulary parses");
        let encoder = FastEncoder::from_reference(&reference, pattern);
        drop(reference);
        release_free_memory();
        encoder
    }

    /// Takes the ranks out of the reference encoder (its special tokens excluded).
    pub fn from_reference(reference: &tiktoken_rs::CoreBPE, pattern: Pattern) -> FastEncoder {
        let specials: Vec<&str> = reference.special_tokens().into_iter().collect();
        let mut tokens: Vec<(Vec<u8>, Rank)> = Vec::with_capacity(210_000);
        let mut misses = 0;
        let mut rank: Rank = 0;
        // Ranks are dense; stop after a long gap past the last one.
        while misses < 1024 {
            match reference.decode_bytes(&[rank]) {
                Ok(bytes) if !specials.iter().any(|s| s.as_bytes() == bytes.as_slice()) => {
                    tokens.push((bytes, rank));
                    misses = 0;
                }
                _ => misses += 1,
            }
            rank += 1;
        }
        let mut arena = Vec::with_capacity(tokens.iter().map(|(b, _)| b.len()).sum());
        for (bytes, _) in &tokens {
            arena.extend_from_slice(bytes);
        }
        let arena: &'static [u8] = Box::leak(arena.into_boxed_slice());
        let mut ranks = FxHashMap::with_capacity_and_hasher(tokens.len(), Default::default());
        let mut pairs = vec![Rank::MAX; 1 << 16].into_boxed_slice();
        let mut at = 0;
        for (bytes, rank) in tokens {
            let key = &arena[at..at + bytes.len()];
            at += bytes.len();
            if let [b0, b1] = key[..] {
                pairs[usize::from(b0) << 8 | usize::from(b1)] = rank;
            }
            ranks.insert(key, rank);
        }
        FastEncoder {
            ranks,
            pairs,
            pattern,
        }
    }

    /// The number of tokens of `text` (special-token text is ordinary text).
    pub fn count(&self, text: &str) -> usize {
        let mut total = 0;
        let mut parts = Vec::new();
        for piece in Pieces::new(text, self.pattern) {
            total += if piece.len() == 1 || self.ranks.contains_key(piece) {
                1
            } else if piece.len() < LARGE_PIECE {
                self.merge_small(piece, &mut parts)
            } else {
                self.merge_large(piece)
            };
        }
        total
    }

    #[inline(always)]
    fn rank(&self, bytes: &[u8]) -> Rank {
        if let [b0, b1] = bytes[..] {
            return self.pairs[usize::from(b0) << 8 | usize::from(b1)];
        }
        self.ranks.get(bytes).copied().unwrap_or(Rank::MAX)
    }

    /// tiktoken's `_byte_pair_merge`: O(n·m) on a small vector; returns the part count.
    fn merge_small(&self, piece: &[u8], parts: &mut Vec<(usize, Rank)>) -> usize {
        parts.clear();
        let mut min_rank = (Rank::MAX, usize::MAX);
        for i in 0..piece.len() - 1 {
            let rank = self.rank(&piece[i..i + 2]);
            if rank < min_rank.0 {
                min_rank = (rank, i);
            }
            parts.push((i, rank));
        }
        parts.push((piece.len() - 1, Rank::MAX));
        parts.push((piece.len(), Rank::MAX));

        let get_rank = |parts: &[(usize, Rank)], i: usize| {
            if i + 3 < parts.len() {
                self.rank(&piece[parts[i].0..parts[i + 3].0])
            } else {
                Rank::MAX
            }
        };
        while min_rank.0 != Rank::MAX {
            let i = min_rank.1;
            if i > 0 {
                parts[i - 1].1 = get_rank(parts, i - 1);
            }
            parts[i].1 = get_rank(parts, i);
            parts.remove(i + 1);
            min_rank = (Rank::MAX, usize::MAX);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < min_rank.0 {
                    min_rank = (rank, i);
                }
            }
        }
        parts.len() - 1
    }

    /// tiktoken's `_byte_pair_merge_large`: a heap of candidate merges over a linked
    /// list of parts; returns the part count.
    fn merge_large(&self, piece: &[u8]) -> usize {
        #[derive(PartialEq, Eq)]
        struct Merge {
            start: usize,
            rank: Rank,
        }
        impl Ord for Merge {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                other
                    .rank
                    .cmp(&self.rank)
                    .then_with(|| other.start.cmp(&self.start))
            }
        }
        impl PartialOrd for Merge {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        struct State {
            prev: usize,
            end: usize,
            next_end: usize,
            next_rank: Rank,
        }

        let n = piece.len();
        let mut state: Vec<State> = Vec::with_capacity(n);
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n {
            let next_rank = if i + 1 < n {
                self.rank(&piece[i..i + 2])
            } else {
                Rank::MAX
            };
            if next_rank != Rank::MAX {
                heap.push(Merge {
                    start: i,
                    rank: next_rank,
                });
            }
            state.push(State {
                prev: i.wrapping_sub(1),
                end: i + 1,
                next_end: i + 2,
                next_rank,
            });
        }
        let mut parts = n;
        let potential = |state: &mut Vec<State>,
                         heap: &mut BinaryHeap<Merge>,
                         start: usize,
                         next_end: usize| {
            state[start].next_end = next_end;
            state[start].next_rank = Rank::MAX;
            if next_end <= n {
                let rank = self.rank(&piece[start..next_end]);
                if rank != Rank::MAX {
                    heap.push(Merge { start, rank });
                    state[start].next_rank = rank;
                }
            }
        };
        while let Some(left) = heap.pop() {
            if left.rank != state[left.start].next_rank {
                continue; // superseded
            }
            let left_start = left.start;
            let right_start = state[left_start].end;
            let right_end = state[left_start].next_end;
            let right_next_end = state[right_start].next_end;
            state[left_start].end = right_end;
            parts -= 1;
            potential(&mut state, &mut heap, left_start, right_next_end);
            if right_end < n {
                state[right_end].prev = left_start;
            }
            if left_start > 0 {
                let prev_start = state[left_start].prev;
                potential(&mut state, &mut heap, prev_start, right_end);
            }
            state[right_start].next_rank = Rank::MAX;
        }
        parts
    }
}

/// Hands the pages freed by a dropped reference encoder back to the OS (glibc keeps
/// freed heap memory mapped otherwise, and the worker's RSS would not shrink).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only returns free memory to the OS; it takes the
        // allocator's own locks and is safe to call from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}
