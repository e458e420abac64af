//! Sequencing glue: every message goes through the protocol's [`Sequencer`]
//! so the application sees each conversation in seq order, exactly once, with
//! no hole. Holes are filled with history pages; handshakes and resyncs set
//! the cursors; delivered receipts are coalesced. No I/O here.

use crate::config::ResumeState;
use chat_protocol::sequencer::{Offer, Sequencer};
use chat_protocol::v1::{Cursor, History, Message, ResyncRequired, Welcome};
use std::collections::HashMap;

/// Most messages held back per conversation while a hole is being filled.
const MAX_HELD: usize = 10_000;

/// A history page to fetch to fill a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fetch {
    /// The conversation.
    pub conv: u64,
    /// Fetch messages after this seq.
    pub after_seq: u64,
    /// At most this many.
    pub limit: u32,
}

/// What one input produced: messages for the application, maybe a page to fetch.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Step {
    /// Messages to surface, in order.
    pub ready: Vec<Message>,
    /// A history page to request.
    pub fetch: Option<Fetch>,
}

#[derive(Debug)]
struct Hole {
    /// A page request is in flight.
    fetching: bool,
    /// Highest seq seen while the hole is open: done once the cursor reaches it.
    upto: u64,
    /// Ticks the hole has been open without a fetch.
    age: u32,
}

/// Ticks a hole may stay open before its page is fetched. Holes on a live
/// connection are almost always this client's own messages, whose acks (on
/// the control stream) can trail the next message (on the events stream) by a
/// moment: they close by themselves, and fetching them would be wasted work.
pub const HOLE_GRACE_TICKS: u32 = 2;

/// Ordering, hole filling, cursors and receipts of one client.
#[derive(Debug)]
pub(crate) struct Delivery {
    seq: Sequencer<Message>,
    holes: HashMap<u64, Hole>,
    receipts: HashMap<u64, u64>,
    epoch: String,
    /// Whether there is state to resume from (persisted, or an earlier Welcome).
    started: bool,
    /// Heads and epoch of the last Welcome, for a resync.
    heads: Vec<Cursor>,
    welcome_epoch: String,
    page: u32,
}

impl Delivery {
    /// Fresh, or resuming from persisted state; fills holes `page` messages at a time.
    pub fn new(resume: Option<&ResumeState>, page: u32) -> Self {
        let mut d = Self {
            seq: Sequencer::new(MAX_HELD),
            holes: HashMap::new(),
            receipts: HashMap::new(),
            epoch: String::new(),
            started: false,
            heads: Vec::new(),
            welcome_epoch: String::new(),
            page: page.max(1),
        };
        if let Some(r) = resume {
            d.started = true;
            d.epoch = r.epoch.clone();
            for (&conv, &seq) in &r.cursors {
                d.seq.set_cursor(conv, seq);
            }
        }
        d
    }

    /// What the next `Hello` carries: `(epoch, cursors, resume)`.
    pub fn hello(&self) -> (String, Vec<Cursor>, bool) {
        if !self.started {
            return (String::new(), Vec::new(), false);
        }
        let mut cursors: Vec<Cursor> =
            self.seq.cursors().map(|(conversation_id, seq)| Cursor { conversation_id, seq }).collect();
        cursors.sort_by_key(|c| c.conversation_id);
        (self.epoch.clone(), cursors, true)
    }

