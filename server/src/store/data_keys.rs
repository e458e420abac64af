//! Data keys as stored: each conversation's data key, wrapped by a master
//! key (opaque bytes here; `at_rest` makes and opens them), with the
//! [`DataKeyStore`] contract every backend implements (embedded: the
//! `data_keys` keyspace; ScyllaDB: the `data_keys` table). Id 0 is no
//! conversation: it holds the check key that tells, at start, whether the
//! configured master key is the one the store was encrypted with.

use super::error::StoreResult;

/// Storage of wrapped data keys. Every write is durable on return.
#[allow(async_fn_in_trait)]
pub trait DataKeyStore: Send + Sync + 'static {
    /// The wrapped data key of a conversation (None: none, or shredded).
    async fn data_key(&self, conversation_id: u64) -> StoreResult<Option<Vec<u8>>>;

    /// Stores `wrapped` unless the conversation has a key; returns the stored
    /// one (this one, or the one that was there first).
    async fn insert_data_key(&self, conversation_id: u64, wrapped: &[u8]) -> StoreResult<Vec<u8>>;

    /// Replaces the key with `new` if it is still `old` (a rotation's
    /// re-wrap); whether it did.
    async fn replace_data_key(&self, conversation_id: u64, old: &[u8], new: &[u8]) -> StoreResult<bool>;

    /// Destroys a conversation's key (crypto-shredding); whether there was one.
    async fn delete_data_key(&self, conversation_id: u64) -> StoreResult<bool>;

    /// At most `limit` `(conversation_id, wrapped)` after `after` (None: from
    /// the start), in an order of the backend's that is the same on every
    /// call. For maintenance (rotation), never on a request's path.
    async fn data_keys_page(&self, after: Option<u64>, limit: usize) -> StoreResult<Vec<(u64, Vec<u8>)>>;
}
