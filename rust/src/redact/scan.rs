//! The prefilter passes and the overlap resolution. One Aho-Corasick automaton finds
//! every literal trigger ("sk-", "AKIA", "ghp_", "xoxb-", "eyJ", "-----BEGIN", "AIza",
//! "hooks.slack.com", "Bearer "); one byte-class walk finds the structural ones ('@',
//! digit runs, ':' between hex digits, '=' and ':' after a secret-naming identifier). Each trigger hands a position to a
//! hand-written, anchored validator; only those run over the text around it.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};

use super::family::Family;
use super::{generic, keys, net, numbers};

/// A detection in normalised byte offsets, before overlap resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cand {
    pub start: usize,
    pub end: usize,
    pub family: u16,
    pub rank: u8,
}

/// What a literal trigger starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    SkDash,
    Stripe,
    Aws,
    Github,
    GithubPat,
    Slack,
    SlackHook,
    Google,
    Jwt,
    Pem,
    Bearer,
}

const LITERALS: &[(&str, Trigger)] = &[
    ("sk-", Trigger::SkDash),
    ("sk_live_", Trigger::Stripe),
    ("sk_test_", Trigger::Stripe),
    ("rk_live_", Trigger::Stripe),
    ("rk_test_", Trigger::Stripe),
    ("AKIA", Trigger::Aws),
    ("ASIA", Trigger::Aws),
    ("ABIA", Trigger::Aws),
    ("ACCA", Trigger::Aws),
    ("AGPA", Trigger::Aws),
    ("AIDA", Trigger::Aws),
    ("AIPA", Trigger::Aws),
    ("ANPA", Trigger::Aws),
    ("ANVA", Trigger::Aws),
    ("AROA", Trigger::Aws),
    ("APKA", Trigger::Aws),
    ("ASCA", Trigger::Aws),
    ("ghp_", Trigger::Github),
    ("gho_", Trigger::Github),
    ("ghu_", Trigger::Github),
    ("ghs_", Trigger::Github),
    ("ghr_", Trigger::Github),
    ("github_pat_", Trigger::GithubPat),
    ("xoxa-", Trigger::Slack),
    ("xoxb-", Trigger::Slack),
    ("xoxo-", Trigger::Slack),
    ("xoxp-", Trigger::Slack),
    ("xoxr-", Trigger::Slack),
    ("xoxs-", Trigger::Slack),
    ("xapp-", Trigger::Slack),
    ("hooks.slack.com", Trigger::SlackHook),
    ("AIza", Trigger::Google),
    ("eyJ", Trigger::Jwt),
    ("-----BEGIN", Trigger::Pem),
    ("Bearer ", Trigger::Bearer),
    ("bearer ", Trigger::Bearer),
    ("BEARER ", Trigger::Bearer),
];

/// The compiled trigger automaton (case-sensitive literals).
pub struct Prefilter {
    ac: AhoCorasick,
    kinds: Vec<Trigger>,
}

impl Prefilter {
    pub fn new() -> Prefilter {
        let mut pats: Vec<&str> = Vec::new();
        let mut kinds = Vec::new();
        for (p, k) in LITERALS {
            pats.push(p);
            kinds.push(*k);
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&pats)
            .expect("static trigger patterns compile");
        Prefilter { ac, kinds }
    }
}

/// Per-call scanning state over one normalised text.
pub struct Scan<'a> {
    pub h: &'a [u8],
    pub on: &'a [bool],
    pub out: Vec<Cand>,
    /// No PEM END line starts before this offset (searched already): repeated BEGIN
    /// lines without an END cost one search, not one per line.
    pub pem_searched: usize,
}

impl Scan<'_> {
    #[inline]
    pub fn enabled(&self, f: Family) -> bool {
        self.on[f as usize]
    }

    #[inline]
    pub fn push(&mut self, f: Family, start: usize, end: usize) {
        if self.enabled(f) && end > start {
            self.out.push(Cand {
                start,
                end,
                family: f.id(),
                rank: f.rank(),
            });
        }
    }

    /// The byte at `i`, or 0 past either end.
    #[inline]
    pub fn at(&self, i: usize) -> u8 {
        self.h.get(i).copied().unwrap_or(0)
    }

    /// The byte before `i`, or 0 at the start.
    #[inline]
    pub fn before(&self, i: usize) -> u8 {
        if i == 0 {
            0
        } else {
            self.h[i - 1]
        }
    }

    /// End of the run of bytes satisfying `pred` from `i`, at most `max` long.
    #[inline]
    pub fn run(&self, i: usize, max: usize, pred: impl Fn(u8) -> bool) -> usize {
        let lim = self.h.len().min(i.saturating_add(max));
        let mut j = i;
        while j < lim && pred(self.h[j]) {
            j += 1;
        }
        j
    }
}

#[inline]
pub fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[inline]
pub fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

const C_DIGIT: u8 = 1;
const C_AT: u8 = 2;
const C_COLON: u8 = 3;
const C_EQUALS: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = C_DIGIT;
        d += 1;
    }
    t[b'@' as usize] = C_AT;
    t[b':' as usize] = C_COLON;
    t[b'=' as usize] = C_EQUALS;
    t
};

