//! The ordered lists that page in the store: each conversation's activity
//! (`conversation_activity`), each user's conversations by it, most recent
//! first (`conversations_by_activity`, clustered by `(activity_ms,
//! conversation_id)` descending), and the support queue by creation. A touch
//! moves every member's entry in three steps, new entries first, then the
//! activity, then the old entries away, so that a touch failing midway leaves
//! at worst entries whose activity is not the conversation's, which readers
//! skip. It does not write members or conversations (`records` does, and
//! calls [`Inner::list_member`] and [`Inner::unlist_member`]).

use scylla::value::CqlValue;

use super::rows::{WAITING, id_from_db, id_to_db};
use super::{Inner, StoreResult};
use crate::store::{ListKey, Range};

/// List entries written or deleted per batch.
const LIST_BATCH: usize = 64;

/// A `(user_id, activity_ms, conversation_id)` row.
fn listed(user: &str, at: u64, conv: u64) -> Vec<CqlValue> {
    vec![CqlValue::Text(user.to_owned()), CqlValue::BigInt(id_to_db(at)), CqlValue::BigInt(id_to_db(conv))]
}

/// Rows of `(time, id)` as list keys.
fn keys(rows: Vec<(i64, i64)>) -> Vec<ListKey> {
    rows.into_iter().map(|(at, id)| (id_from_db(at), id_from_db(id))).collect()
}

impl Inner {
    pub(super) async fn activity(&self, conv: u64) -> StoreResult<Option<u64>> {
        let row: Option<(i64,)> =
            self.one("conversation_activity", &self.st.select_activity, (id_to_db(conv),), None).await?;
        Ok(row.map(|(at,)| id_from_db(at)))
    }

    /// Writes a conversation's activity (what a new one starts with).
    pub(super) async fn set_activity(&self, op: &'static str, conv: u64, at: u64) -> StoreResult<()> {
        self.exec(op, &self.st.insert_activity, (id_to_db(conv), id_to_db(at)), None).await.map(|_| ())
    }

