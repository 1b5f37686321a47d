//! A deterministic generator of mixed prompt text (prose, code, JSON, numbers,
//! non-Latin scripts, emoji, odd whitespace) for the criterion benches and for holding
//! the fast counter against the reference encoder on large inputs.

/// A small xorshift generator: reproducible, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "the",
    "gateway",
    "forwards",
    "requests",
    "to",
    "a",
    "provider",
    "and",
    "counts",
    "tokens",
    "budget",
    "The",
    "Quick",
    "brown",
    "fox",
    "isn't",
    "we'll",
    "they've",
    "I'm",
    "HTTP",
    "latency",
    "of",
    "in",
    "with",
    "Tollhouse",
    "OpenAI",
    "prompt",
    "completion",
    "user's",
    "McDonald",
    "JSON",
    "régime",
    "naïve",
    "café",
    "straße",
    "résumé",
    "über",
    "ALLCAPS",
];
const SCRIPTS: &[&str] = &[
    "日本語のテキストを数える。",
    "中文分词测试，包括标点符号。",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "한국어 문장입니다.",
    "Ελληνικά γράμματα",
    "ไทยภาษา",
    "e\u{301}te\u{301} combining",
];
const SYMBOLS: &[&str] = &[
    "🚀",
    "👍🏽",
    "👨‍👩‍👧",
    "∑",
    "→",
    "—",
    "…",
    "©",
    "\u{200b}",
    "\u{a0}",
    "\u{3000}",
    "½",
];
const CODE: &[&str] = &[
    "fn main() {\n    let x = vec![1, 2, 3];\n    println!(\"{:?}\", x);\n}\n",
    "def f(a, b=2):\n\treturn {'k': a ** b}  # comment\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }\r\n",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01';\n",
    "    if err != nil {\n        return nil, err\n    }\n",
    "<div class=\"x\">&nbsp;</div>\n",
    "https://example.com/path/to/resource?query=1&b=2#frag\n",
];

/// Mixed text of at least `bytes` bytes (a few hundred more at most).
pub fn mixed(seed: u64, bytes: usize) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(bytes + 512);
    while out.len() < bytes {
        match rng.below(20) {
            0..=9 => {
                for _ in 0..rng.below(30) + 5 {
                    out.push_str(rng.pick(WORDS));
                    out.push_str(rng.pick(&[" ", " ", " ", " ", ", ", ". ", "  ", "\n"]));
                }
            }
            10..=12 => out.push_str(rng.pick(CODE)),
            13 => {
                let n = rng.next_u64();
                out.push_str(&format!(
                    "{{\"id\": {}, \"price\": {}.{:02}, \"tags\": [\"a\", \"b\"], \"ok\": true}}\n",
                    n % 100_000,
                    n % 977,
                    n % 100
                ));
            }
            14 => out.push_str(&format!("{} ", rng.next_u64() % 10_000_000_000)),
            15 | 16 => out.push_str(rng.pick(SCRIPTS)),
            17 => out.push_str(rng.pick(SYMBOLS)),
            18 => out.push_str(rng.pick(&["\n\n", "   \n", "\t\t", "\r\n", "    ", " \n \n"])),
            _ => {
                // Random code points, including marks, titlecase and unassigned ones.
                for _ in 0..rng.below(8) + 1 {
                    let cp = match rng.below(4) {
                        0 => rng.below(0x80) as u32,
                        1 => rng.below(0x800) as u32,
                        2 => rng.below(0x1_0000) as u32,
                        _ => rng.below(0x11_0000) as u32,
                    };
                    if let Some(c) = char::from_u32(cp) {
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}
