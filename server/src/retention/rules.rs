//! The rules of retention, sans-IO: which legal hold (if any) covers a
//! conversation (a hold on it, on its case id, or on any of its members),
//! how far its messages have expired given `now` and its retention days,
//! when an upload may still be sent and when its record expires, and the
//! checks of what an admin asks for (days in range, a hold's
//! target well-formed). Time is always given (`now_ms`), never read here,
//! so the tests drive it by hand.

use std::collections::HashSet;

use crate::config::MAX_RETENTION_DAYS;
use crate::store::retention::{HoldRecord, HoldScope};

/// One day, ms.
pub const DAY_MS: u64 = 86_400_000;

/// The holds in force, by what they cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holds {
    conversations: HashSet<u64>,
    users: HashSet<String>,
    cases: HashSet<String>,
}

impl Holds {
    /// The holds of these records (a conversation target that is not an id covers nothing).
    pub fn new(records: &[HoldRecord]) -> Self {
        let mut h = Holds::default();
        for r in records {
            match r.scope {
                HoldScope::Conversation => h.conversations.extend(r.target.parse::<u64>().ok()),
                HoldScope::User => drop(h.users.insert(r.target.clone())),
                HoldScope::Case => drop(h.cases.insert(r.target.clone())),
            }
        }
        h
    }

    /// What holds the conversation `conv` (of case `case_id`, empty: none,
    /// with these members), the conversation's own hold first; None: nothing.
    pub fn covering<'a>(
        &self,
        conv: u64,
        case_id: &str,
        members: impl IntoIterator<Item = &'a str>,
    ) -> Option<HoldScope> {
        self.holder(conv, case_id, members).map(|(scope, _)| scope)
    }

    /// As [`covering`](Self::covering), with the hold's target (the
    /// conversation id, the case id or the first held member).
    pub fn holder<'a>(
        &self,
        conv: u64,
        case_id: &str,
        members: impl IntoIterator<Item = &'a str>,
    ) -> Option<(HoldScope, String)> {
        if self.conversations.contains(&conv) {
            return Some((HoldScope::Conversation, conv.to_string()));
        }
        if !case_id.is_empty() && self.cases.contains(case_id) {
            return Some((HoldScope::Case, case_id.to_string()));
        }
        members.into_iter().find(|u| self.users.contains(*u)).map(|u| (HoldScope::User, u.to_string()))
    }
}

/// Why a conversation's messages are all kept now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Its retention is 0 days.
    Forever,
    /// A legal hold of this scope covers it.
    Held(HoldScope),
}

/// What to do with a page of a conversation's oldest messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing may go.
    Keep(Keep),
    /// The oldest message of the page has not expired: nothing to do.
    Nothing,
    /// Purge through this seq; `more`: the whole page expired and it was
    /// full, so the next page may have expired too.
    Purge {
        /// The highest seq to purge.
        through: u64,
        /// Whether to look at the next page.
        more: bool,
    },
}

/// The oldest server time a message may have and stay, for `days` of
/// retention at `now_ms` (None: kept forever).
pub fn cutoff_ms(now_ms: u64, days: u32) -> Option<u64> {
    (days > 0).then(|| now_ms.saturating_sub(u64::from(days) * DAY_MS))
}

/// Whether an upload made at `uploaded_at_ms` may still be sent in a
/// message at `now_ms`: within `send_within_secs` of its upload
/// (`blobs.send_within_secs`), so that its record can expire (see
/// [`upload_expired`]).
pub fn upload_sendable(uploaded_at_ms: u64, now_ms: u64, send_within_secs: u64) -> bool {
    now_ms <= uploaded_at_ms.saturating_add(send_within_secs.saturating_mul(1000))
}

