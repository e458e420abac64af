//! The store's failure ([`StoreError`]) and result type: a leaf every
//! backend and layer of the store names.

/// A store failure, precise enough to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open store at {path}: {source}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A read or write failed in the backend.
    #[error("store {op} failed: {source}")]
    Backend {
        /// The operation ("append", "read_range"...).
        op: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value does not decode (corruption or a newer format).
    #[error("corrupt record in {table}: {detail}")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The backend's schema is missing, older or newer than this binary's
    /// (the detail says which, and what to run).
    #[error("store schema in keyspace {keyspace}: {detail}")]
    Schema {
        /// Which keyspace.
        keyspace: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// An append would overwrite an existing `(conversation, seq)`.
    #[error("seq {seq} of conversation {conversation_id} is already stored")]
    SeqTaken {
        /// The conversation.
        conversation_id: u64,
        /// The seq.
        seq: u64,
    },
    /// Some messages of an append are already stored under their client
    /// message ids (retries the owner's memory no longer knew): nothing of the
    /// call was written. Each pair is (the seq the call gave the message, the
    /// seq it is stored at); the owner answers those as duplicates and
    /// sequences the rest again.
    #[error("{} message(s) of the append are already stored under their client ids", .0.len())]
    Duplicates(Vec<(u64, u64)>),
    /// The store is shutting down and takes no more writes.
    #[error("store is closed")]
    Closed,
    /// Encryption at rest refused a key or a record.
    #[error("encryption at rest: {0}")]
    AtRest(#[from] super::at_rest::error::AtRestError),
}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;
