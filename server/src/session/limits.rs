//! What one connection may repeat, per minute: typing changes, conversations
//! named by receipts, users asked about by `GetPresence`. Past a limit the
//! command gets a precise `RATE_LIMITED` naming it (the connection stays
//! usable). Per-user counts (messages, new conversations) live at the user's
//! home shard instead (`crate::shard::ctx::UserLimits`).

use crate::config::LimitsConfig;
use chat_protocol::WireError;
use chat_protocol::v1::{ErrorCode, command};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// One connection's limiters.
pub(super) struct ConnLimits {
    typing: (DefaultDirectRateLimiter, u32),
    receipts: (DefaultDirectRateLimiter, u32),
    presence: (DefaultDirectRateLimiter, u32),
}

impl ConnLimits {
    /// Limiters at the configured rates.
    pub(super) fn new(l: &LimitsConfig) -> Self {
        let per_min = |n: u32| (RateLimiter::direct(Quota::per_minute(nz(n))), n);
        Self {
            typing: per_min(l.typing_per_minute),
            receipts: per_min(l.receipt_ids_per_minute),
            presence: per_min(l.presence_ids_per_minute),
        }
    }

    /// Counts a command against its connection limit, if it has one.
    pub(super) fn check(&self, body: &command::Body) -> Result<(), WireError> {
        use command::Body as B;
        let (limiter, n, name, what) = match body {
            B::SetTyping(_) => (&self.typing, 1, "typing_per_minute", "typing changes"),
            B::MarkRead(_) => (&self.receipts, 1, "receipt_ids_per_minute", "conversations in receipts"),
            B::MarkDelivered(m) => {
                let n = m.more.len() + usize::from(m.conversation_id != 0);
                (&self.receipts, n, "receipt_ids_per_minute", "conversations in receipts")
            }
            B::GetPresence(g) => {
                (&self.presence, g.user_ids.len(), "presence_ids_per_minute", "users in presence queries")
            }
            _ => return Ok(()),
        };
        let Some(n) = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)) else { return Ok(()) };
        let refused = |wait: Option<Duration>| {
            WireError::limited(ErrorCode::RateLimited, name, format!("more than {} {what} per minute", limiter.1), wait)
        };
        match limiter.0.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(nu)) => {
                Err(refused(Some(nu.wait_time_from(DefaultClock::default().now()).max(Duration::from_millis(1)))))
            }
            // More at once than a whole minute allows: never, as asked.
            Err(_) => Err(refused(None)),
        }
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("non-zero")
}
