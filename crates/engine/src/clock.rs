//! Clocks for hot paths: a cheap monotonic instant and a wall clock read through the CPU's
//! time-stamp counter, plus a bounded spin-wait. Hosts (the server, the module) re-anchor the wall
//! clock from their own timers with [`resync_clock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    let start = instant();
    loop {
        for _ in 0..16 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if instant().saturating_duration_since(start) >= limit {
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
}
