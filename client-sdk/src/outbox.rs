//! The outbox: sends, edits, deletes and reactions waiting for their
//! stored-ack, kept across reconnects and re-sent in their original order
//! with the same `client_msg_id` (which makes each of them idempotent);
//! with a file ([`crate::outbox_file`]), across restarts of the application too.

use crate::ClientError;
use crate::outbox_file::OutboxFile;
use chat_protocol::v1::command::Body;
use std::collections::VecDeque;
use std::time::Instant;

/// A fresh client message id: 128 random bits in hex.
pub fn new_client_msg_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// One send waiting for its ack.
#[derive(Debug)]
pub(crate) struct Entry<W> {
    /// Local key, stable across reconnects.
    pub key: u64,
    /// The send or change, with its client_msg_id filled.
    pub msg: Body,
    /// Who waits for the ack.
    pub waiter: W,
    /// Request id of the copy written on the current connection, if any.
    pub in_flight: Option<u64>,
    /// Not re-sent before then (the server asked to retry later).
    pub not_before: Option<Instant>,
}

/// Bounded, ordered sends awaiting acks.
#[derive(Debug)]
pub(crate) struct Outbox<W> {
    entries: VecDeque<Entry<W>>,
    capacity: usize,
    next_key: u64,
    /// Where pending entries also live, if the application chose a file.
    file: Option<OutboxFile>,
}

impl<W> Outbox<W> {
    /// An outbox holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { entries: VecDeque::new(), capacity: capacity.max(1), next_key: 1, file: None }
    }

    /// Keeps pending entries in `file` from now on, after the sends it still
    /// held (each with a waiter from `waiter`: nobody awaits those acks).
    pub fn with_file(mut self, file: OutboxFile, restored: Vec<Body>, waiter: impl Fn() -> W) -> Self {
        for msg in restored {
            let key = self.next_key;
            self.next_key += 1;
            self.entries.push_back(Entry { key, msg, waiter: waiter(), in_flight: None, not_before: None });
        }
        self.file = Some(file);
        self
    }

    /// Queues a send or change (filling its client_msg_id when empty; on
    /// disk first if there is a file); gives its waiter back when full or
    /// when the file cannot take it.
    pub fn push(&mut self, mut msg: Body, waiter: W) -> Result<u64, (W, ClientError)> {
        if self.entries.len() >= self.capacity {
            return Err((waiter, ClientError::OutboxFull));
        }
        if let Some(cmid) = client_msg_id(&mut msg)
            && cmid.is_empty()
        {
            *cmid = new_client_msg_id();
        }
        if let Some(f) = &mut self.file
            && let Err(e) = f.put(&msg)
        {
            return Err((waiter, ClientError::OutboxFile(e.to_string())));
        }
        let key = self.next_key;
        self.next_key += 1;
        self.entries.push_back(Entry { key, msg, waiter, in_flight: None, not_before: None });
        Ok(key)
    }

    /// The sends not yet written on the current connection, oldest first
    /// (those told to retry later only once their time has come).
    pub fn unsent(&self) -> Vec<(u64, Body)> {
        let now = Instant::now();
        self.entries
            .iter()
            .filter(|e| e.in_flight.is_none() && e.not_before.is_none_or(|t| t <= now))
            .map(|e| (e.key, e.msg.clone()))
            .collect()
    }

    /// The server answered send `key` with "retry later": it goes out again
    /// (same client message id) at `at`.
    pub fn retry_at(&mut self, key: u64, at: Instant) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.in_flight = None;
            e.not_before = Some(at);
        }
    }

    /// Records that send `key` went out as request `request_id`.
    pub fn mark_sent(&mut self, key: u64, request_id: u64) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.in_flight = Some(request_id);
        }
    }

    /// Removes send `key` (acked or refused for good), handing back its waiter.
    pub fn take(&mut self, key: u64) -> Option<Entry<W>> {
        let i = self.entries.iter().position(|e| e.key == key)?;
        let entry = self.entries.remove(i)?;
        if let Some(f) = &mut self.file
            && let Err(e) = f.done(client_msg_id_of(&entry.msg), self.entries.iter().map(|e| &e.msg))
        {
            // The send would only go again after a restart, with its id.
            tracing::warn!(error = %e, "cannot record an ended send in the outbox file");
        }
        Some(entry)
    }

    /// The connection dropped: every unacked send must go out again.
    pub fn on_disconnect(&mut self) {
        for e in &mut self.entries {
            e.in_flight = None;
            e.not_before = None;
        }
    }

    /// Empties the outbox (the client is closing; what a file holds stays for the next start).
    pub fn drain(&mut self) -> Vec<Entry<W>> {
        self.entries.drain(..).collect()
    }

    /// How many sends wait.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The client message id of a send or change ("" for anything else).
