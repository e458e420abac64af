//! Templates in the embedded store: the `templates` keyspace's keys, the
//! [`TemplateStore`] impl (reads on a snapshot, writes queued to the writer)
//! and the writer's side of a conditional put or delete, checked against
//! the group's staged writes so that two saves never both apply.

use super::EmbeddedStore;
use super::db::{Ks, decode, encode};
use super::ops::{Done, Op};
use super::txn::Txn;
use crate::store::templates::{TemplateRecord, TemplateStore};
use crate::store::{StoreError, StoreResult};

/// `scope(1) | len(owner)(2) | owner`: the prefix of one partition's keys.
fn prefix(op: &'static str, scope: i32, owner: &str) -> StoreResult<Vec<u8>> {
    let scope = u8::try_from(scope)
        .map_err(|_| StoreError::Backend { op, source: format!("template scope {scope} is out of range").into() })?;
    super::key::tagged(op, scope, owner)
}

/// `prefix | id(8)`.
fn key(op: &'static str, scope: i32, owner: &str, id: u64) -> StoreResult<Vec<u8>> {
    let mut key = prefix(op, scope, owner)?;
    key.extend_from_slice(&id.to_be_bytes());
    Ok(key)
}

fn applied(done: Done) -> bool {
    matches!(done, Done::Applied(true))
}

impl TemplateStore for EmbeddedStore {
    async fn templates(&self, scope: i32, owner: &str) -> StoreResult<Vec<TemplateRecord>> {
        const OP: &str = "templates";
        let rows = self.scan_prefix(OP, Ks::Templates, &prefix(OP, scope, owner)?)?;
        rows.iter().map(|(_, value)| decode(Ks::Templates, value)).collect()
    }

    async fn get_template(&self, scope: i32, owner: &str, id: u64) -> StoreResult<Option<TemplateRecord>> {
        const OP: &str = "get_template";
        self.get(OP, Ks::Templates, &key(OP, scope, owner, id)?)?.map(|v| decode(Ks::Templates, &v)).transpose()
    }

    async fn put_template(&self, rec: &TemplateRecord, expected: Option<u64>) -> StoreResult<bool> {
        self.submit(Op::PutTemplate(rec.clone(), expected)).await.map(applied)
    }

    async fn delete_template(&self, scope: i32, owner: &str, id: u64) -> StoreResult<bool> {
        self.submit(Op::DeleteTemplate { scope, owner: owner.to_owned(), id }).await.map(applied)
    }
}

impl Txn<'_> {
    /// Stages `rec` if the stored template's `updated_at_ms` is `expected`
    /// (None: no template stored under its key).
    pub(super) fn put_template(&mut self, rec: &TemplateRecord, expected: Option<u64>) -> StoreResult<Done> {
        const OP: &str = "put_template";
        let key = key(OP, rec.scope, &rec.owner, rec.id)?;
        let stored: Option<TemplateRecord> =
            self.get(Ks::Templates, &key)?.map(|v| decode(Ks::Templates, &v)).transpose()?;
        if stored.map(|t| t.updated_at_ms) != expected {
            return Ok(Done::Applied(false));
        }
        let value = encode(OP, rec)?;
        self.put(Ks::Templates, &key, value);
        Ok(Done::Applied(true))
    }

    /// Stages the removal of a template, if it is stored.
    pub(super) fn delete_template(&mut self, scope: i32, owner: &str, id: u64) -> StoreResult<Done> {
        let key = key("delete_template", scope, owner, id)?;
        if self.get(Ks::Templates, &key)?.is_none() {
            return Ok(Done::Applied(false));
        }
        self.remove(Ks::Templates, &key);
        Ok(Done::Applied(true))
    }
}
