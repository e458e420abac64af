//! The refusals and failures of encryption at rest ([`AtRestError`]), a
//! leaf the key and seal modules name.

/// A refusal or failure of encryption at rest, precise enough to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AtRestError {
    /// A master key could not be read.
    #[error("master key from {from}: {why}")]
    BadMasterKey {
        /// Its file, or the setting.
        from: String,
        /// What is wrong.
        why: String,
    },
    /// A data key is wrapped by a master key this configuration lacks.
    #[error(
        "data keys are wrapped by master key {id}, which is not configured (configured: {}); give it as \
         encryption.master_key_file, or in encryption.previous_master_key_files until `chatd keys rotate` \
         has re-wrapped them",
        known.join(", ")
    )]
    UnknownMasterKey {
        /// The id the wrapped key names.
        id: String,
        /// The ids configured.
        known: Vec<String>,
    },
    /// A master key does not open a key wrapped under its id.
    #[error("master key {id} does not open a data key wrapped under its id (the record was altered)")]
    WrongMasterKey {
        /// The master key's id.
        id: String,
    },
    /// A sealed content does not open under its conversation's key.
    #[error("a sealed message of conversation {conversation_id} does not open (altered, or moved from another row)")]
    Unopenable {
        /// The conversation.
        conversation_id: u64,
    },
    /// The store holds encrypted content and no master key is configured.
    #[error(
        "the store holds content encrypted at rest (master key {id}) and no master key is configured: set \
         encryption.master_key_file or CHAT_ENCRYPTION__MASTER_KEY"
    )]
    NotConfigured {
        /// The master key that wrapped the store's check key.
        id: String,
    },
    /// Content for a conversation whose data key was destroyed (it was
    /// erased): nothing new is sealed for it.
    #[error("conversation {conversation_id} was erased: its data key is destroyed and it takes no new content")]
    Erased {
        /// The conversation.
        conversation_id: u64,
    },
    /// The store is not encrypted (a rotation asked of a plaintext store).
    #[error("encryption at rest is off: no master key is configured")]
    Off,
    /// A stored sealed record does not parse.
    #[error("corrupt sealed record: {0}")]
    Corrupt(String),
}

impl AtRestError {
    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        AtRestError::Corrupt(detail.into())
    }
}
