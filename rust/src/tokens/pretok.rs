//! A hand-written pre-tokeniser that splits text exactly as the o200k_base and
//! cl100k_base regexes do under their backtracking (fancy-regex) semantics, without a
//! regex engine: one pass over the UTF-8 bytes with a code-point class table.
//!
//! The Unicode classes (`\p{L}`, `\p{N}`, the upper/lower letter groups, `\s`) come from
//! `regex-syntax`, the tables the reference regexes themselves are built from, so the
//! two agree on every code point. Each branch below names the regex alternative it
//! stands for; `tests` and the crate's equivalence tests hold the splits and counts
//! against the reference encoder.

use std::sync::LazyLock;

/// `\p{L}`
const L: u8 = 1;
/// `\p{N}`
const N: u8 = 2;
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`
const UP: u8 = 4;
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`
const LO: u8 = 8;
/// `\s` (Unicode White_Space)
const WS: u8 = 16;

/// One class byte per code point (1.1 MB, built once).
static CLASSES: LazyLock<Box<[u8]>> = LazyLock::new(|| {
    let mut table = vec![0u8; 0x11_0000].into_boxed_slice();
    for (pattern, flag) in [
        (r"\p{L}", L),
        (r"\p{N}", N),
        (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", UP),
        (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", LO),
        (r"\s", WS),
    ] {
        let hir = regex_syntax::parse(pattern).expect("built-in class pattern");
        let regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(class)) =
            hir.kind()
        else {
            unreachable!("{pattern} is a Unicode class")
        };
        for range in class.ranges() {
            for cp in u32::from(range.start())..=u32::from(range.end()) {
                table[cp as usize] |= flag;
            }
        }
    }
    table
});

/// Builds the class table now (part of the tokenizer warm-up).
pub fn warm_up() {
    LazyLock::force(&CLASSES);
}

/// Which pattern to split by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    O200k,
    Cl100k,
}

/// Decodes the code point at `i` of valid UTF-8: (code point, byte length).
#[inline(always)]
fn decode(s: &[u8], i: usize) -> (u32, usize) {
    let b0 = s[i];
    if b0 < 0x80 {
        return (u32::from(b0), 1);
    }
    let cont = |k: usize| u32::from(s[i + k] & 0x3f);
    if b0 < 0xe0 {
        (u32::from(b0 & 0x1f) << 6 | cont(1), 2)
    } else if b0 < 0xf0 {
        (u32::from(b0 & 0x0f) << 12 | cont(1) << 6 | cont(2), 3)
    } else {
        (
            u32::from(b0 & 0x07) << 18 | cont(1) << 12 | cont(2) << 6 | cont(3),
            4,
        )
    }
}

/// Splits `text` into the pieces the encoding's regex would find.
pub struct Pieces<'a> {
    s: &'a [u8],
    pos: usize,
    pattern: Pattern,
    classes: &'static [u8],
}