    /// A handshake succeeded after a `Hello` that carried `sent_epoch` and
    /// `sent_resume`. Returns whether the session resumed the previous state.
    pub fn on_welcome(&mut self, w: &Welcome, sent_epoch: &str, sent_resume: bool) -> bool {
        self.heads = w.heads.clone();
        self.welcome_epoch = w.epoch.clone();
        self.started = true;
        if !sent_resume {
            // Nothing known: live from the heads, history on demand.
            self.take_heads();
            return false;
        }
        // Same epoch: the server replays after our cursors. Another epoch: a
        // `Push{resync}` follows; until then the old epoch stays ours, so a
        // connection lost in between asks again.
        if w.epoch == sent_epoch {
            // Conversations the user no longer belongs to are forgotten, so the
            // next Hello does not carry them.
            let current: std::collections::HashSet<u64> = self.heads.iter().map(|h| h.conversation_id).collect();
            self.seq.retain(|c| current.contains(&c));
            // Conversations this client never knew are live from their head;
            // what came before is history, read on demand.
            for h in &self.heads {
                if !self.seq.knows(h.conversation_id) {
                    self.seq.set_cursor(h.conversation_id, h.seq);
                }
            }
        }
        w.epoch == sent_epoch
    }

    /// The server cannot resume: forget everything, start from the last Welcome's heads.
    pub fn on_resync(&mut self, r: &ResyncRequired) {
        self.seq.clear();
        self.holes.clear();
        self.receipts.clear();
        self.take_heads();
        if !r.epoch.is_empty() {
            self.epoch = r.epoch.clone();
        }
    }

    fn take_heads(&mut self) {
        for h in &self.heads {
            self.seq.set_cursor(h.conversation_id, h.seq);
        }
        self.epoch = self.welcome_epoch.clone();
    }

    /// A conversation appeared or changed: one new to this client is live
    /// after `last_seq` (the server attaches it from there; earlier messages
    /// are history). A brand-new conversation has `last_seq` 0.
    pub fn on_conversation(&mut self, conv: u64, last_seq: u64) {
        if !self.seq.knows(conv) {
            self.seq.set_cursor(conv, last_seq);
        }
    }

    /// A pushed message.
    pub fn on_message(&mut self, m: Message) -> Step {
        let (conv, seq) = (m.conversation_id, m.seq);
        match self.seq.offer(conv, seq, m) {
            Offer::Ready(ready) => {
                self.note_receipt(conv, &ready);
                if self.holes.get(&conv).is_some_and(|h| !h.fetching && self.seq.cursor(conv) >= h.upto) {
                    self.holes.remove(&conv);
                }
                Step { ready, fetch: None }
            }
            Offer::Duplicate => Step::default(),
            Offer::Gap { .. } => {
                // Fetched by `due_fetches` if still open after the grace ticks.
                let hole = self.holes.entry(conv).or_insert(Hole { fetching: false, upto: seq, age: 0 });
                hole.upto = hole.upto.max(seq);
                Step::default()
            }
        }
    }

    /// A history page asked for by [`Fetch`] of conversation `conv`.
    pub fn on_history(&mut self, conv: u64, page: History) -> Step {
        // Seqs the server purged never come: they count as received.
        let mut ready = self.seq.skip_to(conv, page.purged_through);
        let mut last = None;
        for m in page.messages {
            if m.conversation_id != conv {
                continue;
            }
            let seq = m.seq;
            last = last.max(Some(seq));
            match self.seq.offer(conv, seq, m) {
                Offer::Ready(items) => ready.extend(items),
                Offer::Gap { .. } => {
                    if let Some(h) = self.holes.get_mut(&conv) {
                        h.upto = h.upto.max(seq);
                    }
                }
                Offer::Duplicate => {}
            }
        }
        self.note_receipt(conv, &ready);
        let cursor = self.seq.cursor(conv);
        let Some(hole) = self.holes.get_mut(&conv) else {
            return Step { ready, fetch: None };
        };
        hole.fetching = false;
        if cursor >= hole.upto {
            self.holes.remove(&conv);
            return Step { ready, fetch: None };
        }
        let after_seq = match last {
            Some(last) if last.max(cursor) < hole.upto => last.max(cursor),
            _ => {
                tracing::warn!(
                    conv,
                    cursor,
                    upto = hole.upto,
                    "history cannot fill the hole; messages after it are held"
                );
                self.holes.remove(&conv);
                return Step { ready, fetch: None };
            }
        };
        hole.fetching = true;
        let limit = (hole.upto - after_seq).clamp(1, u64::from(self.page)) as u32;
        Step { ready, fetch: Some(Fetch { conv, after_seq, limit }) }
    }

