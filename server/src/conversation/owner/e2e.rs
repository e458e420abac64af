//! End-to-end encrypted conversations at the owner: which bodies a
//! conversation takes (an E2E one only `E2eCiphertext`, a plain one never),
//! and the MLS epoch the conversation's sequence orders. The owner keeps the
//! group's epoch after what is stored; a message made in another epoch is
//! refused with `STALE_EPOCH` (first wins: of two commits for one epoch the
//! one sequenced first moves the group, the other's sender applies it and
//! commits again). Every entry stored in an E2E conversation is stamped with
//! the epoch after it (`Message.mls_epoch`), so a new owner learns the epoch
//! from the head message alone. The server never reads the MLS bytes.

use super::{Handles, Owner};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, message_body::Content};

/// The E2E message a stored or pending entry carries, if any.
fn ciphertext(msg: &v1::Message) -> Option<&v1::E2eCiphertext> {
    match msg.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(Content::Ciphertext(c)) => Some(c),
        _ => None,
    }
}

/// Whether `msg` is an MLS commit (group bookkeeping, not something people read).
pub fn is_commit(msg: &v1::Message) -> bool {
    ciphertext(msg).is_some_and(|c| c.commit)
}

/// The epoch after `msg`, given the epoch before it (None: not known).
fn epoch_after(before: Option<u64>, msg: &v1::Message) -> Option<u64> {
    match ciphertext(msg) {
        Some(c) => Some(c.epoch + u64::from(c.commit)),
        None => before,
    }
}

/// Why `msg`, made for a group at `epoch`, is refused there (None: it fits).
fn stale(epoch: Option<u64>, msg: &v1::Message) -> Option<WireError> {
    let (c, at) = (ciphertext(msg)?, epoch?);
    (c.epoch != at).then(|| {
        WireError::new(
            ErrorCode::StaleEpoch,
            format!("the group is at epoch {at}, not {}: apply the commits after it and send again", c.epoch),
        )
    })
}

/// The group's epoch after a stored message: its stamp in an E2E
/// conversation (None: none stored at `last` though messages were, i.e. the
/// head was purged; the next message's epoch is then taken as the group's).
pub fn epoch_at_head(e2e: bool, last: u64, head: Option<&v1::Message>) -> Option<u64> {
    match (e2e, head) {
        (false, _) => None,
        (true, Some(m)) => Some(m.mls_epoch),
        (true, None) if last == 0 => Some(0),
        (true, None) => None,
    }
}

impl<R: Handles> Owner<R> {
    /// Why a new message with `body` does not belong in this conversation:
    /// plaintext in an E2E one, ciphertext in a plain one, or a message made
    /// in another epoch than the one the group will be at when it is stored.
    pub(super) fn body_refusal(&self, msg: &v1::Message) -> Option<WireError> {
        match (self.rec.e2e, ciphertext(msg).is_some()) {
            (true, false) => Some(WireError::new(
                ErrorCode::E2eRequired,
                "this conversation is end-to-end encrypted: send an E2eCiphertext, not plaintext",
            )),
            (false, true) => Some(WireError::new(ErrorCode::NotE2e, "this conversation is not end-to-end encrypted")),
            (false, false) => None,
            (true, true) => stale(self.epoch_queued(), msg),
        }
    }

    /// The epoch after everything stored, in flight and pending.
    fn epoch_queued(&self) -> Option<u64> {
        let queued = self.inflight.iter().chain(self.pending.iter());
        queued.fold(self.mls_epoch, |e, p| epoch_after(e, &p.msg))
    }
}

/// Before a batch is sequenced, for each entry in order: refuses a message
/// no longer made for the epoch the group will be at (`running`, e.g. a
/// commit before it was refused), else stamps the epoch after it and moves
/// `running` past it. Plain conversations pass untouched.
pub fn stamp_epoch(e2e: bool, msg: &mut v1::Message, running: &mut Option<u64>) -> Result<(), WireError> {
    if !e2e {
        return Ok(());
    }
    if let Some(e) = stale(*running, msg) {
        return Err(e);
    }
    *running = epoch_after(*running, msg);
    msg.mls_epoch = running.unwrap_or(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(content: Option<Content>) -> v1::Message {
        v1::Message { body: Some(v1::MessageBody { content }), ..Default::default() }
    }

    fn ct(epoch: u64, commit: bool) -> v1::Message {
        msg(Some(Content::Ciphertext(v1::E2eCiphertext { epoch, commit, mls: vec![1].into(), ..Default::default() })))
    }

    #[test]
    fn a_commit_moves_the_epoch_an_application_message_does_not() {
        assert_eq!(epoch_after(Some(4), &ct(4, false)), Some(4));
        assert_eq!(epoch_after(Some(4), &ct(4, true)), Some(5));
        // Not known (the head was purged): the message's own epoch is taken.
        assert_eq!(epoch_after(None, &ct(9, true)), Some(10));
        // A plain entry (a delete, a reaction) keeps it.
        assert_eq!(epoch_after(Some(4), &msg(None)), Some(4));
    }

    #[test]
    fn only_the_current_epoch_is_taken() {
        assert!(stale(Some(3), &ct(3, true)).is_none());
        let e = stale(Some(3), &ct(2, true)).unwrap();
        assert_eq!(e.code, ErrorCode::StaleEpoch);
        assert!(e.message.contains("epoch 3"), "{}", e.message);
        assert_eq!(stale(Some(3), &ct(4, false)).unwrap().code, ErrorCode::StaleEpoch);
        assert!(stale(None, &ct(7, false)).is_none(), "not known: taken");
    }

    #[test]
    fn a_batch_is_stamped_in_order_and_a_stale_entry_refused() {
        let mut running = Some(2);
        let mut batch = [ct(2, false), ct(2, true), ct(2, false), ct(3, false), msg(None)];
        let out: Vec<_> = batch.iter_mut().map(|m| stamp_epoch(true, m, &mut running).map(|()| m.mls_epoch)).collect();
        assert_eq!(out[0], Ok(2));
        assert_eq!(out[1], Ok(3), "a commit's entry carries the epoch it starts");
        assert_eq!(out[2].as_ref().unwrap_err().code, ErrorCode::StaleEpoch, "made before the commit");
        assert_eq!(out[3], Ok(3));
        assert_eq!(out[4], Ok(3), "a plain entry (a delete) is stamped too");
        let mut plain = ct(9, false);
        assert_eq!(stamp_epoch(false, &mut plain, &mut running), Ok(()));
        assert_eq!(plain.mls_epoch, 0);
    }

    #[test]
    fn the_epoch_is_learned_from_the_head() {
        let head = v1::Message { mls_epoch: 6, ..ct(5, true) };
        assert_eq!(epoch_at_head(true, 10, Some(&head)), Some(6));
        assert_eq!(epoch_at_head(true, 0, None), Some(0), "a new group starts at epoch 0");
        assert_eq!(epoch_at_head(true, 10, None), None, "head purged");
        assert_eq!(epoch_at_head(false, 10, Some(&head)), None);
    }
}