/// Whether the purge job removes the record of an upload made at
/// `uploaded_at_ms`, sent or not: every message that could name it was
/// sent within `send_within_secs` of the upload and has expired by now
/// (retention `days`; 0 keeps forever).
pub fn upload_expired(uploaded_at_ms: u64, now_ms: u64, days: u32, send_within_secs: u64) -> bool {
    let last_send = uploaded_at_ms.saturating_add(send_within_secs.saturating_mul(1000));
    cutoff_ms(now_ms, days).is_some_and(|cutoff| last_send < cutoff)
}

/// The step for a page of a conversation's oldest messages (`(seq,
/// server_time_ms)`, ascending, all above its purge mark; `full`: the page
/// is as long as asked). A message expires when it is older than the
/// retention; the purge stops at the first one that has not expired, so
/// the purged seqs are always one run from the start.
pub fn plan(now_ms: u64, days: u32, hold: Option<HoldScope>, page: &[(u64, u64)], full: bool) -> Step {
    if let Some(scope) = hold {
        return Step::Keep(Keep::Held(scope));
    }
    let Some(cutoff) = cutoff_ms(now_ms, days) else { return Step::Keep(Keep::Forever) };
    let expired = page.iter().take_while(|&&(_, at)| at < cutoff).count();
    match expired {
        0 => Step::Nothing,
        n => Step::Purge { through: page[n - 1].0, more: full && n == page.len() },
    }
}

/// A retention an admin asks for, checked: 0 (forever) to [`MAX_RETENTION_DAYS`].
pub fn check_days(days: u32) -> Result<u32, String> {
    if days > MAX_RETENTION_DAYS {
        return Err(format!("retention_days must be at most {MAX_RETENTION_DAYS} (0 keeps forever)"));
    }
    Ok(days)
}

