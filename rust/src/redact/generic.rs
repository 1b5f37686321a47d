//! Keyword-assigned secrets: `password=…`, `"api_key": "…"`, `client_secret: …`,
//! `Authorization: Bearer …`. The keyword comes from the prefilter; the value must look
//! like a secret (length, mixed character classes, Shannon entropy) and not like a
//! placeholder, a template reference, an identifier or a timestamp.

use super::family::Family;
use super::scan::Scan;
use super::validate::shannon_entropy;

/// Keywords that introduce an assigned secret (matched case-insensitively, anywhere in an
/// identifier: `DB_PASSWORD`, `client_secret`, `x-api-key`).
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

fn starts_ci(h: &[u8], at: usize, lit: &[u8]) -> bool {
    h.get(at..at + lit.len())
        .is_some_and(|w| w.eq_ignore_ascii_case(lit))
}

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

/// After a keyword at `ks..ke`: optional suffix, optional closing quote, `=`/`:`/`=>`/`:=`,
/// optional opening quote, then the value. The span is the value alone.
pub fn at_keyword(s: &mut Scan<'_>, _ks: usize, ke: usize) -> Option<usize> {
    if !s.enabled(Family::GenericSecret) {
        return None;
    }
    let h = s.h;
    let mut p = ke;
    if let Some(suf) = SUFFIXES.iter().find(|suf| starts_ci(h, p, suf)) {
        if !is_ident(s.at(p + suf.len())) {
            p += suf.len();
        }
    }
    if is_ident(s.at(p)) {
        return None;
    }
    if is_quote(s.at(p)) {
        p += 1;
    }
    p = skip_blank(s, p);
    if starts_ci(h, p, b"=>") || starts_ci(h, p, b":=") {
        p += 2;
    } else if matches!(s.at(p), b'=' | b':') {
        p += 1;
    } else {
        return None;
    }
    if matches!(s.at(p), b'=' | b':') {
        return None; // `==` comparison, `::` path
    }
    p = skip_blank(s, p);
    let (vs, ve) = if is_quote(s.at(p)) {
        let q = s.at(p);
        let vs = p + 1;
        let ve = s.run(vs, MAX_LEN + 1, |b| b != q && b != b'\n');
        if s.at(ve) != q {
            return None;
        }
        (vs, ve)
    } else {
        let ve = s.run(p, MAX_LEN + 1, |b| {
            !b.is_ascii_whitespace()
                && !matches!(
                    b,
                    b',' | b';' | b')' | b']' | b'}' | b'>' | b'"' | b'\'' | b'`'
                )
        });
        (p, ve)
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
    if vs == be {
        return None;
    }
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
