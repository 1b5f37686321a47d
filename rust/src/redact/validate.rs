//! Checksums and plausibility checks that keep detectors honest: Luhn for card numbers,
//! ISO 13616 mod-97 (with per-country lengths) for IBANs, the SSA's reserved SSN ranges,
//! and Shannon entropy for keyword-assigned secrets.

/// Luhn check over ASCII digits. Any non-digit byte makes it false.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &b) in digits.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// The IBAN length of a country (ISO 13616 registry), or None for a non-IBAN country.
pub fn iban_length(cc: [u8; 2]) -> Option<usize> {
    let n = match &cc {
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FO" | b"GL" | b"NL" => 18,
        b"MK" | b"SI" => 19,
        b"AT" | b"BA" | b"EE" | b"KZ" | b"LT" | b"LU" | b"XK" => 20,
        b"CH" | b"HR" | b"LI" | b"LV" => 21,
        b"BG" | b"BH" | b"CR" | b"DE" | b"GB" | b"GE" | b"IE" | b"ME" | b"RS" | b"VA" => 22,
        b"AE" | b"GI" | b"IL" | b"IQ" | b"TL" => 23,
        b"AD" | b"CZ" | b"ES" | b"MD" | b"PK" | b"RO" | b"SA" | b"SE" | b"SK" | b"TN" | b"VG" => 24,
        b"PT" | b"ST" => 25,
        b"IS" | b"TR" => 26,
        b"FR" | b"GR" | b"IT" | b"MC" | b"MR" | b"SM" => 27,
        b"AL" | b"AZ" | b"BY" | b"CY" | b"DO" | b"GT" | b"HU" | b"LB" | b"PL" | b"SV" => 28,
        b"BR" | b"EG" | b"PS" | b"QA" | b"UA" => 29,
        b"JO" | b"KW" | b"MU" => 30,
        b"MT" | b"SC" => 31,
        b"LC" => 32,
        _ => return None,
    };
    Some(n)
}

/// mod-97 over a compact IBAN (no spaces): country length, check digits and checksum.
/// Letters may be either case.
pub fn iban_compact_valid(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let cc = [iban[0].to_ascii_uppercase(), iban[1].to_ascii_uppercase()];
    if !cc[0].is_ascii_uppercase() || !cc[1].is_ascii_uppercase() {
        return false;
    }
    if iban_length(cc) != Some(iban.len()) {
        return false;
    }
    if !iban[2].is_ascii_digit() || !iban[3].is_ascii_digit() {
        return false;
    }
    let mut rem = 0u32;
    for &b in iban[4..].iter().chain(iban[..4].iter()) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            b'a'..=b'z' => u32::from(b - b'a') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// An IBAN as written: compact or in groups separated by single spaces.
pub fn iban_valid(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|&b| b != b' ').collect();
    iban_compact_valid(&compact)
}

/// A US SSN is never issued with area 000, 666 or 900-999, group 00 or serial 0000.
pub fn ssn_parts_valid(area: u16, group: u16, serial: u16) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// `AAA-GG-SSSS`, `AAA GG SSSS` or nine digits, checked against the reserved ranges.
pub fn ssn_valid(text: &str) -> bool {
    let b = text.as_bytes();
    let digits: Vec<u8> = match b.len() {
        9 => b.to_vec(),
        11 if (b[3] == b'-' || b[3] == b' ') && b[6] == b[3] => {
            [&b[..3], &b[4..6], &b[7..]].concat()
        }
        _ => return false,
    };
    if digits.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |s: &[u8]| s.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
    ssn_parts_valid(num(&digits[..3]), num(&digits[3..5]), num(&digits[5..]))
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let n = bytes.len() as f64;
    let term = |c: usize| {
        let p = c as f64 / n;
        -p * p.log2()
    };
    // Short values (every keyword-assigned one) are sorted on the stack and counted in
    // runs, which beats zeroing and walking a 256-entry table.
    if bytes.len() <= 256 {
        let mut buf = [0u8; 256];
        let v = &mut buf[..bytes.len()];
        v.copy_from_slice(bytes);
        v.sort_unstable();
        return v.chunk_by(|a, b| a == b).map(|run| term(run.len())).sum();
    }
    let mut counts = [0usize; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    counts.iter().filter(|&&c| c > 0).map(|&c| term(c)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_numbers() {
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"378282246310005"));
        assert!(luhn_valid(b"5555555555554444"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(!luhn_valid(b"41111111a1111111"));
        assert!(!luhn_valid(b""));
    }

    #[test]
    fn iban_known_numbers() {
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("NO9386011117947"));
        assert!(!iban_valid("GB82WEST12345698765433"));
        assert!(!iban_valid("GB82WEST1234569876543"));
        assert!(!iban_valid("ZZ82WEST12345698765432"));
    }

    #[test]
    fn ssn_reserved_ranges() {
        assert!(ssn_valid("123-45-6789"));
        assert!(ssn_valid("123 45 6789"));
        assert!(ssn_valid("123456789"));
        assert!(!ssn_valid("000-45-6789"));
        assert!(!ssn_valid("666-45-6789"));
        assert!(!ssn_valid("900-45-6789"));
        assert!(!ssn_valid("123-00-6789"));
        assert!(!ssn_valid("123-45-0000"));
        assert!(!ssn_valid("123-45 6789"));
    }

    #[test]
    fn entropy_bounds() {
        assert_eq!(shannon_entropy(b""), 0.0);
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
