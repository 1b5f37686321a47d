//! Model-name globs for policy allow/deny lists: `*` matches any run of characters,
//! `?` exactly one; everything else is literal and compared ASCII-case-insensitively.

/// Whether `name` matches `pattern`. Linear in practice: the classic single-backtrack
/// algorithm, at most O(len(pattern) × len(name)) in the worst case.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi].eq_ignore_ascii_case(&n[ni])) {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("gpt-4o*", "gpt-4o-mini"));
        assert!(matches("gpt-4o*", "gpt-4o"));
        assert!(matches("GPT-4O", "gpt-4o"));
        assert!(!matches("gpt-4o", "gpt-4o-mini"));
        assert!(matches("*", ""));
        assert!(matches("claude-*-4-5", "claude-sonnet-4-5"));
        assert!(!matches("claude-*-4-5", "claude-sonnet-4-6"));
        assert!(matches("o?-mini", "o3-mini"));
        assert!(!matches("o?-mini", "o33-mini"));
        assert!(matches("*mini*", "gpt-5-mini-2025"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(!matches("", "x"));
    }
}