/// A hold's target, checked for its scope: a conversation id (decimal,
/// not 0), a user id or a case id as conversations carry them.
pub fn check_target(scope: HoldScope, target: &str) -> Result<(), String> {
    match scope {
        HoldScope::Conversation => match target.parse::<u64>() {
            Ok(id) if id > 0 && id.to_string() == target => Ok(()),
            _ => Err(format!("target {target:?} is not a conversation id")),
        },
        HoldScope::User => chat_protocol::limits::check_user_id(target).map_err(|e| format!("target: {e}")),
        HoldScope::Case => chat_protocol::limits::check_case_id(target).map_err(|e| format!("target: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_sent_within_its_window_and_its_record_expires_after_the_last_message_could() {
        let (day0, hour) = (Clock::at_day(0).now(), 3_600_000);
        assert!(upload_sendable(day0, day0 + 24 * hour, 86_400));
        assert!(!upload_sendable(day0, day0 + 24 * hour + 1, 86_400), "past the window");
        // Sent at the last moment, its message lives 30 days more: the record outlives it.
        assert!(!upload_expired(day0, Clock::at_day(31).now(), 30, 86_400));
        assert!(upload_expired(day0, Clock::at_day(31).now() + 1, 30, 86_400));
        assert!(!upload_expired(day0, Clock::at_day(9_999).now(), 0, 86_400), "0 keeps forever");
    }

    /// A hand-driven clock: days from an epoch.
    struct Clock(u64);

    impl Clock {
        fn at_day(day: u64) -> Self {
            Clock(1_700_000_000_000 + day * DAY_MS)
        }

        fn now(&self) -> u64 {
            self.0
        }

        fn advance_days(&mut self, days: u64) {
            self.0 += days * DAY_MS;
        }
    }

    fn hold(scope: HoldScope, target: &str) -> HoldRecord {
        HoldRecord { scope, target: target.into(), reason: "r".into(), set_by: "root".into(), set_at_ms: 0 }
    }

    /// Messages 1..=n sent one a day from day 0 (time of message k: day k-1).
    fn daily(n: u64) -> Vec<(u64, u64)> {
        (1..=n).map(|k| (k, Clock::at_day(k - 1).now())).collect()
    }

    #[test]
    fn messages_expire_one_run_from_the_oldest_as_the_clock_moves() {
        let page = daily(10);
        let mut clock = Clock::at_day(30);
        assert_eq!(plan(clock.now(), 30, None, &page, false), Step::Nothing, "day 0 is exactly 30 days old");
        clock.advance_days(1);
        assert_eq!(plan(clock.now(), 30, None, &page, false), Step::Purge { through: 1, more: false });
        clock.advance_days(4);
        assert_eq!(plan(clock.now(), 30, None, &page, true), Step::Purge { through: 5, more: false });
        clock.advance_days(100);
        assert_eq!(plan(clock.now(), 30, None, &page, true), Step::Purge { through: 10, more: true }, "a full page");
        assert_eq!(plan(clock.now(), 30, None, &page, false), Step::Purge { through: 10, more: false }, "the last");
        assert_eq!(plan(clock.now(), 30, None, &[], false), Step::Nothing, "nothing left");
    }

    #[test]
    fn a_younger_message_stops_the_run_even_if_older_ones_follow() {
        let now = Clock::at_day(100).now();
        let page = [(4, Clock::at_day(1).now()), (5, Clock::at_day(99).now()), (6, Clock::at_day(2).now())];
        assert_eq!(plan(now, 10, None, &page, true), Step::Purge { through: 4, more: false });
    }

    #[test]
    fn zero_days_keeps_forever_and_a_hold_keeps_everything() {
        let now = Clock::at_day(10_000).now();
        let page = daily(3);
        assert_eq!(plan(now, 0, None, &page, false), Step::Keep(Keep::Forever));
        assert_eq!(cutoff_ms(now, 0), None);
        for scope in [HoldScope::Conversation, HoldScope::User, HoldScope::Case] {
            assert_eq!(plan(now, 1, Some(scope), &page, false), Step::Keep(Keep::Held(scope)));
        }
    }

    #[test]
    fn holds_cover_by_conversation_case_or_any_member() {
        let holds = Holds::new(&[
            hold(HoldScope::Conversation, "42"),
            hold(HoldScope::User, "bob"),
            hold(HoldScope::Case, "AZ-7"),
            hold(HoldScope::Conversation, "not-an-id"),
        ]);
        assert_eq!(holds.covering(42, "", ["ann"]), Some(HoldScope::Conversation));
        assert_eq!(holds.covering(42, "AZ-7", ["bob"]), Some(HoldScope::Conversation), "its own hold first");
        assert_eq!(holds.covering(7, "AZ-7", ["ann"]), Some(HoldScope::Case));
        assert_eq!(holds.covering(7, "", ["ann", "bob"]), Some(HoldScope::User));
        assert_eq!(holds.covering(7, "AZ-8", ["ann", "bobby"]), None);
        assert_eq!(holds.covering(7, "", std::iter::empty()), None, "an empty case id matches no hold");
        assert_eq!(Holds::new(&[]).covering(42, "AZ-7", ["bob"]), None, "released: nothing holds");
    }

    #[test]
    fn days_and_targets_are_checked() {
        assert_eq!(check_days(0), Ok(0));
        assert_eq!(check_days(MAX_RETENTION_DAYS), Ok(MAX_RETENTION_DAYS));
        assert!(check_days(MAX_RETENTION_DAYS + 1).unwrap_err().contains("at most 36500"));
        assert!(check_target(HoldScope::Conversation, "42").is_ok());
        for bad in ["0", "", "042", "-1", "x", "18446744073709551616"] {
            assert!(check_target(HoldScope::Conversation, bad).is_err(), "{bad:?}");
        }
        assert!(check_target(HoldScope::User, "bob").is_ok());
        assert!(check_target(HoldScope::User, "").is_err());
        assert!(check_target(HoldScope::Case, "AZ-12/345").is_ok());
        assert!(check_target(HoldScope::Case, "").is_err());
        assert!(check_target(HoldScope::Case, "a\nb").is_err());
        assert!(check_target(HoldScope::Case, &"x".repeat(129)).is_err());
    }
}
