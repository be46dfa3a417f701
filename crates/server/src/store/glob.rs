//! Redis's glob patterns (`stringmatchlen` in util.c), with Redis's parsing of every edge case,
//! matched in bounded time.
//!
//! Redis's matcher recurses at every `*` and re-parses `[...]` classes at every attempt, so a
//! pattern such as `a*a*a*…*b` against a long key backtracks exponentially (CVE-2022-36021) and a
//! huge class multiplies every step (Valkey's `*[<40,000 members>]`). Here a pattern is compiled
//! once into tokens that each match exactly one byte (a class becomes a 256-bit set), and the
//! match is the classic iterative algorithm that backtracks only to the last `*`: at most
//! O(tokens × string) steps, no recursion, whatever the pattern.

/// One compiled element of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// `*`: any run of bytes (consecutive stars are merged).
    Star,
    /// `?`: any one byte.
    Any,
    /// A literal byte (`\x` escapes included); compared case-folded under `nocase`.
    Byte(u8),
    /// A `[...]` class, as the set of bytes it accepts (negation and case folding applied).
    Class(Box<[u64; 4]>),
}

/// A pattern compiled for repeated matching (KEYS and SCAN test every key against one pattern).
#[derive(Clone, Debug)]
pub struct GlobPattern {
    tokens: Vec<Token>,
    nocase: bool,
    /// The pattern is exactly `*`, which KEYS and SCAN take as "every key" without matching.
    match_all: bool,
    /// The literal before the pattern's only star, when the pattern is `literal*` (the usual
    /// `prefix:*` of a job or a scan): matching is then a prefix comparison.
    prefix: Option<Vec<u8>>,
}

fn set_bit(set: &mut [u64; 4], c: u8) {
    set[(c >> 6) as usize] |= 1u64 << (c & 63);
}

fn has_bit(set: &[u64; 4], c: u8) -> bool {
    set[(c >> 6) as usize] & (1u64 << (c & 63)) != 0
}

