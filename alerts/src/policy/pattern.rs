//! `*` wildcards for identity and route patterns.

/// Whether `value` matches `pattern`, where `*` stands for any run of characters
/// (including none) and everything else matches itself. Linear in practice: on a
/// mismatch it backtracks only to the last `*`.
pub(crate) fn matches_pattern(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches_pattern;

    #[test]
    fn wildcards_match_runs_and_literals_match_themselves() {
        assert!(matches_pattern("GET /v1/users/*", "GET /v1/users/{id}"));
        assert!(matches_pattern("GET /v1/users/*", "GET /v1/users/"));
        assert!(!matches_pattern("GET /v1/users/*", "POST /v1/users/{id}"));
        assert!(matches_pattern("sub:svc-*", "sub:svc-billing"));
        assert!(!matches_pattern("sub:svc-*", "sub:alice"));
        assert!(matches_pattern("*export*", "POST /v1/export/all"));
        assert!(matches_pattern("*", ""));
        assert!(matches_pattern("a*b*c", "aXXbYYc"));
        assert!(!matches_pattern("a*b*c", "aXXbYY"));
        assert!(matches_pattern("exact", "exact"));
        assert!(!matches_pattern("exact", "exactly"));
        assert!(!matches_pattern("exact", "exac"));
        assert!(
            matches_pattern("*ab", "aab"),
            "backtracking past a partial match"
        );
    }
}
