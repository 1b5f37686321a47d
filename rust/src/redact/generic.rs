//! Keyword-assigned secrets: `password=…`, `"api_key": "…"`, `client_secret: …`,
//! `Authorization: Bearer …`. The walk stops at '=' and ':' and looks back for an
//! identifier that names a secret (or the prefilter finds `Bearer `); the value must look
//! like a secret (length, mixed character classes, Shannon entropy) and not like a
//! placeholder, a template reference, an identifier or a timestamp.

use super::family::Family;
use super::scan::Scan;
use super::validate::shannon_entropy;

/// Keywords that introduce an assigned secret (matched case-insensitively at the end of
/// an identifier: `DB_PASSWORD`, `client_secret`, `x-api-key`).
pub const KEYWORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "accesskey",
    "private_key",
    "credential",
];

/// Suffixes an identifier may carry after the keyword (`secret_key`, `tokens`).
const SUFFIXES: &[&[u8]] = &[
    b"_access_key",
    b"_key",
    b"-key",
    b"key",
    b"_secret",
    b"_token",
    b"_value",
    b"_id",
    b"s",
];

/// Minimum Shannon entropy (bits per byte) of a keyword-assigned value.
pub const MIN_ENTROPY: f64 = 2.5;
/// Minimum Shannon entropy of a bearer token.
const MIN_BEARER_ENTROPY: f64 = 3.0;
const MIN_LEN: usize = 8;
const MAX_LEN: usize = 256;

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_quote(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'`')
}

fn skip_blank(s: &Scan<'_>, i: usize) -> usize {
    s.run(i, 16, |b| b == b' ' || b == b'\t')
}

/// Whether `v` looks like a real secret rather than a placeholder or reference.
pub fn plausible_secret(v: &[u8], min_entropy: f64) -> bool {
    if !(MIN_LEN..=MAX_LEN).contains(&v.len()) {
        return false;
    }
    // Template references and placeholders: ${X}, <X>, %X%, %(x)s, ********.
    if matches!(v[0], b'$' | b'<' | b'{' | b'[' | b'(') {
        return false;
    }
    if v[0] == b'%' && (v[v.len() - 1] == b'%' || v[1] == b'(') {
        return false;
    }
    if v.iter().filter(|&&b| b == b'*').count() * 2 >= v.len() {
        return false;
    }
    if v.iter().any(|&b| matches!(b, b'(' | b'{' | b'<' | b'[')) {
        return false;
    }
    let lower = v.iter().any(u8::is_ascii_lowercase);
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let digit = v.iter().any(u8::is_ascii_digit);
    let other = v.iter().any(|b| !b.is_ascii_alphanumeric());
    if u8::from(lower) + u8::from(upper) + u8::from(digit) + u8::from(other) < 2 {
        return false;
    }
    // Identifiers and dotted paths (settings.SECRET_KEY, MY_TOKEN_NAME).
    if !digit
        && v.iter()
            .all(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'.' || b == b'-')
    {
        return false;
    }
    // Dates, times and version numbers.
    if v.iter()
        .all(|&b| b.is_ascii_digit() || b"-:.TZ+ /v".contains(&b))
    {
        return false;
    }
    shannon_entropy(v) >= min_entropy
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether an identifier (`DB_PASSWORD`, `client_secret`, `x-api-key`, `secret_key`)
/// names a secret: it ends with a keyword, optionally followed by one suffix.
pub fn names_secret(ident: &[u8]) -> bool {
    let n = ident.len();
    if !(3..=64).contains(&n) {
        return false;
    }
    // Every keyword + suffix ends in one of these letters: a cheap first cut.
    if !matches!(
        ident[n - 1].to_ascii_lowercase(),
        b'd' | b'e' | b't' | b'n' | b'y' | b'l' | b's'
    ) {
        return false;
    }
    let mut buf = [0u8; 64];
    let low = &mut buf[..n];
    low.copy_from_slice(ident);
    low.make_ascii_lowercase();
    let low = &*low;
    std::iter::once(&b""[..])
        .chain(SUFFIXES.iter().copied())
        .filter(|suf| low.ends_with(suf))
        .any(|suf| {
            let rem = &low[..n - suf.len()];
            KEYWORDS.iter().any(|kw| rem.ends_with(kw.as_bytes()))
        })
}

/// At an assignment operator `p` ('=' or ':'): the identifier before it must name a
/// secret and the value after it must look like one. The span is the value alone.
pub fn at_assign(s: &mut Scan<'_>, p: usize) -> Option<usize> {
    let h = s.h;
    let prev = s.before(p);
    let mut after = p + 1;
    match (h[p], s.at(p + 1)) {
        (b'=', b'>') | (b':', b'=') => after += 1,
        (b'=', b'=') | (b':', b':') => return None,
        _ => {}
    }
    if matches!(prev, b'=' | b'!' | b'<' | b'>' | b':') {
        return None;
    }
    // The identifier before the operator: `name`, `"name"`, `name  `.
    let mut q = p;
    while q > 0 && p - q < 8 && is_blank(h[q - 1]) {
        q -= 1;
    }
    if q > 0 && is_quote(h[q - 1]) {
        q -= 1;
    }
    let mut i = q;
    while i > 0 && q - i < 64 && (is_ident(h[i - 1]) || h[i - 1] == b'.') {
        i -= 1;
    }
    if !names_secret(&h[i..q]) {
        return None;
    }
    let mut v = skip_blank(s, after);
    let (vs, ve) = if is_quote(s.at(v)) {
        let qc = s.at(v);
        v += 1;
        let ve = s.run(v, MAX_LEN + 1, |b| b != qc && b != b'\n');
        if s.at(ve) != qc {
            return None;
        }
        (v, ve)
    } else {
        let ve = s.run(v, MAX_LEN + 1, |b| {
            !b.is_ascii_whitespace()
                && !matches!(
                    b,
                    b',' | b';' | b')' | b']' | b'}' | b'>' | b'"' | b'\'' | b'`'
                )
        });
        (v, ve)
    };
    if !plausible_secret(&h[vs..ve], MIN_ENTROPY) {
        return None;
    }
    s.push(Family::GenericSecret, vs, ve);
    Some(ve)
}

/// `Bearer <token>` (an Authorization header pasted into a prompt).
pub fn at_bearer(s: &mut Scan<'_>, bs: usize, be: usize) -> Option<usize> {
    if !s.enabled(Family::GenericSecret) || s.before(bs).is_ascii_alphanumeric() {
        return None;
    }
    let vs = skip_blank(s, be);
    let ve = s.run(vs, MAX_LEN + 1, |b| {
        b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b)
    });
    let v = &s.h[vs..ve];
    if v.len() < 16 || !plausible_secret(v, MIN_BEARER_ENTROPY) {
        return None;
    }
    s.push(Family::GenericSecret, vs, ve);
    Some(ve)
}
