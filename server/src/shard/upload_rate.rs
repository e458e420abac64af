//! The upload rate rule (`blobs.uploads_per_hour`): at most N uploads per
//! user in any sliding hour, counted at the user's home shard. Sans-IO: the
//! caller passes the time, so the rule is tested with a clock it controls.
//! It remembers, per user, the times of the uploads of the last hour only.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The window the limit counts in.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// Sliding-hour upload counts per user.
#[derive(Debug)]
pub struct UploadRate {
    per_hour: usize,
    users: HashMap<Arc<str>, VecDeque<u64>>,
}

impl UploadRate {
    /// At most `per_hour` uploads per user in any hour.
    pub fn new(per_hour: u32) -> Self {
        Self { per_hour: per_hour.max(1) as usize, users: HashMap::new() }
    }

    /// Counts an upload of `user` at `now_ms`; refused (nothing counted)
    /// with how long until the oldest upload of the hour leaves the window.
    pub fn admit(&mut self, user: &Arc<str>, now_ms: u64) -> Result<(), Duration> {
        let window = WINDOW.as_millis() as u64;
        let times = self.users.entry(user.clone()).or_default();
        while times.front().is_some_and(|&t| t + window <= now_ms) {
            times.pop_front();
        }
        if times.len() >= self.per_hour {
            let oldest = times.front().copied().unwrap_or(now_ms);
            return Err(Duration::from_millis((oldest + window).saturating_sub(now_ms).max(1)));
        }
        times.push_back(now_ms);
        Ok(())
    }

    /// Forgets users with no upload in the last hour.
    pub fn retain_recent(&mut self, now_ms: u64) {
        let window = WINDOW.as_millis() as u64;
        self.users.retain(|_, times| times.back().is_some_and(|&t| t + window > now_ms));
    }

    /// Users remembered (for tests and bounds).
    pub fn users(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn the_eleventh_upload_in_an_hour_is_refused_until_the_first_leaves() {
        let mut r = UploadRate::new(10);
        let ann: Arc<str> = "ann".into();
        let bob: Arc<str> = "bob".into();
        for i in 0..10 {
            assert_eq!(r.admit(&ann, 1_000 + i * MIN), Ok(()), "upload {i}");
        }
        let now = 1_000 + 30 * MIN;
        assert_eq!(r.admit(&ann, now), Err(Duration::from_millis(30 * MIN)), "11th: wait for the first to leave");
        assert_eq!(r.admit(&bob, now), Ok(()), "another user counts on their own");
        // A refusal counts nothing: at the first upload's hour, one more fits.
        assert_eq!(r.admit(&ann, 1_000 + 60 * MIN - 1), Err(Duration::from_millis(1)));
        assert_eq!(r.admit(&ann, 1_000 + 60 * MIN), Ok(()));
        assert_eq!(r.admit(&ann, 1_000 + 60 * MIN), Err(Duration::from_millis(MIN)), "then the second must leave");
    }

    #[test]
    fn quiet_users_are_forgotten() {
        let mut r = UploadRate::new(2);
        let ann: Arc<str> = "ann".into();
        r.admit(&ann, 0).unwrap();
        r.admit(&"bob".into(), 30 * MIN).unwrap();
        r.retain_recent(60 * MIN);
        assert_eq!(r.users(), 1, "ann's hour is over");
        assert_eq!(r.admit(&ann, 60 * MIN), Ok(()));
    }
}