    /// Writes or deletes these list entries, [`LIST_BATCH`] per batch.
    async fn write_listed(&self, op: &'static str, insert: bool, rows: Vec<Vec<CqlValue>>) -> StoreResult<()> {
        let stmt = if insert { &self.st.insert_listed } else { &self.st.delete_listed };
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<CqlValue>> = rows.by_ref().take(LIST_BATCH).collect();
            self.batch(op, stmt.name, vec![stmt; chunk.len()], chunk).await?;
        }
        Ok(())
    }

    /// Puts `users` on their lists at the conversation's activity (a new
    /// conversation's members, or a new member).
    pub(super) async fn list_members(&self, op: &'static str, conv: u64, users: &[&str]) -> StoreResult<()> {
        let at = self.activity(conv).await?.unwrap_or(0);
        self.write_listed(op, true, users.iter().map(|u| listed(u, at, conv)).collect()).await
    }

    /// Puts `user` on their list unless they are already a member.
    pub(super) async fn list_member(&self, op: &'static str, conv: u64, user: &str) -> StoreResult<()> {
        let known: Option<(i64,)> =
            self.one(op, &self.st.select_user_conversation, (user, id_to_db(conv)), None).await?;
        if known.is_none() {
            self.list_members(op, conv, &[user]).await?;
        }
        Ok(())
    }

    /// Takes `user`'s entry of `conv` off their list.
    pub(super) async fn unlist_member(&self, op: &'static str, conv: u64, user: &str) -> StoreResult<()> {
        let at = self.activity(conv).await?.unwrap_or(0);
        self.exec(op, &self.st.delete_listed, listed(user, at, conv), None).await.map(|_| ())
    }

    pub(super) async fn touch(&self, conv: u64, at: u64) -> StoreResult<()> {
        const OP: &str = "touch_conversation";
        let Some(was) = self.activity(conv).await? else { return Ok(()) };
        if at <= was {
            return Ok(());
        }
        let members = self.members(conv).await?;
        self.write_listed(OP, true, members.iter().map(|m| listed(&m.user_id, at, conv)).collect()).await?;
        self.set_activity(OP, conv, at).await?;
        self.write_listed(OP, false, members.iter().map(|m| listed(&m.user_id, was, conv)).collect()).await
    }

    pub(super) async fn user_conversations_page(
        &self,
        user: String,
        after: Option<ListKey>,
        limit: usize,
    ) -> StoreResult<Vec<ListKey>> {
        if user.is_empty() {
            return Ok(Vec::new()); // An empty partition key is refused by the server.
        }
        let (first, next) = (&self.st.select_listed_first, &self.st.select_listed_below);
        self.page("user_conversations_page", (first, next), CqlValue::Text(user), after, limit).await
    }

    pub(super) async fn support_queue(&self, after: Option<ListKey>, limit: usize) -> StoreResult<Vec<ListKey>> {
        let (first, next) = (&self.st.select_queue_first, &self.st.select_queue_after);
        self.page("support_queue", (first, next), CqlValue::Text(WAITING.into()), after, limit).await
    }

    /// One page of a `(partition, time, id)` list: `first` from the start,
    /// `next` past `after`; both bind the partition, then `after`'s two
    /// columns (`next` only), then the limit.
    async fn page(
        &self,
        op: &'static str,
        (first, next): (&super::statements::Stmt, &super::statements::Stmt),
        partition: CqlValue,
        after: Option<ListKey>,
        limit: usize,
    ) -> StoreResult<Vec<ListKey>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = CqlValue::Int(i32::try_from(limit).unwrap_or(i32::MAX));
        let rows: Vec<(i64, i64)> = match after {
            None => self.rows(op, first, vec![partition, limit], None).await?,
            Some((at, id)) => {
                let values = vec![partition, CqlValue::BigInt(id_to_db(at)), CqlValue::BigInt(id_to_db(id)), limit];
                self.rows(op, next, values, None).await?
            }
        };
        Ok(keys(rows))
    }

    /// Every conversation's id (a full scan, page by page).
    pub(super) async fn conversation_ids(&self) -> StoreResult<Vec<u64>> {
        use futures_util::TryStreamExt;
        const OP: &str = "conversation_ids";
        let scan = format!("SELECT id FROM {}.conversations", self.settings.keyspace);
        let fail =
            |e: Box<dyn std::error::Error + Send + Sync>| self.error(OP, "scan_conversations", "ONE".into(), None, e);
        let pager = self.session.query_iter(scan, ()).await.map_err(|e| fail(e.into()))?;
        let ids: Vec<(i64,)> = pager
            .rows_stream::<(i64,)>()
            .map_err(|e| fail(e.into()))?
            .try_collect()
            .await
            .map_err(|e| fail(e.into()))?;
        Ok(ids.into_iter().map(|(id,)| id_from_db(id)).collect())
    }

    /// `chatd migrate` from schema version 1: every conversation's activity
    /// from its last message (its creation if none) and its members' lists.
    /// Returns how many conversations it did.
    pub(super) async fn backfill_activity(&self) -> StoreResult<usize> {
        use futures_util::TryStreamExt;
        use prost::Message as _;
        const OP: &str = "backfill_activity";
        let scan = format!("SELECT id, created_at_ms FROM {}.conversations", self.settings.keyspace);
        let fail =
            |e: Box<dyn std::error::Error + Send + Sync>| self.error(OP, "scan_conversations", "ONE".into(), None, e);
        let pager = self.session.query_iter(scan, ()).await.map_err(|e| fail(e.into()))?;
        let convs: Vec<(i64, i64)> = pager
            .rows_stream::<(i64, i64)>()
            .map_err(|e| fail(e.into()))?
            .try_collect()
            .await
            .map_err(|e| fail(e.into()))?;
        for &(id, created) in &convs {
            let (conv, mut at) = (id_from_db(id), id_from_db(created));
            let last = self.last_seq(conv).await?;
            if last > 0 {
                let range =
                    Range { after: last - 1, before: last + 1, limit: 1, direction: crate::store::Direction::Forward };
                if let Some((_, body)) = self.read_range(conv, range).await?.pop()
                    && let Ok(m) = chat_protocol::v1::Message::decode(body)
                {
                    at = m.server_time_ms;
                }
            }
            self.set_activity(OP, conv, at).await?;
            let members = self.members(conv).await?;
            self.write_listed(OP, true, members.iter().map(|m| listed(&m.user_id, at, conv)).collect()).await?;
        }
        Ok(convs.len())
    }
}
