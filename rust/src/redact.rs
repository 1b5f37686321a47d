//! Secret and personal-data redaction. A `Redactor` is compiled once from the enabled
//! families, custom patterns and a hash salt, and is immutable afterwards. Text flows
//! through `normalize` (undoing cheap evasions), one prefilter pass that finds trigger
//! positions (`scan`), anchored validators around each trigger (`keys`, `numbers`, `net`,
//! `generic`), overlap resolution, and finally masking of the original text (`mask`).
//! Spans are byte offsets into the caller's text; `stream` wraps the same for chunked
//! output with a hold-back buffer.

mod family;
mod generic;
mod keys;
mod mask;
mod net;
mod normalize;
mod numbers;
mod scan;
mod stream;
pub mod validate;

use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

use crate::CoreError;
pub use family::{Family, ALL as BUILTIN_FAMILIES};
pub use mask::{Mode, Modes};
pub use stream::StreamRedactor;

use normalize::normalize;
use scan::{resolve, scan_builtin, Cand, Prefilter};

static PREFILTER: LazyLock<Prefilter> = LazyLock::new(Prefilter::new);

/// Size limit for one compiled user pattern.
const CUSTOM_REGEX_SIZE: usize = 1 << 20;

/// A detection: `family` is an id (see `Redactor::family_name`), offsets are bytes into
/// the scanned text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub family: u16,
    pub start: usize,
    pub end: usize,
}

/// The result of masking one text.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Redacted {
    pub text: String,
    pub count: usize,
    /// Family ids found, ascending, without repeats.
    pub families: Vec<u16>,
}

struct Custom {
    family: u16,
    regex: Regex,
}

/// The compiled, immutable redactor.
pub struct Redactor {
    on: Vec<bool>,
    any_builtin: bool,
    custom: Vec<Custom>,
    names: Vec<String>,
    salt: Vec<u8>,
}

