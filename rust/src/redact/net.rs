//! Validators for network identifiers: e-mail addresses (found at '@') and IPv6
//! addresses (found at ':' between hex digits, checked by the standard library parser).

use std::net::Ipv6Addr;
use std::str::FromStr;

use super::family::Family;
use super::scan::{is_word, Scan};

fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

/// `local@domain.tld` around the '@' at `a`; returns where the walk resumes.
pub fn at_sign(s: &mut Scan<'_>, a: usize) -> usize {
    let h = s.h;
    let mut l = a;
    while l > 0 && a - l < 64 && local_char(h[l - 1]) {
        l -= 1;
    }
    if l > 0 && local_char(h[l - 1]) {
        return a + 1; // longer than any real local part
    }
    while l < a && (h[l] == b'.' || h[l] == b'-' || h[l] == b'+') {
        l += 1;
    }
    if l == a {
        return a + 1;
    }
    let mut r = s.run(a + 1, 253, domain_char);
    while r > a + 1 && (h[r - 1] == b'.' || h[r - 1] == b'-') {
        r -= 1;
    }
    let domain = &h[a + 1..r];
    if domain.is_empty() || domain_char(s.at(r)) && s.at(r) != b'.' && s.at(r) != b'-' {
        return a + 1;
    }
    let mut labels = 0;
    let mut tld: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return a + 1;
        }
        labels += 1;
        tld = label;
    }
    if labels < 2 || !(2..=24).contains(&tld.len()) || !tld.iter().all(u8::is_ascii_alphabetic) {
        return a + 1;
    }
    s.push(Family::Email, l, r);
    r
}

fn hexish(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':'
}

/// An IPv6 address around the ':' at `c`; returns the end of the examined region.
pub fn at_colon(s: &mut Scan<'_>, c: usize) -> usize {
    let h = s.h;
    if !hexish(s.before(c)) && !hexish(s.at(c + 1)) {
        return c + 1;
    }
    let mut l = c;
    while l > 0 && c - l < 40 && hexish(h[l - 1]) {
        l -= 1;
    }
    let mut r = s.run(c, 46, |b| hexish(b) || b == b'.');
    while r > c && h[r - 1] == b'.' {
        r -= 1;
    }
    // A single trailing ':' is punctuation ("at fe80::1: done"); "::" may end an address.
    if r >= c + 2 && h[r - 1] == b':' && h[r - 2] != b':' {
        r -= 1;
    }
    if (l > 0 && is_word(h[l - 1])) || is_word(s.at(r)) {
        return r.max(c + 1);
    }
    let cand = &h[l..r];
    let groups = cand.split(|&b| b == b':').filter(|g| !g.is_empty()).count();
    let compressed = memchr::memmem::find(cand, b"::").is_some();
    let first_len = cand.iter().position(|&b| b == b':').unwrap_or(0);
    let plausible = groups >= 3 || (compressed && groups == 2 && first_len >= 3);
    if !plausible {
        return r.max(c + 1);
    }
    let Ok(text) = std::str::from_utf8(cand) else {
        return r.max(c + 1);
    };
    if Ipv6Addr::from_str(text).is_ok() {
        s.push(Family::Ipv6, l, r);
    }
    r.max(c + 1)
}
