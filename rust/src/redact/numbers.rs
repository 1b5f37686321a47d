//! Validators that start at a digit run: credit cards (Luhn + issuer prefix), IBANs
//! (country length + mod-97), US SSNs (reserved ranges rejected), IPv4 addresses and
//! phone numbers (E.164 and common national layouts). Digit groups are parsed once and
//! each family judges the same groups; a prefix of the groups may match when the rest is
//! separated from it by a space.

use super::family::Family;
use super::scan::Scan;
use super::validate::{iban_compact_valid, iban_length, luhn_valid, ssn_parts_valid};

const MAX_GROUPS: usize = 8;

/// A digit group: `start..end` are the digits; `paren` when written as `(415)`.
#[derive(Clone, Copy, Default, Debug)]
struct Group {
    start: usize,
    end: usize,
    paren: bool,
    /// The separator before this group (0 for the first group or none).
    sep: u8,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

struct Groups {
    plus: bool,
    n: usize,
    g: [Group; MAX_GROUPS],
    /// Offset of the end of group `k` including a closing parenthesis.
    ends: [usize; MAX_GROUPS],
}

impl Groups {
    fn digits(&self, s: &Scan<'_>, k: usize, buf: &mut [u8; 24]) -> usize {
        let mut n = 0;
        for g in &self.g[..k] {
            for &b in &s.h[g.start..g.end] {
                if n == buf.len() {
                    return n + 1;
                }
                buf[n] = b;
                n += 1;
            }
        }
        n
    }

    fn total(&self, k: usize) -> usize {
        self.g[..k].iter().map(Group::len).sum()
    }

