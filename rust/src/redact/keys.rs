//! Validators for prefixed credentials: OpenAI and Anthropic keys, Stripe, AWS access key
//! ids, GitHub tokens, Slack tokens and webhooks, Google API keys, JWTs and PEM private
//! key blocks. Each starts at a literal trigger found by the prefilter and checks the
//! exact case, the boundaries and the body shape.

use super::family::Family;
use super::scan::{is_b64url, is_word, Scan, Trigger};

/// Longest token body the validators walk (keeps a pathological run bounded).
const MAX_TOKEN: usize = 1024;
/// How far a PEM block may run before its END line.
const MAX_PEM: usize = 64 * 1024;

fn exact(s: &Scan<'_>, start: usize, lit: &[u8]) -> bool {
    s.h.get(start..start + lit.len()) == Some(lit)
}

/// Counts how many of {lower, upper, digit} occur.
fn classes(b: &[u8]) -> u32 {
    let (mut lo, mut up, mut di) = (false, false, false);
    for &c in b {
        lo |= c.is_ascii_lowercase();
        up |= c.is_ascii_uppercase();
        di |= c.is_ascii_digit();
    }
    u32::from(lo) + u32::from(up) + u32::from(di)
}

/// Dispatches a literal trigger; returns the end of a detection, if any.
pub fn at_trigger(s: &mut Scan<'_>, kind: Trigger, start: usize, end: usize) -> Option<usize> {
    match kind {
        Trigger::SkDash => sk_dash(s, start, end),
        Trigger::Stripe => stripe(s, start, end),
        Trigger::Aws => aws(s, start, end),
        Trigger::Github => github(s, start, end),
        Trigger::GithubPat => github_pat(s, start, end),
        Trigger::Slack => slack(s, start, end),
        Trigger::SlackHook => slack_hook(s, start, end),
        Trigger::Google => google(s, start, end),
        Trigger::Jwt => jwt(s, start),
        Trigger::Pem => pem(s, start),
        Trigger::Bearer => None,
    }
}

/// `sk-ant-…` (Anthropic) or `sk-…`, `sk-proj-…`, `sk-svcacct-…`, `sk-admin-…` (OpenAI).
fn sk_dash(s: &mut Scan<'_>, start: usize, end: usize) -> Option<usize> {
    if !exact(s, start, b"sk-") || is_b64url(s.before(start)) {
        return None;
    }
    let body_end = s.run(end, MAX_TOKEN, is_b64url);
    if is_b64url(s.at(body_end)) {
        return None;
    }
    let body = &s.h[end..body_end];
    if body.starts_with(b"ant-") {
        // sk-ant-api03-<93 chars> / sk-ant-admin01-<…>
        let rest = &body[4..];
        let dash = rest.iter().position(|&b| b == b'-')?;
        let kind = &rest[..dash];
        let secret = &rest[dash + 1..];
        if kind.is_empty() || !kind.iter().all(u8::is_ascii_alphanumeric) || secret.len() < 32 {
            return None;
        }
        if classes(secret) < 2 {
            return None;
        }
        s.push(Family::AnthropicKey, start, body_end);
        return Some(body_end);
    }
    let secret = [&b"proj-"[..], b"svcacct-", b"admin-", b"None-", b"service-"]
        .iter()
        .find(|p| body.starts_with(p))
        .map_or(body, |p| &body[p.len()..]);
    if secret.len() < 20 || classes(secret) < 2 {
        return None;
    }
    // A legacy key is plain alphanumerics; typed keys may carry '-' and '_'.
    if secret.len() == body.len() && !body.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    s.push(Family::OpenaiKey, start, body_end);
    Some(body_end)
}

