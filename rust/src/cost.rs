//! Cost arithmetic in integer micro-dollars.
//!
//! Prices flow in as USD per million tokens (the shipped `pricing.json`, embedded at build
//! time, plus config overrides) and are stored as micro-dollars per million tokens (`u64`).
//! Usage flows out as a cost in micro-dollars: the exact sum of `tokens × price` over the
//! four token classes, divided by 10^6 and rounded up once, computed in `u128` so no float
//! ever touches the money.

use std::collections::HashMap;

use serde::Deserialize;

use crate::CoreError;

/// The shipped price table (USD per million tokens); see its `_source` for provenance.
pub const SHIPPED_PRICES: &str = include_str!("../../python/tollhouse/data/pricing.json");

/// Output tokens assumed by [`PriceTable::worst_case`] when neither the request nor the
/// price table says how many the model may produce.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4096;

/// The override / price-file field names, in the order they are reported.
pub const PRICE_FIELDS: [&str; 5] = [
    "input_per_mtok",
    "output_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
    "max_output_tokens",
];

const MICROS_PER_USD: f64 = 1_000_000.0;
/// No list price comes near $1,000,000 per million tokens; above that an entry is a typo.
const MAX_USD_PER_MTOK: f64 = 1_000_000.0;
const MAX_OUTPUT_TOKENS_LIMIT: f64 = 100_000_000.0;

/// One model's prices in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Cache reads; the input rate when the provider has no discount.
    pub cached_input: u64,
    /// Cache writes; the input rate when the provider charges nothing extra.
    pub cache_write: u64,
    pub max_output_tokens: Option<u64>,
}

/// Token usage of one request. `cached` and `cache_write` are parts of `prompt`
/// (OpenAI semantics): the remainder of `prompt` is billed at the input rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    pub cache_write: u64,
}

impl Price {
    /// Cost of `usage` in micro-dollars, rounded up to the micro-dollar.
    ///
    /// If `cached + cache_write` exceeds `prompt` (a provider reporting them separately),
    /// the prompt is taken to be their sum, so no token class is ever billed negative.
    pub fn cost(&self, usage: Usage) -> u64 {
        let plain = usage
            .prompt
            .saturating_sub(usage.cached.saturating_add(usage.cache_write));
        let terms = [
            (plain, self.input),
            (usage.cached, self.cached_input),
            (usage.cache_write, self.cache_write),
            (usage.completion, self.output),
        ];
        let mut total: u128 = 0;
        for (tokens, price) in terms {
            // u64 × u64 always fits in u128; only the sum of four such products can overflow.
            total = total.saturating_add(u128::from(tokens) * u128::from(price));
        }
        let micros = total.div_ceil(1_000_000);
        u64::try_from(micros).unwrap_or(u64::MAX)
    }
}

/// A value of one override field, as it came from the config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    Int(i128),
    Float(f64),
}

impl FieldValue {
    fn as_f64(self) -> f64 {
        match self {
            FieldValue::Int(i) => i as f64,
            FieldValue::Float(f) => f,
        }
    }
}

/// One model's override: `(model, [(field, value)])`, prices in USD per million tokens.
pub type Override = (String, Vec<(String, FieldValue)>);

/// An immutable model → price map: the shipped table plus overrides.
#[derive(Debug, Clone)]
pub struct PriceTable {
    prices: HashMap<String, Price>,
}

#[derive(Deserialize)]
struct PriceFile {
    models: HashMap<String, HashMap<String, serde_json::Value>>,
}

impl PriceTable {
    /// The shipped table alone.
    pub fn shipped() -> Result<Self, CoreError> {
        Self::with_overrides(Vec::<Override>::new())
    }

    /// The shipped table with `overrides` (model → [(field, value)], USD per million
    /// tokens) applied on top. A model already in the table keeps the fields the override
    /// leaves out; a new model needs `input_per_mtok` and `output_per_mtok`.
    pub fn with_overrides<I>(overrides: I) -> Result<Self, CoreError>
    where
        I: IntoIterator<Item = Override>,
    {
        let file: PriceFile = serde_json::from_str(SHIPPED_PRICES)
            .map_err(|e| CoreError::config("pricing.json", e.to_string()))?;
        let mut table = PriceTable {
            prices: HashMap::with_capacity(file.models.len() + 8),
        };
        for (model, entry) in file.models {
            let mut fields = Vec::with_capacity(entry.len());
            for (field, value) in entry {
                let value = match value {
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => FieldValue::Int(i128::from(i)),
                        None => FieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    other => {
                        return Err(CoreError::config(
                            format!("pricing.json {model}.{field}"),
                            format!("expected a number, got {other}"),
                        ))
                    }
                };
                fields.push((field, value));
            }
            table.apply(&model, &fields)?;
        }
        for (model, fields) in overrides {
            table.apply(&model, &fields)?;
        }
        Ok(table)
    }

