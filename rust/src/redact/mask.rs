//! Replacing spans: `[REDACTED:<TYPE>]`, or `[REDACTED:<TYPE>:<8 hex>]` where the hex is a
//! salted SHA-256 of the secret, stable across processes so equal secrets stay linkable.

use sha2::{Digest, Sha256};

/// How a family's spans are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Mask,
    Hash,
}

impl Mode {
    /// `mask`, `hash`, or `block` (which the pipeline enforces; the text is masked).
    pub fn parse(s: &str) -> Option<Mode> {
        match s.to_ascii_lowercase().as_str() {
            "mask" | "block" => Some(Mode::Mask),
            "hash" => Some(Mode::Hash),
            _ => None,
        }
    }
}

/// Per-family modes, indexed by family id; families not listed use `default`.
#[derive(Clone, Debug, Default)]
pub struct Modes {
    pub default: Mode,
    pub per: Vec<Option<Mode>>,
}

impl Modes {
    pub fn get(&self, family: u16) -> Mode {
        self.per
            .get(family as usize)
            .copied()
            .flatten()
            .unwrap_or(self.default)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The replacement token for one secret.
pub fn token(out: &mut String, name: &str, mode: Mode, salt: &[u8], secret: &[u8]) {
    out.push_str("[REDACTED:");
    out.push_str(name);
    if mode == Mode::Hash {
        let mut h = Sha256::new();
        h.update(salt);
        h.update([0u8]);
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(secret);
        let d = h.finalize();
        out.push(':');
        for b in &d[..4] {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_hash_tokens() {
        let mut s = String::new();
        token(&mut s, "EMAIL", Mode::Mask, b"", b"a@b.co");
        assert_eq!(s, "[REDACTED:EMAIL]");
        let mut a = String::new();
        token(&mut a, "EMAIL", Mode::Hash, b"salt", b"a@b.co");
        let mut b = String::new();
        token(&mut b, "EMAIL", Mode::Hash, b"salt", b"a@b.co");
        let mut c = String::new();
        token(&mut c, "EMAIL", Mode::Hash, b"other", b"a@b.co");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), "[REDACTED:EMAIL:".len() + 9);
    }

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("HASH"), Some(Mode::Hash));
        assert_eq!(Mode::parse("block"), Some(Mode::Mask));
        assert_eq!(Mode::parse("drop"), None);
    }
}
