//! Small helpers shared across layers: Redis's strict number parsing and formatting, clocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    let text = std::str::from_utf8(s).ok()?;
    let v: f64 = text.parse().ok()?;
    (!v.is_nan()).then_some(v)
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

/// The wall clock, read through the CPU's time-stamp counter: reading the OS clock costs a
/// syscall-like exit on some virtual machines, and the command path reads the time often. The
/// anchor is refreshed by [`resync_clock`] (from the server's cron) so drift stays tiny.
struct WallAnchor {
    wall_us: AtomicU64,
    tsc: OnceLock<(quanta::Clock, quanta::Instant)>,
}

static ANCHOR: WallAnchor = WallAnchor {
    wall_us: AtomicU64::new(0),
    tsc: OnceLock::new(),
};

fn os_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn anchor() -> &'static (quanta::Clock, quanta::Instant) {
    ANCHOR.tsc.get_or_init(|| {
        let clock = quanta::Clock::new();
        let now = clock.now();
        ANCHOR.wall_us.store(os_now_us(), Ordering::Relaxed);
        (clock, now)
    })
}

/// Re-anchors the fast wall clock on the OS clock.
pub fn resync_clock() {
    let (clock, base) = anchor();
    let elapsed = clock.now().duration_since(*base).as_micros() as u64;
    let wall = os_now_us();
    ANCHOR
        .wall_us
        .store(wall.saturating_sub(elapsed), Ordering::Relaxed);
    CACHED_SECS.store((wall / 1_000_000) as u32, Ordering::Relaxed);
}

/// A cheap monotonic instant (time-stamp counter based).
pub fn instant() -> quanta::Instant {
    anchor().0.now()
}

/// The Unix time in milliseconds at `at`, a reading of [`instant`].
pub fn wall_ms_at(at: quanta::Instant) -> u64 {
    let (_, base) = anchor();
    (ANCHOR.wall_us.load(Ordering::Relaxed) + at.duration_since(*base).as_micros() as u64) / 1000
}

/// Current Unix time in microseconds.
pub fn now_us() -> u64 {
    let (clock, base) = anchor();
    ANCHOR.wall_us.load(Ordering::Relaxed) + clock.now().duration_since(*base).as_micros() as u64
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

fn start() -> &'static Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now)
}

/// Unix seconds for idle times, cached: refreshed by [`resync_clock`] on every server tick, which
/// is finer than the one-second resolution idle times have.
pub fn clock_secs() -> u32 {
    CACHED_SECS.load(Ordering::Relaxed)
}

static CACHED_SECS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Spins until `done` or for `limit`; true if `done`. It yields the core between short
/// bursts: the thread it waits for may have been woken onto this very core, and would otherwise
/// wait for the spin to end.
pub fn spin_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = crate::util::instant();
    loop {
        for _ in 0..16 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if crate::util::instant().saturating_duration_since(start) >= limit {
            return false;
        }
        std::thread::yield_now();
    }
}

/// Starts the process clocks (call once at start-up so uptime counts from then).
pub fn init_clock() {
    let _ = start();
    resync_clock();
}

/// Seconds since the process started.
pub fn uptime_secs() -> u64 {
    start().elapsed().as_secs()
}

/// ASCII-uppercases into a stack buffer for case-insensitive lookups without allocating.
pub fn upper<'a>(s: &[u8], buf: &'a mut [u8; 64]) -> Option<&'a [u8]> {
    if s.len() > buf.len() {
        return None;
    }
    for (d, c) in buf.iter_mut().zip(s) {
        *d = c.to_ascii_uppercase();
    }
    Some(&buf[..s.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn spin_until_sees_a_change_made_by_another_thread() {
        let flag = Arc::new(AtomicBool::new(false));
        let setter = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                flag.store(true, Ordering::Release);
            })
        };
        assert!(spin_until(Duration::from_secs(5), || flag.load(Ordering::Acquire)));
        setter.join().unwrap();
    }

    #[test]
    fn spin_until_gives_up_after_its_limit() {
        let start = Instant::now();
        assert!(!spin_until(Duration::from_millis(20), || false));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(20), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
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

/// Redis's CRC-64 (Jones polynomial, reflected, as in crc64.c), which ends DUMP payloads.
pub fn crc64_jones(mut crc: u64, data: &[u8]) -> u64 {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x95ac_9329_ac4b_c9b5
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    for &b in data {
        crc = table[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod crc64_tests {
    #[test]
    fn redis_check_value() {
        // crc64.c's own test vector.
        assert_eq!(super::crc64_jones(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }
}
