//! Redaction of streamed output (SSE deltas). `feed` returns the text that is safe to
//! emit now and holds back a tail that might be the start of a secret: the trailing
//! unfinished word, a trailing run of digits and separators (a card or phone number being
//! spelt out), a trailing `password =` assignment, or an unclosed PEM block. The last
//! emitted bytes are kept as left context so boundary checks see what came before.

use std::sync::{Arc, LazyLock};

use regex::Regex;

use super::{spans, Modes, Redactor};

/// Left context kept from emitted text.
const CONTEXT: usize = 64;
/// A trailing word longer than this is released anyway (bounded memory and latency).
const MAX_WORD: usize = 4096;
/// An unclosed PEM block is held at most this long.
const MAX_PEM_HOLD: usize = 64 * 1024;
/// How far back a trailing digit run may be held.
const MAX_NUMERIC_TAIL: usize = 48;

static ASSIGNMENT_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access_?key|private_key|credential|bearer)[A-Za-z0-9_-]*["'`]?[ \t]*(?:=>|:=|=|:)?[ \t]*["'`]?[ \t]*$"#,
    )
    .expect("static pattern")
});

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn numeric_tail_byte(b: u8) -> bool {
    b >= 0x80
        || matches!(
            b,
            b'0'..=b'9' | b'A'..=b'Z' | b' ' | b'\t' | b'(' | b')' | b'.' | b'+' | b'-' | b'\\' | b'u'
        )
}

/// Where the safe prefix of `pending` ends.
fn safe_cut(pending: &str, closed: bool) -> usize {
    if closed {
        return pending.len();
    }
    let b = pending.as_bytes();
    let mut cut = b.len();
    // An unclosed PEM block.
    if let Some(begin) = memchr::memmem::rfind(b, b"-----BEGIN") {
        let closed = memchr::memmem::find(&b[begin..], b"-----END")
            .is_some_and(|e| memchr::memmem::find(&b[begin + e + 8..], b"-----").is_some());
        if !closed && b.len() - begin <= MAX_PEM_HOLD {
            cut = begin;
        }
    }
    // The trailing unfinished word.
    let word = b[..cut]
        .iter()
        .rposition(u8::is_ascii_whitespace)
        .map_or(0, |p| p + 1);
    if cut - word <= MAX_WORD {
        cut = word;
    } else {
        cut = floor_char(pending, cut - MAX_WORD);
    }
    // A trailing run of digits, separators and upper-case letters (cards, phones, IBANs),
    // including what normalisation folds away (non-ASCII zero-width and full-width
    // characters, `\uXXXX` escapes).
    let lim = cut.saturating_sub(MAX_NUMERIC_TAIL);
    let mut k = cut;
    while k > lim && numeric_tail_byte(b[k - 1]) {
        k -= 1;
    }
    while !pending.is_char_boundary(k) {
        k += 1;
    }
    let tail = &b[k..cut];
    let fullwidth_digit = |w: &[u8]| w[0] == 0xEF && w[1] == 0xBC && (0x90..=0x99).contains(&w[2]);
    if tail.iter().any(u8::is_ascii_digit) || tail.windows(3).any(fullwidth_digit) {
        cut = k;
    }
    // A trailing `keyword =` whose value has not arrived yet.
    let from = floor_char(pending, cut.saturating_sub(96));
    if let Some(m) = ASSIGNMENT_TAIL.find(&pending[from..cut]) {
        cut = from + m.start();
    }
    cut
}

/// Incremental redactor for one stream.
pub struct StreamRedactor {
    redactor: Arc<Redactor>,
    modes: Modes,
    context: String,
    pending: String,
    count: usize,
    families: Vec<u16>,
}

impl StreamRedactor {
    pub fn new(redactor: Arc<Redactor>, modes: Modes) -> StreamRedactor {
        StreamRedactor {
            redactor,
            modes,
            context: String::new(),
            pending: String::new(),
            count: 0,
            families: Vec::new(),
        }
    }

    /// Secrets masked so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Family ids masked so far, ascending.
    pub fn families(&self) -> &[u16] {
        &self.families
    }