    fn apply(&mut self, model: &str, fields: &[(String, FieldValue)]) -> Result<(), CoreError> {
        let mut input = None;
        let mut output = None;
        let mut cached = None;
        let mut write = None;
        let mut max_out = None;
        for (field, value) in fields {
            let rule = format!("pricing.{model}.{field}");
            match field.as_str() {
                "input_per_mtok" => input = Some(usd_per_mtok(&rule, *value)?),
                "output_per_mtok" => output = Some(usd_per_mtok(&rule, *value)?),
                "cached_input_per_mtok" => cached = Some(usd_per_mtok(&rule, *value)?),
                "cache_write_per_mtok" => write = Some(usd_per_mtok(&rule, *value)?),
                "max_output_tokens" => max_out = Some(token_limit(&rule, *value)?),
                _ => {
                    return Err(CoreError::config(
                        rule,
                        format!(
                            "unknown field (expected one of: {})",
                            PRICE_FIELDS.join(", ")
                        ),
                    ))
                }
            }
        }
        let base = self.prices.get(model).copied();
        let (input, output) = match (input, output, base) {
            (Some(i), Some(o), _) => (i, o),
            (i, o, Some(b)) => (i.unwrap_or(b.input), o.unwrap_or(b.output)),
            (None, _, None) => {
                return Err(CoreError::config(
                    format!("pricing.{model}.input_per_mtok"),
                    "required for a model not in the shipped table",
                ))
            }
            (_, None, None) => {
                return Err(CoreError::config(
                    format!("pricing.{model}.output_per_mtok"),
                    "required for a model not in the shipped table",
                ))
            }
        };
        // An override of the input rate alone also moves the rates that default to it.
        let keep = |new: Option<u64>, old: Option<u64>| new.or(old).unwrap_or(input);
        let price = Price {
            input,
            output,
            cached_input: keep(
                cached,
                base.filter(|b| b.cached_input != b.input)
                    .map(|b| b.cached_input),
            ),
            cache_write: keep(
                write,
                base.filter(|b| b.cache_write != b.input)
                    .map(|b| b.cache_write),
            ),
            max_output_tokens: max_out.or(base.and_then(|b| b.max_output_tokens)),
        };
        self.prices.insert(model.to_owned(), price);
        Ok(())
    }

    /// The price of `model`: an exact match first, then the name without a provider
    /// prefix (`openai/gpt-4o`) and without a snapshot suffix (`-2024-08-06`,
    /// `-20250929`, `-latest`).
    pub fn get(&self, model: &str) -> Option<&Price> {
        if let Some(p) = self.prices.get(model) {
            return Some(p);
        }
        let bare = model.rsplit('/').next().unwrap_or(model);
        if bare != model {
            if let Some(p) = self.prices.get(bare) {
                return Some(p);
            }
        }
        let base = strip_snapshot(bare);
        if base != bare {
            return self.prices.get(base);
        }
        None
    }

    pub fn has(&self, model: &str) -> bool {
        self.get(model).is_some()
    }

