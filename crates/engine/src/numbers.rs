//! Redis's strict number parsing and its number formats, shared by the engine (tensor values) and
//! the hosts (command arguments, replies).

/// Parses a decimal i64 exactly as Redis's `string2ll` does: no spaces, no `+`, no leading zeros.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a u64 with the same strictness.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s == b"0" {
        return Some(0);
    }
    if s.is_empty() || s.len() > 20 || !(b'1'..=b'9').contains(&s[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// Parses a double as Redis does (`strtold` on the whole string): no surrounding spaces, no NaN;
/// `inf`, `-inf`, exponents accepted.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s[0].is_ascii_whitespace() || s[s.len() - 1].is_ascii_whitespace() {
        return None;
    }
    // fast-float2 reads the bytes as they are (std's parser wants a validated &str) with the
    // same algorithm, Eisel-Lemire: batch scoring parses millions of these from hashes.
    let v: f64 = fast_float2::parse(s).ok()?;
    (!v.is_nan()).then_some(v)
}

/// Formats a double as Redis 7.0 replies with it (`%.17g`), e.g. ZSCORE and RESP3 doubles.
pub fn format_f64_g17(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    if v.fract() == 0.0 && v.abs() < 1e17 {
        return format!("{}", v as i64);
    }
    // %.17g: 17 significant digits, exponent form outside [1e-5, 1e17).
    let exp = v.abs().log10().floor() as i32;
    if !(-5..17).contains(&exp) {
        let s = format!("{:.16e}", v);
        let (mant, e) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = trim_zeros(mant);
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (16 - exp).max(0) as usize;
    trim_zeros(&format!("{:.*}", decimals, v)).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Formats a double the way INCRBYFLOAT and HINCRBYFLOAT print it: plain decimal, no exponent,
/// no trailing zeros.
pub fn format_f64_human(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// std's parser, on the whole string.
    fn parse_f64_std(s: &[u8]) -> Option<f64> {
        if s.is_empty() || s[0].is_ascii_whitespace() || s[s.len() - 1].is_ascii_whitespace() {
            return None;
        }
        let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
        (!v.is_nan()).then_some(v)
    }

    fn same_f64(a: Option<f64>, b: Option<f64>) -> bool {
        a.map(f64::to_bits) == b.map(f64::to_bits)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// Any string of a number's characters parses as std parses it, bit for bit.
        #[test]
        fn agrees_with_std_on_number_like_text(s in "[-+]?[0-9]{0,21}(\\.[0-9]{0,21})?([eE][-+]?[0-9]{0,4})?") {
            proptest::prop_assert!(same_f64(parse_f64(s.as_bytes()), parse_f64_std(s.as_bytes())), "{}", s);
        }

        /// And on what doubles and floats print as.
        #[test]
        fn agrees_with_std_on_printed_numbers(bits in proptest::prelude::any::<u64>(), small in proptest::prelude::any::<u32>()) {
            for v in [f64::from_bits(bits), f32::from_bits(small) as f64, (small as f64) / 1e6] {
                for text in [format!("{v}"), format!("{v:e}"), format!("{v:.9}"), format!("{}", v as f32)] {
                    proptest::prop_assert!(same_f64(parse_f64(text.as_bytes()), parse_f64_std(text.as_bytes())), "{}", text);
                }
            }
        }
    }

    #[test]
    fn agrees_with_std_on_edges() {
        for s in [
            "0",
            "-0",
            "+0",
            "0.0",
            "-0.0",
            "00012",
            "1.",
            ".5",
            "-.5",
            "1e22",
            "1e23",
            "9007199254740992",
            "9007199254740993",
            "0.1",
            "-0.6373679637908936",
            "1e-22",
            "1e-23",
            "0e999",
            "-0e-999",
            "1234567890123456789",
            "12345678901234567890",
            "0.00000000000000000000000001",
            "1e",
            "1e+",
            ".",
            "-",
            "+",
            "",
            "e5",
            "1.5.2",
            "1e5.5",
            "inf",
            "-Infinity",
            "nan",
            " 1",
            "1 ",
            "1_0",
            "INF",
            "+inf",
            "Infinit",
            "infinityx",
            "-nan",
            "NaN",
            "1e400",
            "-1e400",
            "4.9e-324",
            "2e-324",
            "0.34558418393135070001",
            "179769313486231580793728971405301e276",
        ] {
            assert!(
                same_f64(parse_f64(s.as_bytes()), parse_f64_std(s.as_bytes())),
                "{s}"
            );
        }
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b"01"[..], b"+1", b" 1", b"1 ", b"-0", b"", b"-", b"1a"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn g17_matches_printf() {
        assert_eq!(format_f64_g17(0.1), "0.10000000000000001");
        assert_eq!(format_f64_g17(1.5), "1.5");
        assert_eq!(format_f64_g17(3.0), "3");
        assert_eq!(format_f64_g17(1e20), "1e+20");
        assert_eq!(format_f64_g17(f64::INFINITY), "inf");
        assert_eq!(format_f64_human(10.6), "10.6");
    }
}