    /// A prefix of `k` groups stands alone when nothing or only a space follows it.
    fn prefix_ok(&self, k: usize) -> bool {
        k == self.n || self.g[k].sep == b' ' && !self.g[k].paren
    }
}

fn digit_run(s: &Scan<'_>, i: usize) -> usize {
    s.run(i, 32, |b| b.is_ascii_digit())
}

/// Parses `+`? then digit groups separated by one of ` -.` (parentheses allowed around
/// a group) starting at `p`, into `gs`. Returns false when there is no group.
fn parse_groups(s: &Scan<'_>, p: usize, gs: &mut Groups) -> bool {
    gs.plus = false;
    gs.n = 0;
    let mut pos = p;
    if s.at(pos) == b'+' {
        gs.plus = true;
        pos += 1;
    }
    let mut sep = 0u8;
    loop {
        let paren = s.at(pos) == b'(';
        let ds = pos + usize::from(paren);
        let de = digit_run(s, ds);
        if de == ds || de - ds > 19 {
            break;
        }
        let mut after = de;
        if paren {
            if s.at(de) != b')' {
                break;
            }
            after += 1;
        }
        gs.g[gs.n] = Group {
            start: ds,
            end: de,
            paren,
            sep,
        };
        gs.ends[gs.n] = after;
        gs.n += 1;
        if gs.n == MAX_GROUPS {
            break;
        }
        let c = s.at(after);
        let next = s.at(after + 1);
        if matches!(c, b' ' | b'-' | b'.') && (next.is_ascii_digit() || next == b'(') {
            sep = c;
            pos = after + 1;
        } else if paren && (c.is_ascii_digit()) {
            sep = 0;
            pos = after;
        } else {
            break;
        }
    }
    gs.n > 0
}

/// Digits reachable from `i` through separators: fewer than 8 rules out every family
/// parsed from groups (the shortest, an E.164 number, has 8).
fn enough_digits(s: &Scan<'_>, i: usize) -> bool {
    let mut n = 0;
    let mut j = i;
    let lim = s.h.len().min(i + 40);
    while j < lim {
        match s.h[j] {
            b'0'..=b'9' => n += 1,
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => break,
        }
        if n >= 8 {
            return true;
        }
        j += 1;
    }
    false
}

/// The end of a `k`-group match, if the byte after it does not continue the token.
fn end_ok(s: &Scan<'_>, gs: &Groups, k: usize) -> Option<usize> {
    let e = gs.ends[k - 1];
    let c = s.at(e);
    if c.is_ascii_alphanumeric() || c == b'_' || c == b'@' {
        return None;
    }
    if (c == b'.' || c == b'-' || c == b',') && s.at(e + 1).is_ascii_digit() {
        return None;
    }
    Some(e)
}

fn card(s: &mut Scan<'_>, p: usize, gs: &Groups) -> Option<usize> {
    if gs.plus || gs.g[0].paren {
        return None;
    }
    let mut buf = [0u8; 24];
    for k in (1..=gs.n).rev() {
        if !gs.prefix_ok(k) {
            continue;
        }
        let total = gs.total(k);
        if !(13..=19).contains(&total) {
            continue;
        }
        let g = &gs.g[..k];
        if k > 1 {
            let sep = g[1].sep;
            let shaped = (sep == b' ' || sep == b'-')
                && g.iter().skip(1).all(|x| x.sep == sep && !x.paren)
                && g[..k - 1].iter().all(|x| (3..=6).contains(&x.len()))
                && (1..=6).contains(&g[k - 1].len());
            if !shaped {
                continue;
            }
        }
        let n = gs.digits(s, k, &mut buf);
        if n > 19 || !(b'2'..=b'6').contains(&buf[0]) || !luhn_valid(&buf[..n]) {
            continue;
        }
        let e = end_ok(s, gs, k)?;
        s.push(Family::CreditCard, p, e);
        return Some(e);
    }
    None
}

fn num(s: &Scan<'_>, g: &Group) -> u16 {
    s.h[g.start..g.end].iter().fold(0u16, |a, &d| {
        a.wrapping_mul(10).wrapping_add(u16::from(d - b'0'))
    })
}

fn ssn(s: &mut Scan<'_>, p: usize, gs: &Groups) -> Option<usize> {
    if gs.plus || gs.n < 3 || !gs.prefix_ok(3) {
        return None;
    }
    let g = &gs.g[..3];
    let shape = g[0].len() == 3 && g[1].len() == 2 && g[2].len() == 4;
    let sep = g[1].sep;
    if !shape || !(sep == b'-' || sep == b' ') || g[2].sep != sep || g.iter().any(|x| x.paren) {
        return None;
    }
    if !ssn_parts_valid(num(s, &g[0]), num(s, &g[1]), num(s, &g[2])) {
        return None;
    }
    let e = end_ok(s, gs, 3)?;
    s.push(Family::UsSsn, p, e);
    Some(e)
}

fn phone(s: &mut Scan<'_>, p: usize, gs: &Groups) -> Option<usize> {
    for k in (1..=gs.n).rev() {
        if !gs.prefix_ok(k) {
            continue;
        }
        let g = &gs.g[..k];
        let total = gs.total(k);
        let seps_same = g
            .iter()
            .skip(1)
            .all(|x| x.sep == g.get(1).map_or(0, |y| y.sep));
        let first = s.h[g[0].start];
        let ok = if gs.plus {
            // E.164: up to 15 digits, no leading zero; parentheses allowed.
            (8..=15).contains(&total) && first != b'0'
        } else {
            let shape = |want: &[usize]| {
                g.len() == want.len() && g.iter().zip(want).all(|(x, w)| x.len() == *w)
            };
            let nanp = |o: usize| {
                (b'2'..=b'9').contains(&s.h[g[o].start])
                    && (b'2'..=b'9').contains(&s.h[g[o + 1].start])
            };
            let parens = g.iter().filter(|x| x.paren).count();
            if shape(&[3, 3, 4]) {
                nanp(0)
                    && g[2].sep != 0
                    && if g[0].paren {
                        parens == 1
                    } else {
                        parens == 0 && g[1].sep == g[2].sep
                    }
            } else if shape(&[1, 3, 3, 4]) && first == b'1' && !g[0].paren {
                nanp(1)
                    && g[3].sep != 0
                    && if g[1].paren {
                        parens == 1
                    } else {
                        parens == 0 && g[2].sep == g[3].sep
                    }
            } else if first == b'0' && k >= 2 && parens == 0 {
                // National trunk-prefixed forms: 020 7946 0958, 07700 900123, 01 23 45 67 89.
                (10..=11).contains(&total)
                    && seps_same
                    && g[1].sep != b'.'
                    && g.iter().all(|x| x.len() >= 2)
            } else {
                false
            }
        };
        if ok {
            let e = end_ok(s, gs, k)?;
            s.push(Family::Phone, p, e);
            return Some(e);
        }
    }
    None
}

fn ipv4(s: &mut Scan<'_>, i: usize) -> Option<usize> {
    let mut pos = i;
    for k in 0..4 {
        let e = s.run(pos, 4, |b| b.is_ascii_digit());
        let len = e - pos;
        if len == 0 || len > 3 || (len > 1 && s.h[pos] == b'0') {
            return None;
        }
        let v = s.h[pos..e]
            .iter()
            .fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'));
        if v > 255 {
            return None;
        }
        pos = e;
        if k < 3 {
            if s.at(pos) != b'.' {
                return None;
            }
            pos += 1;
        }
    }
    let c = s.at(pos);
    if c.is_ascii_alphanumeric()
        || c == b'_'
        || (c == b'.' && s.at(pos + 1).is_ascii_alphanumeric())
    {
        return None;
    }
    s.push(Family::Ipv4, i, pos);
    Some(pos)
}

/// IBAN starting at the country code `b` (two upper-case letters before a digit run).
fn iban(s: &mut Scan<'_>, b: usize) -> Option<usize> {
    let want = iban_length([s.h[b], s.h[b + 1]])?;
    let mut buf = [0u8; 34];
    let mut n = 0;
    let mut pos = b;
    while n < want {
        let c = s.at(pos);
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            buf[n] = c;
            n += 1;
            pos += 1;
        } else if c == b' ' && n > 0 && n % 4 == 0 && s.at(pos + 1).is_ascii_alphanumeric() {
            pos += 1;
        } else {
            break;
        }
    }
    if n != want || s.at(pos).is_ascii_alphanumeric() || !iban_compact_valid(&buf[..n]) {
        return None;
    }
    s.push(Family::Iban, b, pos);
    Some(pos)
}

