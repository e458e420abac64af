//! Data keys in the embedded store: the `data_keys` keyspace (key: the
//! conversation id, big-endian; value: the wrapped key), the
//! [`DataKeyStore`] impl (reads on a snapshot, writes queued to the writer)
//! and the writer's side of its conditional writes, checked against the
//! group's staged writes.

use fjall::Slice;

use super::EmbeddedStore;
use super::db::Ks;
use super::key::u64_at;
use super::ops::{Done, Op};
use super::txn::Txn;
use crate::store::data_keys::DataKeyStore;
use crate::store::{StoreError, StoreResult};

fn unexpected(op: &'static str) -> StoreError {
    StoreError::Backend { op, source: "the writer answered another kind of result".into() }
}

impl DataKeyStore for EmbeddedStore {
    async fn data_key(&self, conversation_id: u64) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.get("data_key", Ks::DataKeys, &conversation_id.to_be_bytes())?.map(|v| v.to_vec()))
    }

    async fn insert_data_key(&self, conversation_id: u64, wrapped: &[u8]) -> StoreResult<Vec<u8>> {
        match self.submit(Op::InsertDataKey { conversation_id, wrapped: wrapped.to_vec() }).await? {
            Done::Value(v) => Ok(v),
            _ => Err(unexpected("insert_data_key")),
        }
    }

    async fn replace_data_key(&self, conversation_id: u64, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        let op = Op::ReplaceDataKey { conversation_id, old: old.to_vec(), new: new.to_vec() };
        Ok(matches!(self.submit(op).await?, Done::Applied(true)))
    }

    async fn delete_data_key(&self, conversation_id: u64) -> StoreResult<bool> {
        Ok(matches!(self.submit(Op::DeleteDataKey { conversation_id }).await?, Done::Applied(true)))
    }

    async fn data_keys_page(&self, after: Option<u64>, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        const OP: &str = "data_keys_page";
        let from = match after {
            None => 0,
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(a) => a + 1,
        };
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        for guard in fjall::Readable::range(&snapshot, self.db.ks(Ks::DataKeys), from.to_be_bytes()..).take(limit) {
            let (k, v) = guard.into_inner().map_err(super::db::backend(OP))?;
            out.push((u64_at(Ks::DataKeys, &k, 8, 0)?, v.to_vec()));
        }
        Ok(out)
    }
}

impl Txn<'_> {
    pub(super) fn insert_data_key(&mut self, conv: u64, wrapped: &[u8]) -> StoreResult<Done> {
        let key = conv.to_be_bytes();
        if let Some(stored) = self.get(Ks::DataKeys, &key)? {
            return Ok(Done::Value(stored.to_vec()));
        }
        self.put(Ks::DataKeys, &key, Slice::from(wrapped));
        Ok(Done::Value(wrapped.to_vec()))
    }

    pub(super) fn replace_data_key(&mut self, conv: u64, old: &[u8], new: &[u8]) -> StoreResult<Done> {
        let key = conv.to_be_bytes();
        if self.get(Ks::DataKeys, &key)?.as_deref() != Some(old) {
            return Ok(Done::Applied(false));
        }
        self.put(Ks::DataKeys, &key, Slice::from(new));
        Ok(Done::Applied(true))
    }

    pub(super) fn delete_data_key(&mut self, conv: u64) -> StoreResult<Done> {
        let key = conv.to_be_bytes();
        if self.get(Ks::DataKeys, &key)?.is_none() {
            return Ok(Done::Applied(false));
        }
        self.remove(Ks::DataKeys, &key);
        Ok(Done::Applied(true))
    }
}