/// `sk_live_…`, `sk_test_…`, `rk_live_…`, `rk_test_…`.
fn stripe(s: &mut Scan<'_>, start: usize, end: usize) -> Option<usize> {
    let lit = &s.h[start..end];
    if !lit.iter().all(|b| !b.is_ascii_uppercase()) || is_word(s.before(start)) {
        return None;
    }
    let body_end = s.run(end, MAX_TOKEN, |b| b.is_ascii_alphanumeric());
    if is_word(s.at(body_end)) || body_end - end < 16 || classes(&s.h[end..body_end]) < 2 {
        return None;
    }
    s.push(Family::StripeKey, start, body_end);
    Some(body_end)
}

/// AWS access key id: a four-letter type prefix and sixteen base-32 characters.
fn aws(s: &mut Scan<'_>, start: usize, end: usize) -> Option<usize> {
    if !s.h[start..end].iter().all(u8::is_ascii_uppercase)
        || s.before(start).is_ascii_alphanumeric()
    {
        return None;
    }
    let body_end = s.run(end, 17, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if body_end - end != 16 || s.at(body_end).is_ascii_alphanumeric() {
        return None;
    }
    s.push(Family::AwsAccessKey, start, body_end);
    Some(body_end)
}

/// Classic GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36 or more alphanumerics.
fn github(s: &mut Scan<'_>, start: usize, end: usize) -> Option<usize> {
    if !s.h[start..end].iter().all(|b| !b.is_ascii_uppercase()) || is_word(s.before(start)) {
        return None;
    }
    let body_end = s.run(end, 256, |b| b.is_ascii_alphanumeric());
    if is_word(s.at(body_end)) || body_end - end < 36 {
        return None;
    }
    s.push(Family::GithubToken, start, body_end);
    Some(body_end)
}

/// Fine-grained GitHub tokens: `github_pat_` + 22 characters, `_`, 59 characters.
fn github_pat(s: &mut Scan<'_>, start: usize, end: usize) -> Option<usize> {
    if !exact(s, start, b"github_pat_") || is_word(s.before(start)) {
        return None;
    }
    let body_end = s.run(end, 256, is_word);
    if body_end - end < 50 || classes(&s.h[end..body_end]) < 2 {
        return None;
    }
    s.push(Family::GithubToken, start, body_end);
    Some(body_end)
}

/// Slack tokens: `xoxb-`, `xoxp-`, `xoxa-`, `xoxo-`, `xoxr-`, `xoxs-`, `xapp-`.
fn slack(s: &mut Scan<'_>, start: usize, end: usize) -> Option<usize> {
    if !s.h[start..end].iter().all(|b| !b.is_ascii_uppercase()) || is_b64url(s.before(start)) {
        return None;
    }
    let body_end = s.run(end, MAX_TOKEN, |b| b.is_ascii_alphanumeric() || b == b'-');
    let body = &s.h[end..body_end];
    if body.len() < 20 || !body.iter().any(u8::is_ascii_digit) || !body.contains(&b'-') {
        return None;
    }
    s.push(Family::SlackToken, start, body_end);
    Some(body_end)
}

/// `https://hooks.slack.com/services/T…/B…/…` (and `/workflows/…`).
fn slack_hook(s: &mut Scan<'_>, start: usize, end: usize) -> Option<usize> {
    if !exact(s, start, b"hooks.slack.com") {
        return None;
    }
    let mut from = start;
    for scheme in [&b"https://"[..], b"http://"] {
        if start >= scheme.len() && &s.h[start - scheme.len()..start] == scheme {
            from = start - scheme.len();
        }
    }
    if from == start && is_word(s.before(start)) {
        return None;
    }
    let path = if s.h[end..].starts_with(b"/services/") {
        end + 10
    } else if s.h[end..].starts_with(b"/workflows/") {
        end + 11
    } else {
        return None;
    };
    let path_end = s.run(path, 512, |b| is_word(b) || b == b'/' || b == b'-');
    let tail = &s.h[path..path_end];
    if tail.len() < 20 || !tail.contains(&b'/') {
        return None;
    }
    s.push(Family::SlackWebhook, from, path_end);
    Some(path_end)
}

/// Google API keys: `AIza` + 35 base64url characters.
fn google(s: &mut Scan<'_>, start: usize, end: usize) -> Option<usize> {
    if !exact(s, start, b"AIza") || is_b64url(s.before(start)) {
        return None;
    }
    let body_end = s.run(end, 36, is_b64url);
    if body_end - end != 35 {
        return None;
    }
    s.push(Family::GoogleApiKey, start, body_end);
    Some(body_end)
}

fn b64url_val(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'-' | b'+' => 62,
        b'_' | b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes the first `max` bytes of base64url (enough to look at a JWT header).
fn b64url_prefix(seg: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(max);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in seg {
        let Some(v) = b64url_val(c) else { break };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

/// JWT: `eyJ…` header (JSON with "alg" or "typ"), payload, optional signature.
fn jwt(s: &mut Scan<'_>, start: usize) -> Option<usize> {
    if !exact(s, start, b"eyJ") || is_b64url(s.before(start)) {
        return None;
    }
    let h_end = s.run(start, 4096, is_b64url);
    if h_end - start < 10 || s.at(h_end) != b'.' {
        return None;
    }
    let header = b64url_prefix(&s.h[start..h_end], 256);
    let has = |k: &[u8]| header.windows(k.len()).any(|w| w == k);
    if !has(b"\"alg\"") && !has(b"\"typ\"") {
        return None;
    }
    let p_end = s.run(h_end + 1, 16384, is_b64url);
    if p_end - (h_end + 1) < 10 || s.at(p_end) != b'.' {
        return None;
    }
    let sig_end = s.run(p_end + 1, 4096, is_b64url);
    s.push(Family::Jwt, start, sig_end);
    Some(sig_end)
}

/// PEM private key blocks (`-----BEGIN … PRIVATE KEY-----` … `-----END …-----`). A block
/// without its END line (a truncated paste) runs over its base64 body.
fn pem(s: &mut Scan<'_>, start: usize) -> Option<usize> {
    let h = s.h;
    let label_start = start + 10;
    if h.get(label_start) != Some(&b' ') {
        return None;
    }
    let label_end = s.run(label_start + 1, 64, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
    });
    let label = &h[label_start + 1..label_end];
    if !h[label_end..].starts_with(b"-----") {
        return None;
    }
    let is_private = label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK");
    if !is_private {
        return None;
    }
    let body = label_end + 5;
    let lim = h.len().min(body + MAX_PEM);
    let from = body.max(s.pem_searched).min(lim);
    let end = match memchr::memmem::find(&h[from..lim], b"-----END ") {
        Some(off) => {
            let e = from + off + 9;
            memchr::memmem::find(&h[e..h.len().min(e + 80)], b"-----").map_or(e, |c| e + c + 5)
        }
        None => {
            s.pem_searched = lim.saturating_sub(8);
            pem_body_end(h, body)
        }
    };
    s.push(Family::PrivateKey, start, end);
    Some(end)
}

/// End of a truncated PEM body: the following lines (split by a newline or a literal
/// `\n`) that hold only base64 characters or a `Key: value` header.
fn pem_body_end(h: &[u8], body: usize) -> usize {
    let lim = h.len().min(body + MAX_PEM);
    let mut end = body;
    let mut i = body;
    while i < lim {
        // Skip line separators.
        if h[i] == b'\n' || h[i] == b'\r' {
            i += 1;
            continue;
        }
        if h[i] == b'\\' && h.get(i + 1) == Some(&b'n') {
            i += 2;
            continue;
        }
        let mut j = i;
        while j < lim && h[j] != b'\n' && h[j] != b'\r' && h[j] != b'\\' {
            j += 1;
        }
        let line = &h[i..j];
        let b64 = line
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b));
        let header =
            line.contains(&b':') && line.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
        if line.is_empty() || !(b64 || header) {
            break;
        }
        end = j;
        i = j;
    }
    end.max(body)
}
