//! Service accounts in ScyllaDB: the `service_accounts` table (`id` ->
//! `updated_at_ms`, JSON record), written only by lightweight transactions so
//! that a create never overwrites and an update applies only over the
//! version the caller saw. It touches no other table.

use super::rows::id_to_db;
use super::{ScyllaStore, StoreError, StoreResult};
use crate::store::service_accounts::{ServiceAccountRecord, ServiceAccountStore};

fn decode(json: &str) -> StoreResult<ServiceAccountRecord> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        table: "service_accounts",
        detail: format!("a record does not decode: {e}"),
    })
}

impl ServiceAccountStore for ScyllaStore {
    async fn service_accounts(&self) -> StoreResult<Vec<ServiceAccountRecord>> {
        const OP: &str = "service_accounts";
        self.call(OP, false, move |i| async move {
            let rows: Vec<(String,)> = i.rows(OP, &i.st.select_service_accounts, (), None).await?;
            let mut out = rows.iter().map(|(json,)| decode(json)).collect::<StoreResult<Vec<_>>>()?;
            out.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(out)
        })
        .await
    }

    async fn get_service_account(&self, id: &str) -> StoreResult<Option<ServiceAccountRecord>> {
        const OP: &str = "get_service_account";
        let id = id.to_owned();
        self.call(OP, false, move |i| async move {
            let row: Option<(String,)> = i.one(OP, &i.st.select_service_account, (id,), None).await?;
            row.map(|(json,)| decode(&json)).transpose()
        })
        .await
    }

    async fn put_service_account(&self, rec: &ServiceAccountRecord, expected: Option<u64>) -> StoreResult<bool> {
        const OP: &str = "put_service_account";
        let json = serde_json::to_string(rec).map_err(|e| StoreError::Backend { op: OP, source: Box::new(e) })?;
        let (id, at) = (rec.id.clone(), id_to_db(rec.updated_at_ms));
        self.call(OP, true, move |i| async move {
            let (stmt, result) = match expected {
                None => {
                    let stmt = &i.st.insert_service_account_if_absent;
                    (stmt, i.exec(OP, stmt, (id, at, json), None).await?)
                }
                Some(was) => {
                    let stmt = &i.st.update_service_account_if_unchanged;
                    (stmt, i.exec(OP, stmt, (at, json, id, id_to_db(was)), None).await?)
                }
            };
            i.applied(OP, stmt, result)
        })
        .await
    }
}
