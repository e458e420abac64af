//! Templates and quick replies as stored: the [`TemplateRecord`] and the
//! [`TemplateStore`] contract every backend implements (embedded: the
//! `templates` keyspace; ScyllaDB: the `templates` table), with [`Store`]
//! choosing the configured one. Writes are compare-and-set, so two saves of
//! one template never overwrite each other unseen. It does not own the rules
//! of who may save what (that is `crate::command::templates`).

use super::{Store, StoreResult};

/// A saved template. `(scope, owner)` is its partition: a user's personal
/// templates, or the firm's (`owner` empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateRecord {
    /// Server-made id, unique within `(scope, owner)`.
    pub id: u64,
    /// `chat.v1.TemplateScope` number.
    pub scope: i32,
    /// The user a personal template belongs to (empty for a firm one).
    pub owner: String,
    /// The short name used after `/`.
    pub name: String,
    /// The text with placeholders.
    pub body: String,
    /// Last save, ms since the Unix epoch (the compare-and-set token).
    pub updated_at_ms: u64,
    /// Who saved it last.
    pub updated_by: String,
}

/// Storage of templates. Every write is durable on return.
#[allow(async_fn_in_trait)]
pub trait TemplateStore: Send + Sync + 'static {
    /// The templates of `(scope, owner)`, by id.
    async fn templates(&self, scope: i32, owner: &str) -> StoreResult<Vec<TemplateRecord>>;

    /// One template of `(scope, owner)`.
    async fn get_template(&self, scope: i32, owner: &str, id: u64) -> StoreResult<Option<TemplateRecord>>;

    /// Writes `rec` if the stored one matches `expected`: None, when no
    /// template with its `(scope, owner, id)` exists (create); `Some(t)`, when
    /// one exists with `updated_at_ms == t` (update). Returns whether it wrote.
    async fn put_template(&self, rec: &TemplateRecord, expected: Option<u64>) -> StoreResult<bool>;

    /// Deletes a template; returns whether it existed.
    async fn delete_template(&self, scope: i32, owner: &str, id: u64) -> StoreResult<bool>;
}

impl TemplateStore for Store {
    async fn templates(&self, scope: i32, owner: &str) -> StoreResult<Vec<TemplateRecord>> {
        super::delegate!(self, s => s.templates(scope, owner).await)
    }

    async fn get_template(&self, scope: i32, owner: &str, id: u64) -> StoreResult<Option<TemplateRecord>> {
        super::delegate!(self, s => s.get_template(scope, owner, id).await)
    }

    async fn put_template(&self, rec: &TemplateRecord, expected: Option<u64>) -> StoreResult<bool> {
        super::delegate!(self, s => s.put_template(rec, expected).await)
    }

    async fn delete_template(&self, scope: i32, owner: &str, id: u64) -> StoreResult<bool> {
        super::delegate!(self, s => s.delete_template(scope, owner, id).await)
    }
}
