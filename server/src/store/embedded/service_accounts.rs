//! Service accounts in the embedded store: the `service_accounts` keyspace
//! (`id` -> JSON record), the [`ServiceAccountStore`] impl (reads on a
//! snapshot, writes queued to the writer) and the writer's side of a
//! conditional put, checked against the group's staged writes.

use super::EmbeddedStore;
use super::db::{Ks, decode, encode};
use super::ops::{Done, Op};
use super::txn::Txn;
use crate::store::StoreResult;
use crate::store::service_accounts::{ServiceAccountRecord, ServiceAccountStore};

impl ServiceAccountStore for EmbeddedStore {
    async fn service_accounts(&self) -> StoreResult<Vec<ServiceAccountRecord>> {
        let rows = self.scan_prefix("service_accounts", Ks::ServiceAccounts, &[])?;
        rows.iter().map(|(_, value)| decode(Ks::ServiceAccounts, value)).collect()
    }

    async fn get_service_account(&self, id: &str) -> StoreResult<Option<ServiceAccountRecord>> {
        const OP: &str = "get_service_account";
        let key = super::key::user(OP, id)?;
        self.get(OP, Ks::ServiceAccounts, &key)?.map(|v| decode(Ks::ServiceAccounts, &v)).transpose()
    }

    async fn put_service_account(&self, rec: &ServiceAccountRecord, expected: Option<u64>) -> StoreResult<bool> {
        let done = self.submit(Op::PutServiceAccount(Box::new(rec.clone()), expected)).await?;
        Ok(matches!(done, Done::Applied(true)))
    }
}

impl Txn<'_> {
    /// Stages `rec` if the stored account's `updated_at_ms` is `expected`
    /// (None: no account stored under its id).
    pub(super) fn put_service_account(
        &mut self,
        rec: &ServiceAccountRecord,
        expected: Option<u64>,
    ) -> StoreResult<Done> {
        const OP: &str = "put_service_account";
        let key = super::key::user(OP, &rec.id)?;
        let stored: Option<ServiceAccountRecord> =
            self.get(Ks::ServiceAccounts, &key)?.map(|v| decode(Ks::ServiceAccounts, &v)).transpose()?;
        if stored.map(|s| s.updated_at_ms) != expected {
            return Ok(Done::Applied(false));
        }
        let value = encode(OP, rec)?;
        self.put(Ks::ServiceAccounts, &key, value);
        Ok(Done::Applied(true))
    }
}
