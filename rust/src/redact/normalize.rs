//! Cheap evasion-undoing before the scan: JSON `\uXXXX` escapes are decoded, zero-width
//! characters (U+200B-U+200D, U+2060, U+FEFF) dropped, and full-width ASCII (U+FF01-U+FF5E,
//! which includes the full-width digits U+FF10-U+FF19) folded to ASCII. The normalised text
//! carries a map from each of its bytes back to the original byte offset, so spans found in
//! it mask the original text.

use std::borrow::Cow;

/// The text the detectors see, plus the way back to the caller's offsets.
pub struct Normalized<'a> {
    pub text: Cow<'a, str>,
    /// `map[i]` is the original offset of the source unit that produced byte `i`;
    /// `map[len]` is the original length. Empty when the text was not changed.
    map: Vec<u32>,
}

impl Normalized<'_> {
    /// Original byte offset of a normalised start offset.
    #[inline]
    pub fn start(&self, i: usize) -> usize {
        if self.map.is_empty() {
            i
        } else {
            self.map[i] as usize
        }
    }

    /// Original byte offset of a normalised end offset (exclusive). Characters dropped
    /// just before the next unit are included, which is harmless: they are invisible.
    #[inline]
    pub fn end(&self, i: usize) -> usize {
        self.start(i)
    }
}

fn needs_work(b: &[u8]) -> bool {
    // `\` starts an escape; 0xE2 leads U+200B-U+206F; 0xEF leads U+FEFF and U+FF01-U+FF5E.
    memchr::memchr3(b'\\', 0xE2, 0xEF, b).is_some()
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let mut v = 0u32;
    for &c in &b[..4] {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// What a source character becomes: dropped, folded to another char, or kept.
fn fold(c: char) -> Option<char> {
    match c {
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => None,
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21),
        _ => Some(c),
    }
}

/// Normalises `text`, borrowing it unchanged when there is nothing to undo.
pub fn normalize(text: &str) -> Normalized<'_> {
    let b = text.as_bytes();
    if !needs_work(b) {
        return Normalized {
            text: Cow::Borrowed(text),
            map: Vec::new(),
        };
    }
    let mut out = String::with_capacity(text.len());
    let mut map: Vec<u32> = Vec::with_capacity(text.len() + 1);
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        // JSON \uXXXX, with surrogate pairs.
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'u') {
            if let Some(hi) = hex4(&b[i + 2..]) {
                let mut used = 6;
                let mut cp = Some(hi);
                if (0xD800..0xDC00).contains(&hi) {
                    cp = None;
                    if b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u') {
                        if let Some(lo) = hex4(&b[i + 8..]) {
                            if (0xDC00..0xE000).contains(&lo) {
                                cp = Some(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                                used = 12;
                            }
                        }
                    }
                }
                if let Some(ch) = cp.and_then(char::from_u32) {
                    changed = true;
                    if let Some(ch) = fold(ch) {
                        let mut buf = [0u8; 4];
                        let s = ch.encode_utf8(&mut buf);
                        out.push_str(s);
                        map.extend(std::iter::repeat_n(i as u32, s.len()));
                    }
                    i += used;
                    continue;
                }
            }
        }
        let ch = text[i..].chars().next().unwrap_or('\0');
        let w = ch.len_utf8();
        match fold(ch) {
            Some(f) if f == ch => {
                out.push(ch);
                map.extend((i..i + w).map(|o| o as u32));
            }
            Some(f) => {
                changed = true;
                out.push(f);
                map.extend(std::iter::repeat_n(i as u32, f.len_utf8()));
            }
            None => changed = true,
        }
        i += w;
    }
    if !changed {
        return Normalized {
            text: Cow::Borrowed(text),
            map: Vec::new(),
        };
    }
    map.push(b.len() as u32);
    Normalized {
        text: Cow::Owned(out),
        map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        let n = normalize("hello a@b.com");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.start(3), 3);
    }

    #[test]
    fn escapes_zero_width_and_fullwidth_map_back() {
        let src = "x john\\u0040example.com \u{200B}4\u{FF11}1";
        let n = normalize(src);
        assert_eq!(n.text, "x john@example.com 411");
        let at = n.text.find('@').unwrap();
        assert_eq!(&src[n.start(at)..n.end(at + 1)], "\\u0040");
        let four = n.text.find("411").unwrap();
        // The dropped zero-width space sits before the unit, so the span starts after it.
        assert_eq!(&src[n.start(four)..n.end(four + 3)], "4\u{FF11}1");
        assert_eq!(n.end(n.text.len()), src.len());
    }

    #[test]
    fn surrogate_pairs_and_bad_escapes() {
        let n = normalize("a\\ud83d\\ude00b \\uZZZZ \\ud800x");
        assert_eq!(n.text, "a\u{1F600}b \\uZZZZ \\ud800x");
    }
}