    /// The model names in the table, sorted.
    pub fn models(&self) -> Vec<String> {
        let mut names: Vec<String> = self.prices.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    pub fn len(&self) -> usize {
        self.prices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    /// Cost of `usage` on `model` in micro-dollars; `None` for an unknown model.
    pub fn cost(&self, model: &str, usage: Usage) -> Option<u64> {
        self.get(model).map(|p| p.cost(usage))
    }

    /// The most a request can cost: every prompt token at the input rate plus
    /// `max_output_tokens` (or the model's limit, or [`DEFAULT_MAX_OUTPUT_TOKENS`]) at
    /// the output rate. `None` for an unknown model.
    pub fn worst_case(
        &self,
        model: &str,
        prompt_tokens: u64,
        max_output_tokens: Option<u64>,
    ) -> Option<u64> {
        let price = self.get(model)?;
        let completion = max_output_tokens
            .or(price.max_output_tokens)
            .unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS);
        Some(price.cost(Usage {
            prompt: prompt_tokens,
            completion,
            ..Usage::default()
        }))
    }
}

/// `name` without a trailing `-latest`, `-YYYYMMDD`, `-YYYY-MM-DD` or a three-digit
/// version (`gemini-2.0-flash-001`).
fn strip_snapshot(name: &str) -> &str {
    if let Some(base) = name.strip_suffix("-latest") {
        return base;
    }
    let bytes = name.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let n = bytes.len();
    if n > 9 && bytes[n - 9] == b'-' && digits(&bytes[n - 8..]) {
        return &name[..n - 9];
    }
    if n > 11
        && bytes[n - 11] == b'-'
        && bytes[n - 6] == b'-'
        && bytes[n - 3] == b'-'
        && digits(&bytes[n - 10..n - 6])
        && digits(&bytes[n - 5..n - 3])
        && digits(&bytes[n - 2..])
    {
        return &name[..n - 11];
    }
    if n > 4 && bytes[n - 4] == b'-' && digits(&bytes[n - 3..]) {
        return &name[..n - 4];
    }
    name
}

/// USD per million tokens → micro-dollars per million tokens, rounded to the nearest.
fn usd_per_mtok(rule: &str, value: FieldValue) -> Result<u64, CoreError> {
    let usd = value.as_f64();
    if !usd.is_finite() || usd < 0.0 {
        return Err(CoreError::config(
            rule,
            format!("must be a finite number >= 0, got {usd}"),
        ));
    }
    if usd > MAX_USD_PER_MTOK {
        return Err(CoreError::config(
            rule,
            format!("must be at most {MAX_USD_PER_MTOK} USD per million tokens, got {usd}"),
        ));
    }
    // Exact for every price with up to six decimals: the float error of `usd * 1e6` is far
    // below the 0.5 the rounding absorbs.
    Ok((usd * MICROS_PER_USD).round() as u64)
}

fn token_limit(rule: &str, value: FieldValue) -> Result<u64, CoreError> {
    let ok = match value {
        FieldValue::Int(i) => (1..=MAX_OUTPUT_TOKENS_LIMIT as i128).contains(&i),
        FieldValue::Float(f) => f.fract() == 0.0 && (1.0..=MAX_OUTPUT_TOKENS_LIMIT).contains(&f),
    };
    if !ok {
        return Err(CoreError::config(
            rule,
            format!(
                "must be a whole number of tokens between 1 and {MAX_OUTPUT_TOKENS_LIMIT}, got {}",
                value.as_f64()
            ),
        ));
    }
    Ok(value.as_f64() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt,
            completion,
            ..Usage::default()
        }
    }

    #[test]
    fn shipped_table_loads_and_has_mock() {
        let t = PriceTable::shipped().unwrap();
        let mock = t.get("mock-1").unwrap();
        assert_eq!(mock.input, 1_000_000);
        assert_eq!(mock.output, 2_000_000);
        assert!(t.len() > 30);
    }

    #[test]
    fn cost_rounds_up_once() {
        let t = PriceTable::shipped().unwrap();
        // 1 token at $1/Mtok = 1 micro-dollar exactly; 1 output token = 2.
        assert_eq!(t.cost("mock-1", usage(1, 0)), Some(1));
        assert_eq!(t.cost("mock-1", usage(1, 1)), Some(3));
        // gpt-4o-mini: 1 input token at $0.15/Mtok = 0.15 µ$ -> 1.
        assert_eq!(t.cost("gpt-4o-mini", usage(1, 0)), Some(1));
        // 10 tokens = 1.5 µ$ -> 2; the sum is rounded, not each term.
        assert_eq!(t.cost("gpt-4o-mini", usage(5, 0)), Some(1));
        assert_eq!(t.cost("gpt-4o-mini", usage(10, 0)), Some(2));
        assert_eq!(t.cost("mock-1", usage(0, 0)), Some(0));
        assert_eq!(t.cost("no-such-model", usage(1, 1)), None);
    }

    #[test]
    fn cached_tokens_are_part_of_prompt() {
        let t = PriceTable::shipped().unwrap();
        let u = Usage {
            prompt: 1_000_000,
            completion: 0,
            cached: 400_000,
            cache_write: 0,
        };
        // gpt-4o: 600k at $2.50 + 400k at $1.25 = 1.5 + 0.5 = $2.00
        assert_eq!(t.cost("gpt-4o", u), Some(2_000_000));
        // more cached than prompt: nothing billed negative
        let odd = Usage {
            prompt: 10,
            completion: 0,
            cached: 1_000_000,
            cache_write: 0,
        };
        assert_eq!(t.cost("gpt-4o", odd), Some(1_250_000));
    }

