//! Redis's glob matcher (`stringmatchlen` in util.c), byte for byte, so that KEYS, SCAN MATCH,
//! CONFIG GET and PSUBSCRIBE accept exactly the patterns Redis accepts.

/// Does `string` match `pattern`? Supports `*`, `?`, `[...]` (with `^` negation and ranges) and
/// `\` escapes. `nocase` folds ASCII case as Redis does for CONFIG GET.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    match_inner(pattern, string, nocase, 0)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

fn match_inner(mut p: &[u8], mut s: &[u8], nocase: bool, depth: usize) -> bool {
    // Redis caps recursion to avoid pathological patterns blowing the stack.
    if depth > 1000 {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_inner(&p[1..], s, nocase, depth + 1) {
                        return true;
                    }
                    s = &s[1..];
                }
                return false;
            }
            b'?' => {
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = !p.is_empty() && p[0] == b'^';
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if eq(p[0], s[0], nocase) {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut start, mut end) = (p[0], p[2]);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        let c = if nocase {
                            s[0].to_ascii_lowercase()
                        } else {
                            s[0]
                        };
                        let (start, end) = if nocase {
                            (start.to_ascii_lowercase(), end.to_ascii_lowercase())
                        } else {
                            (start, end)
                        };
                        p = &p[2..];
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if eq(p[0], s[0], nocase) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if p.is_empty() {
                    // Unterminated class: Redis treats the end as the end of the class.
                    let matched = if not { !matched } else { matched };
                    if !matched {
                        return false;
                    }
                    s = &s[1..];
                    return s.is_empty();
                }
                let matched = if not { !matched } else { matched };
                if !matched {
                    return false;
                }
                s = &s[1..];
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if !eq(p[0], s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if !eq(c, s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while !p.is_empty() && p[0] == b'*' {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn redis_patterns() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(!glob_match(b"h[a-b]llo", b"hcllo", false));
        assert!(glob_match(b"h\\*llo", b"h*llo", false));
        assert!(!glob_match(b"h\\*llo", b"hallo", false));
        assert!(glob_match(b"MAXMEMORY*", b"maxmemory-policy", true));
        assert!(!glob_match(b"a*b", b"acd", false));
        assert!(glob_match(b"", b"", false));
        assert!(!glob_match(b"", b"a", false));
        assert!(glob_match(b"a*", b"a", false));
    }
}