    /// A hole's page request failed: the next message of `conv` asks again.
    pub fn on_fetch_failed(&mut self, conv: u64) {
        // Asked again after the grace ticks, by `due_fetches`.
        if let Some(h) = self.holes.get_mut(&conv) {
            h.fetching = false;
            h.age = 0;
        }
    }

    /// Called every tick: the pages to fetch for holes open longer than the
    /// grace period (see [`HOLE_GRACE_TICKS`]).
    pub fn due_fetches(&mut self) -> Vec<Fetch> {
        let mut out = Vec::new();
        for (&conv, hole) in self.holes.iter_mut() {
            if hole.fetching {
                continue;
            }
            hole.age += 1;
            if hole.age < HOLE_GRACE_TICKS {
                continue;
            }
            hole.fetching = true;
            let after_seq = self.seq.cursor(conv);
            let limit = hole.upto.saturating_sub(after_seq).clamp(1, u64::from(self.page)) as u32;
            out.push(Fetch { conv, after_seq, limit });
        }
        out.sort_by_key(|f| f.conv);
        out
    }

    /// The connection dropped: page requests died with it; the resume replays.
    pub fn on_disconnect(&mut self) {
        self.holes.clear();
    }

    fn note_receipt(&mut self, conv: u64, ready: &[Message]) {
        if let Some(top) = ready.iter().map(|m| m.seq).max() {
            let r = self.receipts.entry(conv).or_insert(0);
            *r = (*r).max(top);
        }
    }

