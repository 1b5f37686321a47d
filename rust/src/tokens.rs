//! Token counting: model name -> encoding, exact counts for OpenAI's `o200k_base` and
//! `cl100k_base` (vocabularies embedded in the binary by `tiktoken-rs`, nothing is
//! fetched at run time), whole chat requests (`chat`), image parts (`image`) and a
//! documented estimator for Anthropic and Gemini models.
//!
//! Text flows in as `&str`, counts flow out as `usize`. Special-token text such as
//! `<|endoftext|>` inside a prompt is counted as ordinary text, as the OpenAI API does.

mod bpe;
mod chat;
pub mod corpus;
mod image;
mod pretok;

pub use chat::{count_chat_body, count_message_parts, count_messages, MessageCount};
pub use image::{image_size_from_data_url, ImageRule};

use std::sync::LazyLock;

use tiktoken_rs::CoreBPE;

use bpe::FastEncoder;
use pretok::Pattern;

static FAST_O200K: LazyLock<FastEncoder> = LazyLock::new(|| FastEncoder::load(Pattern::O200k));
static FAST_CL100K: LazyLock<FastEncoder> = LazyLock::new(|| FastEncoder::load(Pattern::Cl100k));

/// An exact OpenAI encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

impl Encoding {
    /// The encoding's tiktoken name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// Looks an encoding up by its tiktoken name.
    pub fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "o200k_base" => Some(Encoding::O200kBase),
            "cl100k_base" => Some(Encoding::Cl100kBase),
            _ => None,
        }
    }

    /// The reference encoder (`tiktoken-rs`), loaded once per process.
    pub fn reference(self) -> &'static CoreBPE {
        match self {
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    /// The exact number of tokens of `text` (special tokens are ordinary text), from
    /// the fast counter (`pretok` + `bpe`).
    pub fn count(self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        match self {
            Encoding::O200kBase => FAST_O200K.count(text),
            Encoding::Cl100kBase => FAST_CL100K.count(text),
        }
    }

    /// The same count from the reference encoder (`tiktoken-rs`), for tests and benches.
    pub fn reference_count(self, text: &str) -> usize {
        self.reference().encode_ordinary(text).len()
    }
}

/// A non-OpenAI model family whose tokenizer is not public; counts are estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Anthropic,
    Gemini,
}

impl Family {
    /// The estimate is `ceil(cl100k_base count × NUM / DEN)`.
    ///
    /// Anthropic: Claude's tokenizer yields roughly 1.1–1.35× the cl100k count on
    /// English prose and code; 5/4 sits in that range. Gemini's 256k SentencePiece
    /// vocabulary lands close to cl100k; 11/10 keeps a small margin. Both lean high on
    /// purpose: the count reserves budget before the call, and settling uses the
    /// provider's reported usage.
    pub fn factor(self) -> (usize, usize) {
        match self {
            Family::Anthropic => (5, 4),
            Family::Gemini => (11, 10),
        }
    }

    /// Scales a cl100k count into this family's estimate (rounding up).
    pub fn scale(self, cl100k_tokens: usize) -> usize {
        let (num, den) = self.factor();
        (cl100k_tokens * num).div_ceil(den)
    }
}

/// How a model's tokens are counted: exactly, or estimated from cl100k.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    Exact(Encoding),
    Estimate(Family),
}

impl Counter {
    /// The counter for a model name. Provider prefixes (`openai/gpt-4o`,
    /// `anthropic.claude-…`, `models/gemini-…`) are looked through; unknown models
    /// count as `o200k_base`, the encoding of every current OpenAI model.
    pub fn for_model(model: &str) -> Counter {
        let lower = model.trim().to_ascii_lowercase();
        let base = lower.rsplit('/').next().unwrap_or(&lower);
        if base.contains("claude") {
            return Counter::Estimate(Family::Anthropic);
        }
        if base.starts_with("gemini") || base.contains(".gemini") {
            return Counter::Estimate(Family::Gemini);
        }
        const CL100K_PREFIXES: [&str; 6] = [
            "gpt-3.5",
            "gpt-35",
            "text-embedding-",
            "davinci-002",
            "babbage-002",
            "gpt-4-",
        ];
        if base == "gpt-4" || CL100K_PREFIXES.iter().any(|p| base.starts_with(p)) {
            return Counter::Exact(Encoding::Cl100kBase);
        }
        // gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*, o3*, o4*, chatgpt-4o*, gpt-oss*,
        // and everything unknown.
        Counter::Exact(Encoding::O200kBase)
    }

    /// `"o200k_base"`, `"cl100k_base"`, `"estimate:anthropic"` or `"estimate:gemini"`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Exact(enc) => enc.name(),
            Counter::Estimate(Family::Anthropic) => "estimate:anthropic",
            Counter::Estimate(Family::Gemini) => "estimate:gemini",
        }
    }

    /// The encoding whose counts this counter starts from.
    pub fn encoding(self) -> Encoding {
        match self {
            Counter::Exact(enc) => enc,
            Counter::Estimate(_) => Encoding::Cl100kBase,
        }
    }

    /// Scales a raw count of `self.encoding()` into this counter's count.
    pub fn scale(self, raw: usize) -> usize {
        match self {
            Counter::Exact(_) => raw,
            Counter::Estimate(family) => family.scale(raw),
        }
    }

    /// Tokens of a plain text.
    pub fn count_text(self, text: &str) -> usize {
        self.scale(self.encoding().count(text))
    }
}