impl GlobPattern {
    /// Compiles `pattern` following Redis's reading of it: `\` escapes the next byte (a trailing
    /// `\` is literal), `[^…]` negates, `a-z` ranges (either order), an unterminated class runs
    /// to the end of the pattern.
    pub fn new(pattern: &[u8], nocase: bool) -> GlobPattern {
        let mut tokens = Vec::new();
        let mut i = 0;
        let p = pattern;
        while i < p.len() {
            match p[i] {
                b'*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                b'[' => {
                    let (set, next) = compile_class(p, i + 1, nocase);
                    tokens.push(Token::Class(Box::new(set)));
                    i = next;
                }
                b'\\' if i + 1 < p.len() => {
                    tokens.push(Token::Byte(p[i + 1]));
                    i += 2;
                }
                c => {
                    tokens.push(Token::Byte(c));
                    i += 1;
                }
            }
        }
        let match_all = pattern == b"*";
        let prefix = match tokens.split_last() {
            Some((Token::Star, literal)) if !nocase => literal
                .iter()
                .map(|t| match t {
                    Token::Byte(b) => Some(*b),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        GlobPattern {
            tokens,
            nocase,
            match_all,
            prefix,
        }
    }

    fn token_matches(&self, t: &Token, c: u8) -> bool {
        match t {
            Token::Any => true,
            Token::Byte(b) => {
                if self.nocase {
                    b.eq_ignore_ascii_case(&c)
                } else {
                    *b == c
                }
            }
            Token::Class(set) => has_bit(set, c),
            Token::Star => unreachable!("stars are handled by the matcher"),
        }
    }

    /// Whether the pattern is exactly `*`: KEYS and SCAN then return every key, the empty one
    /// included, as Redis does.
    pub fn is_match_all(&self) -> bool {
        self.match_all
    }

    /// Does `s` match? Iterative, backtracking only to the most recent `*`: since every other
    /// token consumes exactly one byte, an earlier star never needs to give back more. As in
    /// Redis, the empty string matches only the empty pattern.
    pub fn matches(&self, s: &[u8]) -> bool {
        let t = &self.tokens;
        if s.is_empty() {
            return t.is_empty();
        }
        if let Some(prefix) = &self.prefix {
            return s.starts_with(prefix);
        }
        let (mut ti, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if ti < t.len() {
                if t[ti] == Token::Star {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                if self.token_matches(&t[ti], s[si]) {
                    ti += 1;
                    si += 1;
                    continue;
                }
            }
            match star {
                Some((st, ss)) => {
                    // Let the last star swallow one more byte and retry what follows it.
                    star = Some((st, ss + 1));
                    ti = st + 1;
                    si = ss + 1;
                }
                None => return false,
            }
        }
        while ti < t.len() && t[ti] == Token::Star {
            ti += 1;
        }
        ti == t.len()
    }
}

/// Compiles the class whose body starts at `p[i]` (just after `[`), returning the accepted set
/// and the index after the closing `]` (or the end of the pattern when there is none).
fn compile_class(p: &[u8], mut i: usize, nocase: bool) -> ([u64; 4], usize) {
    let not = i < p.len() && p[i] == b'^';
    if not {
        i += 1;
    }
    let mut set = [0u64; 4];
    let fold = |c: u8| if nocase { c.to_ascii_lowercase() } else { c };
    loop {
        if i >= p.len() {
            break;
        }
        if p[i] == b'\\' && i + 1 < p.len() {
            // Redis compares escaped class members exactly, even under nocase.
            set_bit(&mut set, p[i + 1]);
            i += 2;
        } else if p[i] == b']' {
            i += 1;
            break;
        } else if i + 2 < p.len() && p[i + 1] == b'-' {
            let (mut start, mut end) = (p[i], p[i + 2]);
            if start > end {
                std::mem::swap(&mut start, &mut end);
            }
            let (start, end) = (fold(start), fold(end));
            for c in 0..=255u8 {
                let f = fold(c);
                if f >= start && f <= end {
                    set_bit(&mut set, c);
                }
            }
            i += 3;
        } else {
            let b = p[i];
            set_bit(&mut set, b);
            if nocase {
                set_bit(&mut set, b.to_ascii_lowercase());
                set_bit(&mut set, b.to_ascii_uppercase());
            }
            i += 1;
        }
    }
    if not {
        for w in set.iter_mut() {
            *w = !*w;
        }
    }
    (set, i)
}

/// Does `string` match `pattern`? Supports `*`, `?`, `[...]` (with `^` negation and ranges) and
/// `\` escapes. `nocase` folds ASCII case as Redis does for CONFIG GET. Callers that test many
/// strings against one pattern compile it once with [`GlobPattern::new`].
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    GlobPattern::new(pattern, nocase).matches(string)
}

#[cfg(test)]
mod tests {
    use super::glob_match;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    /// Redis 7.0's `stringmatchlen`, transcribed literally (recursive, exponential in the worst
    /// case): the reference the compiled matcher must agree with on small inputs.
    fn reference(p: &[u8], s: &[u8], nocase: bool) -> bool {
        fn at(v: &[u8], i: usize) -> u8 {
            v.get(i).copied().unwrap_or(0)
        }
        fn lower(c: u8) -> u8 {
            c.to_ascii_lowercase()
        }
        fn rec(p: &[u8], s: &[u8], nocase: bool) -> bool {
            let (mut pi, mut si) = (0usize, 0usize);
            while pi < p.len() && si < s.len() {
                match p[pi] {
                    b'*' => {
                        while pi + 1 < p.len() && p[pi + 1] == b'*' {
                            pi += 1;
                        }
                        if pi + 1 == p.len() {
                            return true;
                        }
                        while si < s.len() {
                            if rec(&p[pi + 1..], &s[si..], nocase) {
                                return true;
                            }
                            si += 1;
                        }
                        return false;
                    }
                    b'?' => si += 1,
                    b'[' => {
                        pi += 1;
                        let not = at(p, pi) == b'^';
                        if not {
                            pi += 1;
                        }
                        let mut matched = false;
                        loop {
                            let left = p.len() as isize - pi as isize;
                            if at(p, pi) == b'\\' && left >= 2 {
                                pi += 1;
                                if p[pi] == s[si] {
                                    matched = true;
                                }
                            } else if at(p, pi) == b']' && left >= 1 {
                                break;
                            } else if left <= 0 {
                                pi -= 1;
                                break;
                            } else if left >= 3 && p[pi + 1] == b'-' {
                                let (mut a, mut b) = (p[pi], p[pi + 2]);
                                if a > b {
                                    std::mem::swap(&mut a, &mut b);
                                }
                                let mut c = s[si];
                                if nocase {
                                    a = lower(a);
                                    b = lower(b);
                                    c = lower(c);
                                }
                                pi += 2;
                                if c >= a && c <= b {
                                    matched = true;
                                }
                            } else if (!nocase && p[pi] == s[si])
                                || (nocase && lower(p[pi]) == lower(s[si]))
                            {
                                matched = true;
                            }
                            pi += 1;
                        }
                        if not {
                            matched = !matched;
                        }
                        if !matched {
                            return false;
                        }
                        si += 1;
                    }
                    b'\\' if p.len() - pi >= 2 => {
                        pi += 1;
                        let ok = if nocase {
                            lower(p[pi]) == lower(s[si])
                        } else {
                            p[pi] == s[si]
                        };
                        if !ok {
                            return false;
                        }
                        si += 1;
                    }
                    c => {
                        let ok = if nocase {
                            lower(c) == lower(s[si])
                        } else {
                            c == s[si]
                        };
                        if !ok {
                            return false;
                        }
                        si += 1;
                    }
                }
                pi += 1;
                if si == s.len() {
                    while pi < p.len() && p[pi] == b'*' {
                        pi += 1;
                    }
                    break;
                }
            }
            pi == p.len() && si == s.len()
        }
        rec(p, s, nocase)
    }

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
        // Redis's edge cases: unterminated classes, trailing backslash, reversed ranges.
        assert!(glob_match(b"a[bc", b"ab", false));
        assert!(glob_match(b"a\\", b"a\\", false));
        assert!(glob_match(b"[z-a]", b"m", false));
        assert!(glob_match(b"[a-]", b"]", false));
        assert!(!glob_match(b"[", b"", false));
    }

    #[test]
    fn hostile_patterns_finish_quickly() {
        let key = vec![b'a'; 40];
        let started = Instant::now();
        let star_a = b"a*".repeat(20);
        let mut pattern = star_a.clone();
        pattern.push(b'b');
        assert!(!glob_match(&pattern, &key, false));
        // A long key and a long pattern of stars.
        let long_key = vec![b'a'; 100_000];
        let mut long_pattern = b"*a".repeat(5_000);
        long_pattern.push(b'b');
        assert!(!glob_match(&long_pattern, &long_key, false));
        // A huge class, matched at every backtrack.
        let mut class = b"*[".to_vec();
        for i in 0..40_000u32 {
            class.push(b'a' + (i % 20) as u8);
        }
        class.extend_from_slice(b"]x");
        assert!(!glob_match(&class, &long_key, false));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// Random patterns over a small alphabet (so that classes, ranges, escapes and stars
        /// meet) agree with Redis's own algorithm on random strings, and finish in bounded time.
        #[test]
        fn agrees_with_redis(
            pattern in proptest::collection::vec(
                prop::sample::select(b"ab*?[]^-\\Ac".to_vec()), 0..12),
            string in proptest::collection::vec(
                prop::sample::select(b"abcA]-*\\^".to_vec()), 0..12),
            nocase in any::<bool>(),
        ) {
            let started = Instant::now();
            prop_assert_eq!(
                glob_match(&pattern, &string, nocase),
                reference(&pattern, &string, nocase),
                "pattern {:?} string {:?} nocase {}",
                String::from_utf8_lossy(&pattern), String::from_utf8_lossy(&string), nocase
            );
            prop_assert!(started.elapsed() < Duration::from_millis(100));
        }

        /// `literal*` patterns (matched as a prefix) agree too, escapes and stars included.
        #[test]
        fn prefix_patterns_agree_with_redis(
            literal in proptest::collection::vec(prop::sample::select(b"ab\\*?A".to_vec()), 0..6),
            string in proptest::collection::vec(prop::sample::select(b"abA*\\?".to_vec()), 0..8),
            nocase in any::<bool>(),
        ) {
            let mut pattern = literal;
            pattern.push(b'*');
            prop_assert_eq!(
                glob_match(&pattern, &string, nocase),
                reference(&pattern, &string, nocase),
                "pattern {:?} string {:?}", String::from_utf8_lossy(&pattern), String::from_utf8_lossy(&string)
            );
        }
    }
}