pub(crate) fn client_msg_id_of(body: &Body) -> &str {
    match body {
        Body::SendMessage(m) => &m.client_msg_id,
        Body::EditMessage(m) => &m.client_msg_id,
        Body::DeleteMessage(m) => &m.client_msg_id,
        Body::React(m) => &m.client_msg_id,
        _ => "",
    }
}

/// The idempotency key of what the outbox holds (None: not a send or change).
fn client_msg_id(body: &mut Body) -> Option<&mut String> {
    match body {
        Body::SendMessage(m) => Some(&mut m.client_msg_id),
        Body::EditMessage(m) => Some(&mut m.client_msg_id),
        Body::DeleteMessage(m) => Some(&mut m.client_msg_id),
        Body::React(m) => Some(&mut m.client_msg_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::v1::{React, SendMessage};

    fn msg(conv: u64, cmid: &str) -> Body {
        Body::SendMessage(SendMessage { conversation_id: conv, client_msg_id: cmid.into(), ..Default::default() })
    }

    fn cmid(mut b: Body) -> String {
        client_msg_id(&mut b).cloned().unwrap_or_default()
    }

    #[test]
    fn fills_fresh_ids_and_keeps_given_ones() {
        let mut o = Outbox::new(4);
        o.push(msg(1, ""), ()).expect("room");
        o.push(msg(1, ""), ()).expect("room");
        o.push(msg(1, "mine"), ()).expect("room");
        let react = React { conversation_id: 1, seq: 1, emoji: "👍".into(), on: true, client_msg_id: String::new() };
        o.push(Body::React(react), ()).expect("room");
        let ids: Vec<_> = o.unsent().into_iter().map(|(_, m)| cmid(m)).collect();
        assert_eq!(ids[0].len(), 32);
        assert!(ids[0].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[2], "mine");
        assert_eq!(ids[3].len(), 32, "a change gets one too");
    }

    #[test]
    fn bounded() {
        let mut o = Outbox::new(2);
        assert!(o.push(msg(1, "a"), 1).is_ok());
        assert!(o.push(msg(1, "b"), 2).is_ok());
        assert_eq!(o.push(msg(1, "c"), 3).expect_err("full"), (3, ClientError::OutboxFull), "the waiter comes back");
        o.take(1);
        assert!(o.push(msg(1, "c"), 3).is_ok());
    }

    #[test]
    fn resends_unacked_in_order_with_same_ids_after_disconnect() {
        let mut o = Outbox::new(10);
        let a = o.push(msg(1, "a"), "wa").expect("room");
        let b = o.push(msg(2, "b"), "wb").expect("room");
        let c = o.push(msg(1, "c"), "wc").expect("room");
        for (i, (key, _)) in o.unsent().into_iter().enumerate() {
            o.mark_sent(key, 100 + i as u64);
        }
        assert!(o.unsent().is_empty());
        // b is acked, then the connection drops before a and c are.
        assert_eq!(o.take(b).map(|e| e.waiter), Some("wb"));
        o.on_disconnect();
        let again: Vec<_> = o.unsent().into_iter().map(|(k, m)| (k, cmid(m))).collect();
        assert_eq!(again, vec![(a, "a".to_string()), (c, "c".to_string())]);
        // A send made while disconnected goes after them.
        let d = o.push(msg(3, "d"), "wd").expect("room");
        assert_eq!(o.unsent().last().map(|(k, _)| *k), Some(d));
        assert_eq!(o.len(), 3);
        // Told to retry later: not before its time, then with the same id.
        o.mark_sent(a, 200);
        o.mark_sent(c, 201);
        o.mark_sent(d, 202);
        o.retry_at(c, Instant::now() + std::time::Duration::from_secs(60));
        assert!(o.unsent().is_empty());
        o.retry_at(c, Instant::now());
        assert_eq!(o.unsent().into_iter().map(|(k, _)| k).collect::<Vec<_>>(), vec![c]);
        assert_eq!(o.drain().len(), 3);
        assert_eq!(o.len(), 0);
    }
}