/// The encoding name of a model (see [`Counter::for_model`]).
pub fn encoding_for_model(model: &str) -> &'static str {
    Counter::for_model(model).name()
}

/// Tokens of `text` as `model` would count them.
pub fn count_text(model: &str, text: &str) -> usize {
    Counter::for_model(model).count_text(text)
}

/// Loads both vocabularies now (in parallel), so the first request does not pay for it.
pub fn warm_up() {
    std::thread::scope(|scope| {
        scope.spawn(|| Encoding::Cl100kBase.count("warm up"));
        pretok::warm_up();
        Encoding::O200kBase.count("warm up");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_map() {
        for m in [
            "gpt-4o",
            "gpt-4o-mini-2024-07-18",
            "chatgpt-4o-latest",
            "gpt-4.1-nano",
            "gpt-4.5-preview",
            "gpt-5",
            "gpt-5-mini",
            "o1",
            "o1-preview",
            "o3-mini",
            "o4-mini",
            "openai/gpt-4o",
            "some-unknown-model",
            "",
        ] {
            assert_eq!(encoding_for_model(m), "o200k_base", "{m}");
        }
        for m in [
            "gpt-4",
            "gpt-4-0613",
            "gpt-4-turbo",
            "gpt-4-32k",
            "gpt-3.5-turbo",
            "gpt-3.5-turbo-16k",
            "gpt-35-turbo",
            "text-embedding-3-small",
            "text-embedding-ada-002",
            "GPT-4",
        ] {
            assert_eq!(encoding_for_model(m), "cl100k_base", "{m}");
        }
        for m in [
            "claude-3-5-sonnet-20241022",
            "claude-opus-4-1",
            "anthropic/claude-3-haiku",
            "anthropic.claude-3-sonnet-20240229-v1:0",
        ] {
            assert_eq!(encoding_for_model(m), "estimate:anthropic", "{m}");
        }
        for m in [
            "gemini-1.5-pro",
            "gemini-2.5-flash",
            "models/gemini-2.0-flash",
        ] {
            assert_eq!(encoding_for_model(m), "estimate:gemini", "{m}");
        }
    }

    #[test]
    fn known_counts() {
        // OpenAI cookbook: "tiktoken is great!" is 6 tokens in cl100k_base.
        assert_eq!(Encoding::Cl100kBase.count("tiktoken is great!"), 6);
        assert_eq!(Encoding::Cl100kBase.count(""), 0);
        assert_eq!(Encoding::O200kBase.count("hello world"), 2);
        // Special-token text is ordinary text.
        assert!(Encoding::Cl100kBase.count("<|endoftext|>") > 1);
    }

    /// Characters that sit on the edges of the split patterns.
    const TRICKY: &[&str] = &[
        " ",
        " ",
        "  ",
        "\n",
        "\r",
        "\t",
        "\r\n",
        "'",
        "'",
        "s",
        "S",
        "ll",
        "LL",
        "re",
        "ve",
        "d",
        "\u{17f}",
        "A",
        "a",
        "Hello",
        "world",
        "\u{301}",
        "\u{20dd}",
        "1",
        "23",
        "4567",
        "/",
        "!",
        "?!",
        "\u{2b0}",
        "\u{3042}",
        "\u{1c5}",
        "\u{a0}",
        "\u{3000}",
        "\u{bd}",
        "\u{663}",
        "🚀",
        "\u{2028}",
        "\u{85}",
        "\u{b}",
        "\u{c}",
        "\u{200b}",
        "é",
        "Ω",
        "ω",
        "ǅa",
        "x\u{301}y",
        "日本",
        "한",
        "\u{e000}",
        "\u{10ffff}",
        "\u{1d400}",
        "\u{1f1fa}\u{1f1f8}",
    ];

    #[test]
    fn fast_matches_reference_on_tricky_strings() {
        let mut rng = corpus::Rng::new(7);
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..rng.below(10) {
                text.push_str(rng.pick(TRICKY));
            }
            for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
                assert_eq!(
                    enc.count(&text),
                    enc.reference_count(&text),
                    "{enc:?} {text:?}"
                );
            }
        }
    }

    #[test]
    fn fast_matches_reference_on_the_corpus() {
        for seed in 0..8 {
            let text = corpus::mixed(seed, 25_000);
            for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
                assert_eq!(
                    enc.count(&text),
                    enc.reference_count(&text),
                    "{enc:?} seed {seed}"
                );
            }
        }
        // Long pieces take the heap merge.
        let long = format!("{}{}", "ab".repeat(3000), "=+".repeat(2000));
        for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
            assert_eq!(enc.count(&long), enc.reference_count(&long), "{enc:?}");
        }
    }

    #[test]
    fn estimates_scale_up() {
        let text = "The quick brown fox jumps over the lazy dog.";
        let base = Encoding::Cl100kBase.count(text);
        assert_eq!(count_text("claude-3-opus", text), (base * 5).div_ceil(4));
        assert_eq!(count_text("gemini-1.5-pro", text), (base * 11).div_ceil(10));
        assert_eq!(count_text("claude-3-opus", ""), 0);
    }
}