    #[test]
    fn lookup_strips_prefix_and_snapshot() {
        let t = PriceTable::shipped().unwrap();
        let base = *t.get("gpt-4o").unwrap();
        assert_eq!(t.get("gpt-4o-2024-08-06"), Some(&base));
        assert_eq!(t.get("openai/gpt-4o"), Some(&base));
        assert_ne!(t.get("gpt-4o-2024-05-13"), Some(&base));
        assert!(t.has("claude-sonnet-4-5-20250929"));
        assert!(t.has("claude-3-5-sonnet-latest"));
        assert!(!t.has("gpt-4o-2024"));
        assert_eq!(t.get("gemini-2.0-flash-001"), t.get("gemini-2.0-flash"));
        assert_eq!(t.get("models/gemini-1.5-pro-002"), t.get("gemini-1.5-pro"));
        assert!(!t.has(""));
    }

    #[test]
    fn defaults_fill_missing_rates() {
        let t = PriceTable::shipped().unwrap();
        let m = t.get("mock-1").unwrap();
        assert_eq!(m.cached_input, m.input);
        assert_eq!(m.cache_write, m.input);
    }

    #[test]
    fn overrides_merge_and_validate() {
        let ov = vec![
            (
                "gpt-4o".to_owned(),
                vec![("output_per_mtok".to_owned(), FieldValue::Float(12.5))],
            ),
            (
                "my-model".to_owned(),
                vec![
                    ("input_per_mtok".to_owned(), FieldValue::Int(3)),
                    ("output_per_mtok".to_owned(), FieldValue::Float(0.000001)),
                    ("max_output_tokens".to_owned(), FieldValue::Float(1000.0)),
                ],
            ),
        ];
        let t = PriceTable::with_overrides(ov).unwrap();
        let p = t.get("gpt-4o").unwrap();
        assert_eq!(
            (p.input, p.output, p.cached_input),
            (2_500_000, 12_500_000, 1_250_000)
        );
        let m = t.get("my-model").unwrap();
        assert_eq!(
            (m.input, m.output, m.max_output_tokens),
            (3_000_000, 1, Some(1000))
        );

        let bad = |model: &str, field: &str, v: FieldValue| {
            PriceTable::with_overrides(vec![(model.to_owned(), vec![(field.to_owned(), v)])])
                .unwrap_err()
        };
        let e = bad("gpt-4o", "input_per_mtok", FieldValue::Float(-1.0));
        assert!(
            e.to_string().contains("pricing.gpt-4o.input_per_mtok"),
            "{e}"
        );
        let e = bad("gpt-4o", "input_per_mtok", FieldValue::Float(f64::NAN));
        assert!(e.to_string().contains("gpt-4o.input_per_mtok"), "{e}");
        let e = bad("gpt-4o", "colour", FieldValue::Int(1));
        assert!(e.to_string().contains("gpt-4o.colour"), "{e}");
        let e = bad("gpt-4o", "max_output_tokens", FieldValue::Float(1.5));
        assert!(e.to_string().contains("max_output_tokens"), "{e}");
        let e = bad("new-model", "output_per_mtok", FieldValue::Int(1));
        assert!(e.to_string().contains("new-model.input_per_mtok"), "{e}");
    }

    #[test]
    fn worst_case_uses_limits() {
        let t = PriceTable::shipped().unwrap();
        // mock-1: max_output 4096 -> 100 × $1 + 4096 × $2 per Mtok
        assert_eq!(t.worst_case("mock-1", 100, None), Some(100 + 8192));
        assert_eq!(t.worst_case("mock-1", 100, Some(10)), Some(120));
        assert_eq!(t.worst_case("nope", 100, None), None);
    }

    #[test]
    fn huge_usage_saturates_instead_of_wrapping() {
        let p = Price {
            input: u64::MAX,
            output: u64::MAX,
            cached_input: u64::MAX,
            cache_write: u64::MAX,
            max_output_tokens: None,
        };
        let u = Usage {
            prompt: u64::MAX,
            completion: u64::MAX,
            cached: 0,
            cache_write: 0,
        };
        assert_eq!(p.cost(u), u64::MAX);
    }
}
