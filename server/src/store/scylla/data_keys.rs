//! Data keys in ScyllaDB: the `data_keys` table (`conversation_id` ->
//! `wrapped`), written only by lightweight transactions so that two nodes
//! making a conversation's first key agree on one, and a rotation's re-wrap
//! never overwrites a key changed since it was read. Paged by token for a
//! rotation. It touches no other table.

use super::rows::{id_from_db, id_to_db};
use super::{ScyllaStore, StoreResult};
use crate::store::data_keys::DataKeyStore;

impl DataKeyStore for ScyllaStore {
    async fn data_key(&self, conversation_id: u64) -> StoreResult<Option<Vec<u8>>> {
        const OP: &str = "data_key";
        self.call(OP, false, move |i| async move {
            let row: Option<(Vec<u8>,)> = i.one(OP, &i.st.select_data_key, (id_to_db(conversation_id),), None).await?;
            Ok(row.map(|(w,)| w))
        })
        .await
    }

    async fn insert_data_key(&self, conversation_id: u64, wrapped: &[u8]) -> StoreResult<Vec<u8>> {
        const OP: &str = "insert_data_key";
        let wrapped = wrapped.to_vec();
        self.call(OP, true, move |i| async move {
            let stmt = &i.st.insert_data_key_if_absent;
            let result = i.exec(OP, stmt, (id_to_db(conversation_id), wrapped.clone()), None).await?;
            if i.applied(OP, stmt, result)? {
                return Ok(wrapped);
            }
            let row: Option<(Vec<u8>,)> = i.one(OP, &i.st.select_data_key, (id_to_db(conversation_id),), None).await?;
            // Shredded between the two statements: ours is as good as any.
            Ok(row.map_or(wrapped, |(w,)| w))
        })
        .await
    }

    async fn replace_data_key(&self, conversation_id: u64, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        const OP: &str = "replace_data_key";
        let (old, new) = (old.to_vec(), new.to_vec());
        self.call(OP, true, move |i| async move {
            let stmt = &i.st.update_data_key_if_unchanged;
            let result = i.exec(OP, stmt, (new, id_to_db(conversation_id), old), None).await?;
            i.applied(OP, stmt, result)
        })
        .await
    }

    async fn delete_data_key(&self, conversation_id: u64) -> StoreResult<bool> {
        const OP: &str = "delete_data_key";
        self.call(OP, true, move |i| async move {
            let stmt = &i.st.delete_data_key_if_exists;
            let result = i.exec(OP, stmt, (id_to_db(conversation_id),), None).await?;
            i.applied(OP, stmt, result)
        })
        .await
    }

    async fn data_keys_page(&self, after: Option<u64>, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>> {
        const OP: &str = "data_keys_page";
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        self.call(OP, false, move |i| async move {
            let rows: Vec<(i64, Vec<u8>)> = match after {
                None => i.rows(OP, &i.st.select_data_keys_first, (limit,), None).await?,
                Some(a) => i.rows(OP, &i.st.select_data_keys_after, (id_to_db(a), limit), None).await?,
            };
            Ok(rows.into_iter().map(|(id, w)| (id_from_db(id), w)).collect())
        })
        .await
    }
}
