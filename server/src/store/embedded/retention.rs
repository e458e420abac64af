//! Purge marks and legal holds in the embedded store: the `retention`
//! keyspace (`conversation(8)` -> `purged_through(8)`), the `legal_holds`
//! keyspace (`scope(1) | target` -> JSON HoldRecord), the purge of a
//! conversation's messages (with their versions and idempotency records)
//! in one commit with its mark, and the [`RetentionStore`] impl.

use fjall::Slice;
use prost::Message as _;

use super::EmbeddedStore;
use super::db::{Ks, backend, decode, encode, mark_of};
use super::key;
use super::ops::{Done, Op};
use super::txn::Txn;
use crate::store::StoreResult;
use crate::store::retention::{HoldRecord, HoldScope, RetentionStore};

/// `scope(1) | target`.
fn hold_key(scope: HoldScope, target: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + target.len());
    key.push(scope.tag());
    key.extend_from_slice(target.as_bytes());
    key
}

impl EmbeddedStore {
    /// The purge mark as of now (0: none).
    pub(super) fn mark(&self, op: &'static str, conversation_id: u64) -> StoreResult<u64> {
        Ok(mark_of(self.get(op, Ks::Retention, &conversation_id.to_be_bytes())?))
    }
}

impl RetentionStore for EmbeddedStore {
    async fn purged_through(&self, conversation_id: u64) -> StoreResult<u64> {
        self.mark("purged_through", conversation_id)
    }

    async fn purge_through(&self, conversation_id: u64, through: u64) -> StoreResult<()> {
        self.submit_unit(Op::Purge { conversation_id, through }).await
    }

    async fn forget_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<()> {
        self.submit_unit(Op::ForgetVersions { conversation_id, seq }).await
    }

    async fn strip_message(&self, conversation_id: u64, seq: u64) -> StoreResult<bool> {
        Ok(matches!(self.submit(Op::StripMessage { conversation_id, seq }).await?, Done::Applied(true)))
    }

    async fn delete_attachment(&self, conversation_id: u64, id: &str) -> StoreResult<()> {
        self.submit_unit(Op::DeleteAttachment { conversation_id, id: id.to_owned() }).await
    }

    async fn put_hold(&self, hold: &HoldRecord) -> StoreResult<()> {
        self.submit_unit(Op::PutHold(Box::new(hold.clone()))).await
    }

    async fn remove_hold(&self, scope: HoldScope, target: &str) -> StoreResult<bool> {
        match self.submit(Op::RemoveHold { scope, target: target.to_owned() }).await? {
            Done::Applied(removed) => Ok(removed),
            _ => Ok(true),
        }
    }

    async fn holds(&self) -> StoreResult<Vec<HoldRecord>> {
        let rows = self.scan_prefix("holds", Ks::LegalHolds, &[])?;
        rows.iter().map(|(_, value)| decode(Ks::LegalHolds, value)).collect()
    }
}

impl Txn<'_> {
    /// Stages the removal of the conversation's messages above its mark and
    /// at or below `through` (with their versions and idempotency records),
    /// and the new mark.
    pub(super) fn purge(&mut self, conv: u64, through: u64) -> StoreResult<Done> {
        const OP: &str = "purge_through";
        let mark = mark_of(self.get(Ks::Retention, &conv.to_be_bytes())?);
        if through <= mark {
            return Ok(Done::Unit);
        }
        let range = key::pair(conv, mark + 1)..=key::pair(conv, through);
        let rows: Vec<(Slice, Slice)> = self
            .db()
            .ks(Ks::Messages)
            .range(range)
            .map(|g| g.into_inner().map_err(backend(OP)))
            .collect::<Result<_, _>>()?;
        for (k, body) in rows {
            let seq = key::u64_at(Ks::Messages, &k, 16, 8)?;
            self.remove(Ks::Messages, &k);
            if let Ok(m) = chat_protocol::v1::Message::decode(&*body)
                && !m.client_msg_id.is_empty()
            {
                self.remove(Ks::Idempotency, &key::idempotency(OP, conv, &m.sender_id, &m.client_msg_id)?);
            }
            self.remove_versions(OP, conv, seq)?;
        }
        self.put(Ks::Retention, &conv.to_be_bytes(), Slice::from(&through.to_be_bytes()[..]));
        Ok(Done::Unit)
    }

    /// Stages the removal of message `seq`'s kept versions.
    fn remove_versions(&mut self, op: &'static str, conv: u64, seq: u64) -> StoreResult<()> {
        let versions: Vec<Slice> = self
            .db()
            .ks(Ks::Versions)
            .prefix(key::pair(conv, seq))
            .map(|g| g.key().map_err(backend(op)))
            .collect::<Result<_, _>>()?;
        for v in versions {
            self.remove(Ks::Versions, &v);
        }
        Ok(())
    }

    /// Stages the removal of one message's kept versions.
    pub(super) fn forget_versions(&mut self, conv: u64, seq: u64) -> StoreResult<Done> {
        self.remove_versions("forget_versions", conv, seq)?;
        Ok(Done::Unit)
    }

    /// Stages message `seq` without its content.
    pub(super) fn strip_message(&mut self, conv: u64, seq: u64) -> StoreResult<Done> {
        let key = key::pair(conv, seq);
        let Some(stored) = self.get(Ks::Messages, &key)? else { return Ok(Done::Applied(false)) };
        let bare = crate::store::at_rest::seal::without_content(&stored)?;
        self.put(Ks::Messages, &key, Slice::from(bare));
        Ok(Done::Applied(true))
    }

    /// Stages the removal of an attachment record.
    pub(super) fn delete_attachment(&mut self, conv: u64, id: &str) -> StoreResult<Done> {
        self.remove(Ks::Attachments, &key::attachment(conv, id));
        Ok(Done::Unit)
    }

    /// Stages a hold.
    pub(super) fn put_hold(&mut self, hold: &HoldRecord) -> StoreResult<Done> {
        let value = encode("put_hold", hold)?;
        self.put(Ks::LegalHolds, &hold_key(hold.scope, &hold.target), value);
        Ok(Done::Unit)
    }

    /// Stages the release of a hold, if there is one.
    pub(super) fn remove_hold(&mut self, scope: HoldScope, target: &str) -> StoreResult<Done> {
        let key = hold_key(scope, target);
        if self.get(Ks::LegalHolds, &key)?.is_none() {
            return Ok(Done::Applied(false));
        }
        self.remove(Ks::LegalHolds, &key);
        Ok(Done::Applied(true))
    }
}
