//! The node's pace for file transfer bytes (`blobs.transfer_bytes_per_sec`):
//! one budget that every upload and download on the node draws from. However
//! many users move files at once, their bytes cost bounded CPU (QUIC packets,
//! hashing, disk), so chat lines keep their latency.
//!
//! A `governor` rate limiter (GCRA over one atomic, no lock) counts KiB.
//! [`Pace::check_kib`] is sans-IO: it says how long to wait, and the transfer
//! loop ([`Pace::take`]) sleeps. A transfer that is not read meanwhile holds
//! back its sender through flow control (QUIC's, or `chat.mux.v1`'s credit).

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// How far a burst may run ahead of the rate: this much time's worth of bytes.
pub const BURST: Duration = Duration::from_millis(50);

/// The smallest burst, KiB (a transfer reads up to 64 KiB at a time).
const MIN_BURST_KIB: u32 = 256;

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A node-wide byte pace (no limiter: unlimited).
pub struct Pace<C: Clock = DefaultClock> {
    limiter: Option<Limiter<C>>,
    clock: C,
    burst_kib: u32,
}

impl Pace {
    /// A pace of `bytes_per_sec` on the real clock (0: unlimited).
    pub fn new(bytes_per_sec: u64) -> Self {
        Self::with_clock(bytes_per_sec, DefaultClock::default())
    }

    /// Waits until `bytes` may move, taking them from the budget.
    pub async fn take(&self, bytes: usize) {
        let mut rest = bytes.div_ceil(1024) as u64;
        while rest > 0 {
            let piece = rest.min(u64::from(self.burst_kib));
            loop {
                let wait = self.check_kib(piece as u32);
                if wait.is_zero() {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            rest -= piece;
        }
    }
}

impl<C: Clock + Clone> Pace<C> {
    /// A pace of `bytes_per_sec` (0: unlimited) on `clock`.
    pub fn with_clock(bytes_per_sec: u64, clock: C) -> Self {
        let kib_per_sec = u32::try_from(bytes_per_sec.div_ceil(1024)).unwrap_or(u32::MAX);
        let burst_kib = ((u64::from(kib_per_sec) * BURST.as_millis() as u64 / 1000) as u32).max(MIN_BURST_KIB);
        let limiter = (kib_per_sec > 0).then(|| {
            let per_kib = Duration::from_nanos((1_000_000_000 / u64::from(kib_per_sec)).max(1));
            let quota = Quota::with_period(per_kib).expect("a period above zero").allow_burst(nz(burst_kib));
            RateLimiter::direct_with_clock(quota, clock.clone())
        });
        Self { limiter, clock, burst_kib }
    }

    /// Takes `kib` (at most the burst) from the budget now, or says how long
    /// to wait before asking again (nothing is taken then).
    pub fn check_kib(&self, kib: u32) -> Duration {
        let Some(limiter) = &self.limiter else { return Duration::ZERO };
        match limiter.check_n(nz(kib.min(self.burst_kib))) {
            Ok(Ok(())) => Duration::ZERO,
            Ok(Err(not_until)) => not_until.wait_time_from(self.clock.now()).max(Duration::from_micros(100)),
            // Never: `kib` is capped at the burst.
            Err(_) => Duration::ZERO,
        }
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("non-zero")
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn unlimited_never_waits() {
        let p = Pace::with_clock(0, FakeRelativeClock::default());
        for _ in 0..1000 {
            assert_eq!(p.check_kib(u32::MAX), Duration::ZERO);
        }
    }

    #[test]
    fn a_burst_goes_at_once_then_bytes_wait_their_turn() {
        // 10 MiB/s: the burst is 50 ms = 512 KiB.
        let clock = FakeRelativeClock::default();
        let p = Pace::with_clock(10 * 1024 * 1024, clock.clone());
        assert_eq!(p.check_kib(512), Duration::ZERO, "the burst");
        let wait = p.check_kib(64);
        assert!((6..=7).contains(&wait.as_millis()), "64 KiB at 10 MiB/s: {wait:?}");
        // Nothing was taken by the refusal: after the wait the 64 KiB go.
        clock.advance(wait);
        assert_eq!(p.check_kib(64), Duration::ZERO);
    }

    #[test]
    fn idle_time_is_not_saved_up_beyond_the_burst() {
        let clock = FakeRelativeClock::default();
        let p = Pace::with_clock(10 * 1024 * 1024, clock.clone());
        clock.advance(Duration::from_secs(10));
        assert_eq!(p.check_kib(512), Duration::ZERO);
        assert!(p.check_kib(64) > Duration::ZERO, "ten idle seconds do not buy ten seconds of bytes");
    }

    #[test]
    fn many_transfers_together_move_at_the_rate() {
        // 8 MiB/s shared by 20 transfers asking for 64 KiB as soon as their wait ends.
        let clock = FakeRelativeClock::default();
        let p = Pace::with_clock(8 * 1024 * 1024, clock.clone());
        let mut ready = [Duration::ZERO; 20];
        let (mut now, mut moved_kib) = (Duration::ZERO, 0u64);
        let horizon = Duration::from_secs(10);
        while now < horizon {
            let i = (0..ready.len()).min_by_key(|&i| ready[i]).unwrap();
            clock.advance(ready[i].saturating_sub(now));
            now = now.max(ready[i]);
            let wait = p.check_kib(64);
            if wait.is_zero() {
                moved_kib += 64;
            }
            ready[i] = now + wait;
        }
        let expected = 8 * 1024 * 10;
        assert!(moved_kib >= expected && moved_kib <= expected + 512 + 64, "{moved_kib} KiB in 10 s");
    }
}