    /// The redactor this stream uses.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Bytes held back right now.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Adds a chunk; returns the text safe to emit now (possibly empty).
    pub fn feed(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        self.drain(false)
    }

    /// Ends the stream; returns everything still held, masked.
    pub fn finish(&mut self) -> String {
        self.drain(true)
    }

    fn drain(&mut self, closed: bool) -> String {
        let mut cut = safe_cut(&self.pending, closed);
        if cut == 0 {
            return String::new();
        }
        let ctx = self.context.len();
        let mut text = String::with_capacity(ctx + self.pending.len());
        text.push_str(&self.context);
        text.push_str(&self.pending);
        let (norm, cands) = self.redactor.detect(&text);
        let spans = spans(&norm, &cands);
        // A detection reaching past the cut is held back whole.
        for sp in &spans {
            if sp.start >= ctx && sp.start < ctx + cut && sp.end > ctx + cut {
                cut = sp.start - ctx;
            }
        }
        let mut out = String::with_capacity(cut + 32);
        let mut last = ctx;
        for (sp, c) in spans
            .iter()
            .zip(&cands)
            .filter(|(s, _)| s.end > ctx && s.end <= ctx + cut)
        {
            let start = sp.start.max(ctx);
            out.push_str(&text[last..start]);
            // The normalised secret, so hashes match one-shot `redact` under evasions.
            let secret = &norm.text.as_bytes()[c.start..c.end];
            self.redactor
                .push_token(&mut out, sp.family, &self.modes, secret);
            self.count += 1;
            if let Err(i) = self.families.binary_search(&sp.family) {
                self.families.insert(i, sp.family);
            }
            last = sp.end;
        }
        out.push_str(&text[last..ctx + cut]);
        // Keep the tail of what was just released as context for the next scan.
        let released = &text[..ctx + cut];
        let keep_from = floor_char(released, released.len().saturating_sub(CONTEXT));
        self.context = released[keep_from..].to_string();
        self.pending.drain(..cut);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamRedactor {
        let r = Arc::new(Redactor::new(None, &[], None).unwrap());
        StreamRedactor::new(r, Modes::default())
    }

    #[test]
    fn holds_back_the_unfinished_word() {
        let mut s = stream();
        assert_eq!(s.feed("Hello wor"), "Hello ");
        assert_eq!(s.feed("ld and "), "world and ");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn key_split_over_chunks_is_masked() {
        let key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z";
        let text = format!("your key is {key} ok");
        for split in 1..text.len() {
            let mut s = stream();
            let mut out = s.feed(&text[..split]);
            out.push_str(&s.feed(&text[split..]));
            out.push_str(&s.finish());
            assert_eq!(out, "your key is [REDACTED:OPENAI_KEY] ok", "split {split}");
            assert_eq!(s.count(), 1);
        }
    }

    #[test]
    fn spaced_card_and_assignment_split_over_chunks() {
        for text in [
            "card 4111 1111 1111 1111 thanks",
            "set password = Xk9#mQ2!vL7p now",
        ] {
            for split in 1..text.len() {
                let mut s = stream();
                let mut out = s.feed(&text[..split]);
                out.push_str(&s.feed(&text[split..]));
                out.push_str(&s.finish());
                assert_eq!(s.count(), 1, "{text:?} split {split}: {out}");
            }
        }
    }

    #[test]
    fn hashes_match_one_shot_redaction_under_evasions() {
        let r = Arc::new(Redactor::new(None, &[], Some("salt")).unwrap());
        let modes = r.modes([("default", "hash")]).unwrap();
        let text = "mail bob\\u0040example.com and 4\u{200B}111 1111 1111 1111 ok";
        let mut s = StreamRedactor::new(Arc::clone(&r), modes.clone());
        let mut out = String::new();
        for ch in text.chars() {
            out.push_str(&s.feed(&ch.to_string()));
        }
        out.push_str(&s.finish());
        assert_eq!(out, r.redact(text, &modes).text);
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn unclosed_pem_is_held() {
        let mut s = stream();
        let head = s.feed("key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n");
        assert_eq!(head, "key:\n");
        let rest = s.feed("BKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n");
        assert_eq!(rest, "[REDACTED:PRIVATE_KEY]\n");
    }
}