    /// The delivered receipts to send: the highest surfaced seq per conversation since the last call.
    pub fn take_receipts(&mut self) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = self.receipts.drain().collect();
        v.sort_unstable();
        v
    }

    /// The state to persist to resume after a restart.
    pub fn resume_state(&self) -> ResumeState {
        ResumeState { epoch: self.epoch.clone(), cursors: self.seq.cursors().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn m(conv: u64, seq: u64) -> Message {
        Message { conversation_id: conv, seq, ..Default::default() }
    }

    fn seqs(step: &Step) -> Vec<u64> {
        step.ready.iter().map(|m| m.seq).collect()
    }

    fn welcome(epoch: &str, heads: &[(u64, u64)]) -> Welcome {
        Welcome {
            epoch: epoch.into(),
            heads: heads.iter().map(|&(conversation_id, seq)| Cursor { conversation_id, seq }).collect(),
            ..Default::default()
        }
    }

    fn page(conv: u64, range: std::ops::RangeInclusive<u64>) -> History {
        History { conversation_id: conv, messages: range.map(|s| m(conv, s)).collect(), ..Default::default() }
    }

    #[test]
    fn first_connection_starts_live_from_heads_then_resumes() {
        let mut d = Delivery::new(None, 200);
        assert_eq!(d.hello(), (String::new(), vec![], false));
        assert!(!d.on_welcome(&welcome("e1", &[(1, 10), (2, 0)]), "", false));
        assert_eq!(seqs(&d.on_message(m(1, 11))), vec![11]);
        assert_eq!(seqs(&d.on_message(m(2, 1))), vec![1]);
        let (epoch, cursors, resume) = d.hello();
        assert_eq!(epoch, "e1");
        assert!(resume);
        assert_eq!(cursors, vec![Cursor { conversation_id: 1, seq: 11 }, Cursor { conversation_id: 2, seq: 1 }]);
        // Same epoch: resumed, the replay overlapping what we had is dropped.
        assert!(d.on_welcome(&welcome("e1", &[(1, 13)]), "e1", true));
        assert!(d.on_message(m(1, 11)).ready.is_empty());
        assert_eq!(seqs(&d.on_message(m(1, 12))), vec![12]);
        // Conversation 2 is gone from the heads (the user left it): forgotten.
        assert_eq!(d.hello().1, vec![Cursor { conversation_id: 1, seq: 12 }]);
        // A conversation new to this client is live from its head, no gap fetch.
        assert!(d.on_welcome(&welcome("e1", &[(1, 12), (3, 5)]), "e1", true));
        let step = d.on_message(m(3, 6));
        assert_eq!(seqs(&step), vec![6]);
        assert!(step.fetch.is_none());
    }

    #[test]
    fn persisted_state_is_resumed_and_readable() {
        let state = ResumeState { epoch: "e9".into(), cursors: BTreeMap::from([(4, 40), (5, 50)]) };
        let d = Delivery::new(Some(&state), 200);
        let (epoch, cursors, resume) = d.hello();
        assert!(resume);
        assert_eq!(epoch, "e9");
        assert_eq!(cursors.len(), 2);
        assert_eq!(d.resume_state(), state);
    }

    #[test]
    fn resync_clears_and_takes_new_heads() {
        let state = ResumeState { epoch: "old".into(), cursors: BTreeMap::from([(1, 500)]) };
        let mut d = Delivery::new(Some(&state), 200);
        assert!(!d.on_welcome(&welcome("new", &[(1, 3), (7, 9)]), "old", true));
        // Until the resync push, the old epoch stays ours.
        assert_eq!(d.hello().0, "old");
        d.on_resync(&ResyncRequired { reason: "epoch".into(), epoch: String::new() });
        let s = d.resume_state();
        assert_eq!(s.epoch, "new");
        assert_eq!(s.cursors, BTreeMap::from([(1, 3), (7, 9)]));
        assert_eq!(seqs(&d.on_message(m(1, 4))), vec![4]);
    }

    /// Ticks through the grace period; the fetches that come due.
    fn after_grace(d: &mut Delivery) -> Vec<Fetch> {
        let mut due = Vec::new();
        for _ in 0..HOLE_GRACE_TICKS {
            due = d.due_fetches();
        }
        due
    }

    #[test]
    fn a_hole_that_closes_by_itself_is_never_fetched() {
        let mut d = Delivery::new(None, 200);
        d.on_welcome(&welcome("e", &[(1, 0)]), "", false);
        // Someone else's seq 2 overtakes the ack of our own seq 1.
        assert_eq!(d.on_message(m(1, 2)), Step::default());
        assert!(d.due_fetches().is_empty(), "within the grace period");
        assert_eq!(seqs(&d.on_message(m(1, 1))), vec![1, 2]);
        for _ in 0..5 {
            assert!(d.due_fetches().is_empty());
        }
    }

    #[test]
    fn gap_is_fetched_and_filled_in_order() {
        let mut d = Delivery::new(None, 200);
        d.on_welcome(&welcome("e", &[(1, 5)]), "", false);
        let step = d.on_message(m(1, 9));
        assert!(step.ready.is_empty());
        assert_eq!(step.fetch, None, "not at once");
        assert_eq!(after_grace(&mut d), vec![Fetch { conv: 1, after_seq: 5, limit: 4 }]);
        // More arrives while the page is in flight: held, no second fetch.
        assert_eq!(d.on_message(m(1, 10)), Step::default());
        let step = d.on_history(1, page(1, 6..=8));
        assert_eq!(seqs(&step), vec![6, 7, 8, 9, 10]);
        assert_eq!(step.fetch, None);
        assert_eq!(d.take_receipts(), vec![(1, 10)]);
        assert!(d.take_receipts().is_empty());
    }

    #[test]
    fn a_hole_behind_the_purge_mark_is_skipped_not_refetched() {
        let mut d = Delivery::new(None, 3);
        d.on_welcome(&welcome("e", &[(1, 2)]), "", false);
        assert_eq!(seqs(&d.on_message(m(1, 9))), Vec::<u64>::new());
        let fetch = after_grace(&mut d);
        assert_eq!(fetch, vec![Fetch { conv: 1, after_seq: 2, limit: 3 }]);
        // 3..=7 were purged: the page starts at 8 and says so.
        let step = d.on_history(1, History { purged_through: 7, ..page(1, 8..=8) });
        assert_eq!(seqs(&step), [8, 9], "the held message follows at once");
        assert_eq!(step.fetch, None, "nothing left to fetch");
        assert!(after_grace(&mut d).is_empty());
        // Everything up to the head purged: an empty page still closes the hole.
        assert_eq!(seqs(&d.on_message(m(1, 20))), Vec::<u64>::new());
        let _ = after_grace(&mut d);
        let step = d.on_history(1, History { conversation_id: 1, purged_through: 19, ..Default::default() });
        assert_eq!(seqs(&step), [20]);
        assert_eq!(step.fetch, None);
    }

    #[test]
    fn big_gap_is_paged() {
        let mut d = Delivery::new(None, 3);
        d.on_welcome(&welcome("e", &[(1, 0)]), "", false);
        assert_eq!(d.on_message(m(1, 8)), Step::default());
        assert_eq!(after_grace(&mut d), vec![Fetch { conv: 1, after_seq: 0, limit: 3 }]);
        let step = d.on_history(1, page(1, 1..=3));
        assert_eq!(seqs(&step), vec![1, 2, 3]);
        assert_eq!(step.fetch, Some(Fetch { conv: 1, after_seq: 3, limit: 3 }));
        let step = d.on_history(1, page(1, 4..=6));
        assert_eq!(step.fetch, Some(Fetch { conv: 1, after_seq: 6, limit: 2 }));
        let step = d.on_history(1, page(1, 7..=8));
        assert_eq!(seqs(&step), vec![7, 8]);
        assert_eq!(step.fetch, None);
    }

    #[test]
    fn live_fill_and_failed_fetch() {
        let mut d = Delivery::new(None, 200);
        d.on_welcome(&welcome("e", &[(1, 0)]), "", false);
        assert_eq!(d.on_message(m(1, 2)), Step::default());
        assert_eq!(after_grace(&mut d).len(), 1);
        // The page fails: asked again after the grace ticks.
        d.on_fetch_failed(1);
        assert_eq!(d.on_message(m(1, 3)), Step::default());
        assert_eq!(after_grace(&mut d), vec![Fetch { conv: 1, after_seq: 0, limit: 3 }]);
        // The missing one arrives live before the page: everything is released,
        // the late page is all duplicates.
        assert_eq!(seqs(&d.on_message(m(1, 1))), vec![1, 2, 3]);
        let step = d.on_history(1, page(1, 1..=3));
        assert_eq!(step, Step::default());
    }

    #[test]
    fn new_conversation_is_delivered_from_one() {
        let mut d = Delivery::new(None, 200);
        d.on_welcome(&welcome("e", &[]), "", false);
        d.on_conversation(42, 0);
        assert_eq!(d.resume_state().cursors.get(&42), Some(&0));
        assert_eq!(seqs(&d.on_message(m(42, 1))), vec![1]);
        d.on_conversation(42, 0);
        assert_eq!(d.resume_state().cursors.get(&42), Some(&1));
        // Added to a conversation with history: live after its head, no gap fetch.
        d.on_conversation(43, 10);
        let step = d.on_message(m(43, 11));
        assert_eq!(seqs(&step), vec![11]);
        assert!(step.fetch.is_none());
    }

    #[test]
    fn empty_page_gives_up_without_looping() {
        let mut d = Delivery::new(None, 200);
        d.on_welcome(&welcome("e", &[(1, 0)]), "", false);
        assert_eq!(d.on_message(m(1, 5)), Step::default());
        assert_eq!(after_grace(&mut d).len(), 1);
        let empty = History { conversation_id: 1, ..Default::default() };
        assert_eq!(d.on_history(1, empty), Step::default());
    }
}