impl<'a> Pieces<'a> {
    pub fn new(text: &'a str, pattern: Pattern) -> Pieces<'a> {
        Pieces {
            s: text.as_bytes(),
            pos: 0,
            pattern,
            classes: &CLASSES,
        }
    }

    /// (class, code point, byte length) of the char at `i`, or None at the end.
    #[inline(always)]
    fn at(&self, i: usize) -> Option<(u8, u32, usize)> {
        if i >= self.s.len() {
            return None;
        }
        let (cp, len) = decode(self.s, i);
        Some((self.classes[cp as usize], cp, len))
    }

    #[inline(always)]
    fn has(&self, i: usize, flag: u8) -> bool {
        matches!(self.at(i), Some((c, _, _)) if c & flag != 0)
    }

    /// End of the run of chars with `flag` starting at `i`.
    #[inline(always)]
    fn run(&self, mut i: usize, flag: u8) -> usize {
        while let Some((c, _, len)) = self.at(i) {
            if c & flag == 0 {
                break;
            }
            i += len;
        }
        i
    }

    /// `[^\s\p{L}\p{N}]`
    #[inline(always)]
    fn is_punct(&self, i: usize) -> bool {
        matches!(self.at(i), Some((c, _, _)) if c & (WS | L | N) == 0)
    }

    /// End of a run of "punctuation" (`[^\s\p{L}\p{N}]+`) starting at `i`.
    fn punct_run(&self, mut i: usize) -> usize {
        while let Some((c, _, len)) = self.at(i) {
            if c & (WS | L | N) != 0 {
                break;
            }
            i += len;
        }
        i
    }

    /// End of a run of bytes from `set` (all ASCII) starting at `i`.
    fn ascii_run(&self, mut i: usize, set: &[u8]) -> usize {
        while i < self.s.len() && set.contains(&self.s[i]) {
            i += 1;
        }
        i
    }

    /// `\s+` from `i`: (end of run, start of its last char, end of its last `\r`/`\n`).
    fn space_run(&self, mut i: usize) -> (usize, usize, Option<usize>) {
        let mut last = i;
        let mut crlf = None;
        while let Some((c, cp, len)) = self.at(i) {
            if c & WS == 0 {
                break;
            }
            last = i;
            i += len;
            if cp == u32::from(b'\r') || cp == u32::from(b'\n') {
                crlf = Some(i);
            }
        }
        (i, last, crlf)
    }

    /// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` from `q`, backtracking.
    fn upper_star_lower_plus(&self, q: usize) -> Option<usize> {
        let mut i = q;
        let mut last_lower_end = None;
        while let Some((c, _, len)) = self.at(i) {
            if c & UP == 0 {
                break;
            }
            i += len;
            if c & LO != 0 {
                last_lower_end = Some(i);
            }
        }
        if self.has(i, LO) {
            Some(self.run(i, LO))
        } else {
            last_lower_end
        }
    }

    /// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` from `q`.
    fn upper_plus_lower_star(&self, q: usize) -> Option<usize> {
        let i = self.run(q, UP);
        (i > q).then(|| self.run(i, LO))
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `i` (o200k) — the end after it.
    fn o200k_contraction(&self, i: usize) -> usize {
        if self.s.get(i) != Some(&b'\'') {
            return i;
        }
        let folded = |k: usize| self.s.get(k).map(u8::to_ascii_lowercase);
        match folded(i + 1) {
            Some(b's' | b't' | b'm' | b'd') => i + 2,
            Some(b'r' | b'v') if folded(i + 2) == Some(b'e') => i + 3,
            Some(b'l') if folded(i + 2) == Some(b'l') => i + 3,
            // U+017F LATIN SMALL LETTER LONG S folds to 's'.
            Some(0xc5) if self.s.get(i + 2) == Some(&0xbf) => i + 3,
            _ => i,
        }
    }

    /// `'(?i:[sdmt]|ll|ve|re)` at `i` (cl100k).
    fn cl100k_contraction(&self, i: usize) -> Option<usize> {
        let folded = |k: usize| self.s.get(k).map(u8::to_ascii_lowercase);
        match folded(i + 1) {
            Some(b's' | b'd' | b'm' | b't') => Some(i + 2),
            Some(b'l') if folded(i + 2) == Some(b'l') => Some(i + 3),
            Some(b'v' | b'r') if folded(i + 2) == Some(b'e') => Some(i + 3),
            Some(0xc5) if self.s.get(i + 2) == Some(&0xbf) => Some(i + 3),
            _ => None,
        }
    }

    fn next_o200k(&self, p: usize, c0: u8, cp0: u32, l0: usize) -> usize {
        // `[^\r\n\p{L}\p{N}]?` may take the first char.
        let prefix = c0 & (L | N) == 0 && cp0 != u32::from(b'\r') && cp0 != u32::from(b'\n');
        // 1: [^\r\n\p{L}\p{N}]?[UP]*[LO]+(?i:'s|…)?
        if prefix {
            if let Some(e) = self.upper_star_lower_plus(p + l0) {
                return self.o200k_contraction(e);
            }
        }
        if let Some(e) = self.upper_star_lower_plus(p) {
            return self.o200k_contraction(e);
        }
        // 2: [^\r\n\p{L}\p{N}]?[UP]+[LO]*(?i:'s|…)?
        if prefix {
            if let Some(e) = self.upper_plus_lower_star(p + l0) {
                return self.o200k_contraction(e);
            }
        }
        if let Some(e) = self.upper_plus_lower_star(p) {
            return self.o200k_contraction(e);
        }
        // 3: \p{N}{1,3}
        if c0 & N != 0 {
            return self.digits(p);
        }
        // 4: ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
        if let Some(e) = self.punct_piece(p, cp0, b"\r\n/") {
            return e;
        }
        // 5: \s*[\r\n]+   6: \s+(?!\S)   7: \s+
        let (end, last, crlf) = self.space_run(p);
        if let Some(e) = crlf {
            return e;
        }
        if end < self.s.len() && last > p {
            return last;
        }
        end
    }

    fn next_cl100k(&self, p: usize, c0: u8, cp0: u32, l0: usize) -> usize {
        // 1: '(?i:[sdmt]|ll|ve|re)
        if cp0 == u32::from(b'\'') {
            if let Some(e) = self.cl100k_contraction(p) {
                return e;
            }
        }
        // 2: [^\r\n\p{L}\p{N}]?+\p{L}++ (possessive: a taken prefix is never given back)
        if c0 & L != 0 {
            return self.run(p, L);
        }
        let prefix = c0 & N == 0 && cp0 != u32::from(b'\r') && cp0 != u32::from(b'\n');
        if prefix && self.has(p + l0, L) {
            return self.run(p + l0, L);
        }
        // 3: \p{N}{1,3}+
        if c0 & N != 0 {
            return self.digits(p);
        }
        // 4: ` ?[^\s\p{L}\p{N}]++[\r\n]*+`
        if let Some(e) = self.punct_piece(p, cp0, b"\r\n") {
            return e;
        }
        // 5: \s++$   6: \s*[\r\n]   7: \s+(?!\S)   8: \s
        let (end, last, crlf) = self.space_run(p);
        if end == self.s.len() {
            return end;
        }
        if let Some(e) = crlf {
            return e;
        }
        if last > p {
            return last;
        }
        end
    }

    /// ` ?[^\s\p{L}\p{N}]+` then a run of `tail` bytes, from `p` whose first char is
    /// `cp0`; None when no punctuation starts there.
    fn punct_piece(&self, p: usize, cp0: u32, tail: &[u8]) -> Option<usize> {
        let q = if cp0 == u32::from(b' ') && self.is_punct(p + 1) {
            p + 1
        } else {
            p
        };
        self.is_punct(q)
            .then(|| self.ascii_run(self.punct_run(q), tail))
    }

    /// `\p{N}{1,3}` from `p` (the first char is a number).
    fn digits(&self, p: usize) -> usize {
        let mut i = p;
        for _ in 0..3 {
            match self.at(i) {
                Some((c, _, len)) if c & N != 0 => i += len,
                _ => break,
            }
        }
        i
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let p = self.pos;
        let (c0, cp0, l0) = self.at(p)?;
        let end = match self.pattern {
            Pattern::O200k => self.next_o200k(p, c0, cp0, l0),
            Pattern::Cl100k => self.next_cl100k(p, c0, cp0, l0),
        };
        debug_assert!(end > p);
        self.pos = end;
        Some(&self.s[p..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, pattern: Pattern) -> Vec<&str> {
        let mut out = Vec::new();
        let mut pos = 0;
        for piece in Pieces::new(text, pattern) {
            out.push(&text[pos..pos + piece.len()]);
            pos += piece.len();
        }
        out
    }

    #[test]
    fn splits_like_the_regexes() {
        assert_eq!(
            split("Hello world's  end!\n\n  x", Pattern::Cl100k),
            ["Hello", " world", "'s", " ", " end", "!\n\n", " ", " x"]
        );
        assert_eq!(
            split("Hello world's  end!\n\n  x", Pattern::O200k),
            ["Hello", " world's", " ", " end", "!\n\n", " ", " x"]
        );
        assert_eq!(split("12345", Pattern::O200k), ["123", "45"]);
        assert_eq!(
            split("CamelCase HTTPServer", Pattern::O200k),
            ["Camel", "Case", " HTTPServer"]
        );
        assert_eq!(
            split("a/b//\n/c", Pattern::O200k),
            ["a", "/b", "//\n/", "c"]
        );
        assert_eq!(split("  \t", Pattern::Cl100k), ["  \t"]);
        assert_eq!(split("x  \t", Pattern::O200k), ["x", "  \t"]);
        assert_eq!(split("I'LL", Pattern::Cl100k), ["I", "'LL"]);
    }
}