/// Called at the start of a digit run `i..run_end`; returns where the walk resumes.
pub fn at_digits(s: &mut Scan<'_>, i: usize, run_end: usize) -> usize {
    let mut next = run_end;
    let prev = s.before(i);
    if s.enabled(Family::Iban)
        && i >= 2
        && s.h[i - 2].is_ascii_uppercase()
        && prev.is_ascii_uppercase()
        && (i == 2 || !s.h[i - 3].is_ascii_alphanumeric())
    {
        if let Some(e) = iban(s, i - 2) {
            return e.max(next);
        }
    }
    if prev.is_ascii_alphanumeric() || prev == b'_' {
        // Inside a word (a hash, a UUID part, an identifier): nothing numeric starts
        // here or later in the same word.
        return s.run(run_end, usize::MAX, |b| {
            b.is_ascii_alphanumeric() || b == b'_'
        });
    }
    let prev2 = if i >= 2 { s.h[i - 2] } else { 0 };
    if (prev == b'.' || prev == b'-' || prev == b',' || prev == b':' || prev == b'/')
        && prev2.is_ascii_alphanumeric()
    {
        return next;
    }
    if s.enabled(Family::Ipv4) {
        if let Some(e) = ipv4(s, i) {
            return e.max(next);
        }
    }
    if !enough_digits(s, i) {
        return next;
    }
    let mut gs = Groups {
        plus: false,
        n: 0,
        g: [Group::default(); MAX_GROUPS],
        ends: [0; MAX_GROUPS],
    };
    let mut found = None;
    if parse_groups(s, i, &mut gs) {
        if s.enabled(Family::UsSsn) {
            found = ssn(s, i, &gs);
        }
        if found.is_none() && s.enabled(Family::CreditCard) {
            found = card(s, i, &gs);
        }
        if found.is_none() && s.enabled(Family::Phone) {
            // A phone may start at '+' or '(' just before the digits.
            let p = if (prev == b'+' || prev == b'(') && !s.before(i - 1).is_ascii_alphanumeric() {
                i - 1
            } else {
                i
            };
            if p == i {
                found = phone(s, i, &gs);
            } else if parse_groups(s, p, &mut gs) {
                found = phone(s, p, &gs);
            }
        }
    }
    if let Some(e) = found {
        next = next.max(e);
    }
    next
}
