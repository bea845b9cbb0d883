//! Tool-name globs, as plugins take them in their configuration: `*` matches any
//! run of characters (also none), `?` any one character; everything else matches
//! itself.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it has swallowed up to:
    // on a mismatch, let that star swallow one more character and retry.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("read_file", "read_file"));
        assert!(!matches("read_file", "read_files"));
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("delete_*", "delete_repo"));
        assert!(matches("delete_*", "delete_"));
        assert!(!matches("delete_*", "undelete_repo"));
        assert!(matches("*_admin", "db_admin"));
        assert!(matches("*secret*", "get_secret_value"));
        assert!(matches("a*b*c", "a--b--b--c"));
        assert!(!matches("a*b*c", "a--b--b--"));
        assert!(matches("file_?", "file_1"));
        assert!(!matches("file_?", "file_12"));
        assert!(matches("naïve_*", "naïve_tool"));
    }
}