/// The next index at or after `i` whose byte is a structural trigger (a digit, ':', '='
/// or '@'), or `h.len()`. Sixteen bytes at a time: prose is mostly skipped here.
#[cfg(target_arch = "x86_64")]
fn next_trigger(h: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    while i + 16 <= h.len() {
        // SAFETY: SSE2 is part of the x86_64 baseline, and the unaligned 16-byte load
        // reads h[i..i + 16], which the loop condition keeps in bounds.
        let mask = unsafe {
            let v = _mm_loadu_si128(h.as_ptr().add(i).cast::<__m128i>());
            // '0'..='9' and ':' are 0x30..=0x3A; bytes >= 0x80 are negative and fall out.
            let range = _mm_and_si128(
                _mm_cmpgt_epi8(v, _mm_set1_epi8(0x2F)),
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x3B)),
            );
            let at = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'@' as i8));
            let eq = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'=' as i8));
            _mm_movemask_epi8(_mm_or_si128(range, _mm_or_si128(at, eq)))
        };
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    while i < h.len() && CLASS[h[i] as usize] == 0 {
        i += 1;
    }
    i
}

#[cfg(not(target_arch = "x86_64"))]
fn next_trigger(h: &[u8], mut i: usize) -> usize {
    while i < h.len() && CLASS[h[i] as usize] == 0 {
        i += 1;
    }
    i
}

/// Runs every enabled built-in detector over `h`.
pub fn scan_builtin(pf: &Prefilter, h: &[u8], on: &[bool]) -> Vec<Cand> {
    let mut s = Scan {
        h,
        on,
        out: Vec::new(),
        pem_searched: 0,
    };
    // Literal triggers.
    let mut pos = 0;
    while pos < h.len() {
        let Some(m) = pf.ac.find(Input::new(h).span(pos..h.len())) else {
            break;
        };
        let kind = pf.kinds[m.pattern().as_usize()];
        // A generic value may hold a prefixed key, so the walk resumes inside it.
        let end = match kind {
            Trigger::Bearer => generic::at_bearer(&mut s, m.start(), m.end()).and(None),
            _ => keys::at_trigger(&mut s, kind, m.start(), m.end()),
        };
        pos = end.unwrap_or(m.end()).max(m.start() + 1);
    }
    // Structural triggers.
    let want_num = [
        Family::Phone,
        Family::CreditCard,
        Family::Iban,
        Family::UsSsn,
        Family::Ipv4,
    ]
    .iter()
    .any(|f| s.enabled(*f));
    let want_email = s.enabled(Family::Email);
    let want_v6 = s.enabled(Family::Ipv6);
    let want_generic = s.enabled(Family::GenericSecret);
    let mut i = 0;
    let mut v6_done = 0;
    loop {
        i = next_trigger(h, i);
        if i >= h.len() {
            break;
        }
        match CLASS[h[i] as usize] {
            C_DIGIT => {
                let run_end = s.run(i, usize::MAX, |b| b.is_ascii_digit());
                let next = if want_num {
                    numbers::at_digits(&mut s, i, run_end)
                } else {
                    run_end
                };
                i = next.max(run_end);
            }
            C_AT => {
                i = if want_email {
                    net::at_sign(&mut s, i).max(i + 1)
                } else {
                    i + 1
                };
            }
            C_COLON => {
                if want_v6 && i >= v6_done {
                    v6_done = net::at_colon(&mut s, i).max(i + 1);
                }
                if want_generic {
                    generic::at_assign(&mut s, i);
                }
                i += 1;
            }
            C_EQUALS => {
                if want_generic {
                    generic::at_assign(&mut s, i);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    s.out
}

/// Keeps the best of overlapping candidates (lowest rank, then earliest, then longest)
/// and returns the survivors ordered by start.
pub fn resolve(mut cands: Vec<Cand>) -> Vec<Cand> {
    if cands.len() <= 1 {
        return cands;
    }
    cands.sort_unstable_by(|a, b| {
        (a.rank, a.start, std::cmp::Reverse(a.end)).cmp(&(
            b.rank,
            b.start,
            std::cmp::Reverse(b.end),
        ))
    });
    let mut kept: Vec<Cand> = Vec::with_capacity(cands.len());
    for c in cands {
        // kept is ordered by start; find the first kept span starting at or after c.start.
        let idx = kept.partition_point(|k| k.start < c.start);
        let clash_prev = idx > 0 && kept[idx - 1].end > c.start;
        let clash_next = idx < kept.len() && kept[idx].start < c.end;
        if !clash_prev && !clash_next {
            kept.insert(idx, c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(start: usize, end: usize, rank: u8) -> Cand {
        Cand {
            start,
            end,
            family: u16::from(rank),
            rank,
        }
    }

    #[test]
    fn next_trigger_agrees_with_the_class_table() {
        let text = "abcdefghijklmnopqrstuvwxyz é ü 漢字 x=1 a@b c:d ABCDEFGHIJKLMNOPQRSTUVWXYZ 9";
        let h = text.as_bytes();
        for start in 0..h.len() {
            let want = (start..h.len())
                .find(|&j| CLASS[h[j] as usize] != 0)
                .unwrap_or(h.len());
            assert_eq!(next_trigger(h, start), want, "from {start}");
        }
    }

    #[test]
    fn resolve_prefers_rank_then_orders_by_start() {
        let got = resolve(vec![c(10, 20, 18), c(12, 18, 4), c(0, 5, 11), c(4, 8, 17)]);
        assert_eq!(got, vec![c(0, 5, 11), c(12, 18, 4)]);
    }
}