fn valid_type_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Redactor {
    /// All built-in family names.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN_FAMILIES.iter().map(|f| f.name()).collect()
    }

    /// Compiles a redactor. `families` None enables every built-in; `custom` holds
    /// `(TYPE_NAME, regex)` pairs; names are upper-cased.
    pub fn new(
        families: Option<&[String]>,
        custom: &[(String, String)],
        hash_salt: Option<&str>,
    ) -> Result<Redactor, CoreError> {
        let mut on = vec![families.is_none(); BUILTIN_FAMILIES.len()];
        for name in families.unwrap_or(&[]) {
            match Family::from_name(name) {
                Some(f) => on[f as usize] = true,
                None => {
                    return Err(CoreError::config(
                        format!("redaction family {name:?}"),
                        format!(
                            "unknown family; expected one of {}",
                            Self::builtin_names().join(", ")
                        ),
                    ))
                }
            }
        }
        let mut names: Vec<String> = BUILTIN_FAMILIES
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let mut compiled = Vec::with_capacity(custom.len());
        for (name, pattern) in custom {
            let upper = name.to_ascii_uppercase();
            if !valid_type_name(&upper) {
                return Err(CoreError::config(
                    format!("redaction pattern {name:?}"),
                    "the type name must be 1-64 letters, digits, '_' or '-'",
                ));
            }
            let regex = RegexBuilder::new(pattern)
                .size_limit(CUSTOM_REGEX_SIZE)
                .build()
                .map_err(|e| {
                    CoreError::config(
                        format!("redaction pattern {upper} ({pattern:?})"),
                        e.to_string(),
                    )
                })?;
            let family = match names.iter().position(|n| *n == upper) {
                Some(i) => i as u16,
                None => {
                    names.push(upper);
                    (names.len() - 1) as u16
                }
            };
            compiled.push(Custom { family, regex });
        }
        Ok(Redactor {
            any_builtin: on.iter().any(|&b| b),
            on,
            custom: compiled,
            names,
            salt: hash_salt.unwrap_or("").as_bytes().to_vec(),
        })
    }

    /// The name of a family id.
    pub fn family_name(&self, family: u16) -> &str {
        &self.names[family as usize]
    }

    /// Names of the enabled families (built-in and custom), in id order.
    pub fn enabled(&self) -> Vec<&str> {
        let mut out: Vec<&str> = BUILTIN_FAMILIES
            .iter()
            .filter(|f| self.on[**f as usize])
            .map(|f| f.name())
            .collect();
        for c in &self.custom {
            let n = self.family_name(c.family);
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out
    }

    /// Builds per-family modes from `(family, mode)` pairs. `default` or `*` sets the
    /// mode of unlisted families; unknown family names are ignored (the default applies),
    /// unknown modes are a `ConfigError`.
    pub fn modes<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Modes, CoreError> {
        let mut modes = Modes {
            default: Mode::Mask,
            per: vec![None; self.names.len()],
        };
        for (name, mode) in pairs {
            let m = Mode::parse(mode).ok_or_else(|| {
                CoreError::config(
                    format!("redaction mode for {name}"),
                    format!("unknown mode {mode:?}; expected mask, hash or block"),
                )
            })?;
            if name == "*" || name.eq_ignore_ascii_case("default") {
                modes.default = m;
            } else if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                modes.per[i] = Some(m);
            }
        }
        Ok(modes)
    }

    /// Detections in normalised offsets plus the normalisation that maps them back.
    fn detect<'t>(&self, text: &'t str) -> (normalize::Normalized<'t>, Vec<Cand>) {
        let norm = normalize(text);
        let h = norm.text.as_bytes();
        let mut cands = if self.any_builtin {
            scan_builtin(&PREFILTER, h, &self.on)
        } else {
            Vec::new()
        };
        for c in &self.custom {
            for m in c.regex.find_iter(&norm.text) {
                if m.end() > m.start() {
                    cands.push(Cand {
                        start: m.start(),
                        end: m.end(),
                        family: c.family,
                        rank: family::CUSTOM_RANK,
                    });
                }
            }
        }
        let cands = resolve(cands);
        (norm, cands)
    }

    /// Every detection in `text`, ordered by start, as byte offsets into `text`.
    pub fn scan(&self, text: &str) -> Vec<Span> {
        let (norm, cands) = self.detect(text);
        spans(&norm, &cands)
    }

    /// Masks every detection in `text`.
    pub fn redact(&self, text: &str, modes: &Modes) -> Redacted {
        let (norm, cands) = self.detect(text);
        if cands.is_empty() {
            return Redacted {
                text: text.to_string(),
                count: 0,
                families: Vec::new(),
            };
        }
        let mut out = String::with_capacity(text.len() + 16 * cands.len());
        let mut families = Vec::new();
        let mut last = 0;
        for c in &cands {
            let (s, e) = (norm.start(c.start), norm.end(c.end));
            out.push_str(&text[last..s]);
            self.push_token(
                &mut out,
                c.family,
                modes,
                &norm.text.as_bytes()[c.start..c.end],
            );
            families.push(c.family);
            last = e;
        }
        out.push_str(&text[last..]);
        families.sort_unstable();
        families.dedup();
        Redacted {
            text: out,
            count: cands.len(),
            families,
        }
    }

    fn push_token(&self, out: &mut String, family: u16, modes: &Modes, secret: &[u8]) {
        mask::token(
            out,
            self.family_name(family),
            modes.get(family),
            &self.salt,
            secret,
        );
    }

    /// Masks the parts of one message as the upstream sees them: joined. A secret split
    /// over parts is found in the joined text; its token goes where it starts and its
    /// remaining pieces are removed from the following parts.
    pub fn redact_parts(&self, parts: &[&str], modes: &Modes) -> Vec<Redacted> {
        let joined = parts.concat();
        let (norm, cands) = self.detect(&joined);
        let mut bounds = Vec::with_capacity(parts.len());
        let mut off = 0;
        for p in parts {
            bounds.push((off, off + p.len()));
            off += p.len();
        }
        let mut outs: Vec<Redacted> = parts
            .iter()
            .map(|p| Redacted {
                text: String::with_capacity(p.len()),
                count: 0,
                families: Vec::new(),
            })
            .collect();
        let mut cursor: Vec<usize> = bounds.iter().map(|b| b.0).collect();
        for c in &cands {
            let (s, e) = (norm.start(c.start), norm.end(c.end));
            for (k, &(ps, pe)) in bounds.iter().enumerate() {
                if pe <= s || ps >= e || (ps == pe) {
                    continue;
                }
                let (ls, le) = (s.max(ps), e.min(pe));
                outs[k].text.push_str(&joined[cursor[k]..ls]);
                if s >= ps {
                    let secret = &norm.text.as_bytes()[c.start..c.end];
                    self.push_token(&mut outs[k].text, c.family, modes, secret);
                    outs[k].count += 1;
                    outs[k].families.push(c.family);
                }
                cursor[k] = le;
            }
        }
        for (k, &(_, pe)) in bounds.iter().enumerate() {
            outs[k].text.push_str(&joined[cursor[k]..pe]);
            outs[k].families.sort_unstable();
            outs[k].families.dedup();
        }
        outs
    }
}

/// The detections `cands` (offsets into `norm.text`) as byte offsets into the original text.
fn spans(norm: &normalize::Normalized<'_>, cands: &[Cand]) -> Vec<Span> {
    cands
        .iter()
        .map(|c| Span {
            family: c.family,
            start: norm.start(c.start),
            end: norm.end(c.end),
        })
        .collect()
}

#[cfg(test)]
mod tests;
