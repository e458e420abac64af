//! Records other than messages: conversations (create-if-absent, update
//! with the support queue in step), members and their reverse index (and
//! their lists, through `lists`), the
//! watermarks (moved only forward, by lightweight transactions), and users.
//! Rows that transactions write are written only by transactions (see
//! `deploy/CLUSTER.md`). It does not touch messages.

use std::collections::HashSet;

use scylla::statement::Consistency;
use scylla::value::CqlValue;

use super::rows::{
    ConvRow, MemberRow, conv_from_row, conv_values, id_from_db, id_to_db, is_waiting, member_from_row, member_values,
    queue_values, seq_from_db, seq_to_db, user_conv_values,
};
use super::statements::Stmt;
use super::{ConversationRecord, Created, FAN_OUT, Inner, MemberRecord, StoreError, StoreResult, UserRecord};

/// Rounds (read, transaction) of a watermark advance before it gives up.
pub(super) const WATERMARK_ROUNDS: usize = 8;

/// Rounds of the best-effort sender watermark advance of an append: enough
/// for a row nobody else moves, and short under contention with receipt
/// flushes on the same Paxos partition (receipts move it up anyway).
pub(super) const APPEND_WATERMARK_ROUNDS: usize = 3;

/// Members written per conditional batch when a conversation is created.
const MEMBER_BATCH: usize = 64;

impl Inner {
    pub(super) async fn get_conversation(
        &self,
        id: u64,
        consistency: Option<Consistency>,
    ) -> StoreResult<Option<ConversationRecord>> {
        let row: Option<ConvRow> =
            self.one("get_conversation", &self.st.select_conversation, (id_to_db(id),), consistency).await?;
        Ok(row.map(conv_from_row))
    }

    /// Writes a row through Paxos whether it exists or not: `update` (`IF
    /// EXISTS`), else `insert` (`IF NOT EXISTS`), until one applies. Rows that
    /// transactions write are written only by transactions (see `deploy/CLUSTER.md`).
    pub(super) async fn upsert_by_transaction(
        &self,
        op: &'static str,
        (update, update_values): (&Stmt, Vec<CqlValue>),
        (insert, insert_values): (&Stmt, Vec<CqlValue>),
    ) -> StoreResult<()> {
        // Each round that applies nothing saw the row appear or vanish in between.
        for _ in 0..4 {
            let r = self.exec(op, update, update_values.clone(), None).await?;
            if self.applied(op, update, r)? {
                return Ok(());
            }
            let r = self.exec(op, insert, insert_values.clone(), None).await?;
            if self.applied(op, insert, r)? {
                return Ok(());
            }
        }
        let consistency = self.consistency_of(update, None);
        Err(self.error(
            op,
            update.name,
            consistency,
            None,
            "the row kept appearing and vanishing; gave up after 4 rounds",
        ))
    }

    pub(super) async fn create_conversation(
        &self,
        conv: ConversationRecord,
        members: Vec<MemberRecord>,
    ) -> StoreResult<Created> {
        const OP: &str = "create_conversation";
        let stmt = &self.st.insert_conversation_if_absent;
        let r = self.exec(OP, stmt, conv_values(&conv), None).await?;
        if !self.applied(OP, stmt, r)? {
            return match self.get_conversation(conv.id, Some(self.serial())).await? {
                Some(existing) => Ok(Created::Existing(existing)),
                None => Err(StoreError::Corrupt {
                    table: "conversations",
                    detail: format!("conversation {} exists for IF NOT EXISTS but does not read back", conv.id),
                }),
            };
        }
        self.set_activity(OP, conv.id, conv.created_at_ms).await?;
        // The member rows: one partition, so conditional batches of up to
        // MEMBER_BATCH; a batch that finds a row there already (left by a
        // create that failed half-way) falls back to one upsert per member.
        // One row per user (the last record given wins, as with successive writes).
        let mut seen = HashSet::new();
        let mut members: Vec<MemberRecord> =
            members.into_iter().rev().filter(|m| seen.insert(m.user_id.clone())).collect();
        members.reverse();
        for chunk in members.chunks(MEMBER_BATCH) {
            let stmts = vec![&self.st.insert_member_if_absent; chunk.len()];
            let values = chunk.iter().map(member_values).collect();
            let r = self.batch(OP, "insert_members_batch", stmts, values).await?;
            if !self.applied(OP, &self.st.insert_member_if_absent, r)? {
                for m in chunk {
                    self.put_member_row(OP, m).await?;
                }
            }
            let stmts = vec![&self.st.insert_user_conversation; chunk.len()];
            let values = chunk.iter().map(|m| user_conv_values(&m.user_id, m.conversation_id)).collect();
            self.batch(OP, "insert_user_conversations_batch", stmts, values).await?;
            let users: Vec<&str> = chunk.iter().map(|m| m.user_id.as_str()).collect();
            self.list_members(OP, conv.id, &users).await?;
        }
        if is_waiting(&conv) {
            self.exec(OP, &self.st.insert_queue, queue_values(&conv), None).await?;
        }
        Ok(Created::New)
    }

    pub(super) async fn update_conversation(&self, conv: ConversationRecord) -> StoreResult<()> {
        const OP: &str = "update_conversation";
        let old = self.get_conversation(conv.id, None).await?;
        let c = conv_values(&conv);
        let insert = vec![
            CqlValue::BigInt(c.0),
            CqlValue::Int(c.1),
            CqlValue::Text(c.2),
            CqlValue::Text(c.3),
            CqlValue::Text(c.4),
            CqlValue::BigInt(c.5),
            CqlValue::BigInt(c.6),
            CqlValue::Int(c.7),
            CqlValue::Boolean(c.8),
            CqlValue::Int(c.9),
            CqlValue::Boolean(c.10),
        ];
        // The update binds the same columns, the key (the id) last.
        let mut update = insert.clone();
        update.rotate_left(1);
        let (upd, ins) = (&self.st.update_conversation_if_exists, &self.st.insert_conversation_if_absent);
        self.upsert_by_transaction(OP, (upd, update), (ins, insert)).await?;
        // The queue follows. A batch gives its statements one timestamp, and a
        // delete wins a tie: delete the old entry only if it is not the one written now.
        let mut stmts = Vec::new();
        let mut values = Vec::new();
        if let Some(old) =
            old.filter(|old| is_waiting(old) && !(is_waiting(&conv) && old.created_at_ms == conv.created_at_ms))
        {
            stmts.push(&self.st.delete_queue);
            values.push(queue_values(&old));
        }
        if is_waiting(&conv) {
            stmts.push(&self.st.insert_queue);
            values.push(queue_values(&conv));
        }
        if !stmts.is_empty() {
            self.batch(OP, "update_support_queue_batch", stmts, values).await?;
        }
        Ok(())
    }

    /// Writes a member row (through Paxos, like every write of that table).
    pub(super) async fn put_member_row(&self, op: &'static str, m: &MemberRecord) -> StoreResult<()> {
        let update = vec![
            CqlValue::Int(m.role),
            CqlValue::BigInt(id_to_db(m.joined_at_ms)),
            CqlValue::BigInt(seq_to_db(m.delivered_seq)),
            CqlValue::BigInt(seq_to_db(m.read_seq)),
            CqlValue::BigInt(id_to_db(m.conversation_id)),
            CqlValue::Text(m.user_id.clone()),
        ];
        let (upd, ins) = (&self.st.update_member_if_exists, &self.st.insert_member_if_absent);
        self.upsert_by_transaction(op, (upd, update), (ins, member_values(m))).await
    }

    pub(super) async fn put_member(&self, m: MemberRecord) -> StoreResult<()> {
        self.list_member("put_member", m.conversation_id, &m.user_id).await?;
        self.put_member_row("put_member", &m).await?;
        let values = user_conv_values(&m.user_id, m.conversation_id);
        self.exec("put_member", &self.st.insert_user_conversation, values, None).await.map(|_| ())
    }

    pub(super) async fn remove_member(&self, conv: u64, user: String) -> StoreResult<()> {
        const OP: &str = "remove_member";
        let stmt = &self.st.delete_member_if_exists;
        // Not applied: there was no such member, which is not an error.
        self.exec(OP, stmt, (id_to_db(conv), &user), None).await?;
        self.unlist_member(OP, conv, &user).await?;
        self.exec(OP, &self.st.delete_user_conversation, user_conv_values(&user, conv), None).await.map(|_| ())
    }

    pub(super) async fn members(&self, conv: u64) -> StoreResult<Vec<MemberRecord>> {
        let rows: Vec<MemberRow> = self.rows("members", &self.st.select_members, (id_to_db(conv),), None).await?;
        Ok(rows.into_iter().map(|r| member_from_row(conv, r)).collect())
    }

    pub(super) async fn member(&self, conv: u64, user: String) -> StoreResult<Option<MemberRecord>> {
        let row: Option<MemberRow> = self.one("member", &self.st.select_member, (id_to_db(conv), user), None).await?;
        Ok(row.map(|r| member_from_row(conv, r)))
    }

    pub(super) async fn user_conversations(&self, user: String) -> StoreResult<Vec<u64>> {
        if user.is_empty() {
            return Ok(Vec::new()); // An empty partition key is refused by the server.
        }
        let rows: Vec<(i64,)> =
            self.rows("user_conversations", &self.st.select_user_conversations, (user,), None).await?;
        Ok(rows.into_iter().map(|(id,)| id_from_db(id)).collect())
    }

    /// Moves watermarks forward with lightweight transactions (see
    /// `deploy/CLUSTER.md`), in at most `rounds` rounds.
    pub(super) async fn advance_watermarks(
        &self,
        op: &'static str,
        (conv, user): (u64, &str),
        delivered: u64,
        read: u64,
        rounds: usize,
    ) -> StoreResult<()> {
        let key = (id_to_db(conv), user);
        let mut consistency = None;
        let mut last_error = None;
        // Three rounds suffice (each failed one settles at least one watermark);
        // more are for rows that change under us.
        for _ in 0..rounds {
            let Some((d0, r0)) = self.one::<(i64, i64)>(op, &self.st.select_watermarks, key, consistency).await? else {
                return Ok(()); // Not a member.
            };
            let (d0, r0) = (seq_from_db(d0), seq_from_db(r0));
            let (d, r) = (delivered > d0, read > r0);
            let (dv, rv) = (seq_to_db(delivered), seq_to_db(read));
            let (stmt, result) = match (d, r) {
                (false, false) => return Ok(()),
                (true, true) => {
                    let stmt = &self.st.advance_both;
                    (stmt, self.exec(op, stmt, (dv, rv, key.0, key.1, dv, rv), None).await)
                }
                (true, false) => {
                    let stmt = &self.st.advance_delivered;
                    (stmt, self.exec(op, stmt, (dv, key.0, key.1, dv), None).await)
                }
                (false, true) => {
                    let stmt = &self.st.advance_read;
                    (stmt, self.exec(op, stmt, (rv, key.0, key.1, rv), None).await)
                }
            };
            match result.and_then(|r| self.applied(op, stmt, r)) {
                Ok(true) => return Ok(()),
                // Someone moved it meanwhile (or the row went).
                Ok(false) => {}
                // Unknown outcome (e.g. a timeout under contention): moving a
                // watermark up is idempotent, so look again and retry.
                Err(e) => {
                    tracing::debug!(error = %e, "store: watermark update failed; reading back");
                    last_error = Some(e);
                }
            }
            // Read what is there now, settling any transaction in flight.
            consistency = Some(self.serial());
        }
        Err(last_error.unwrap_or_else(|| {
            let consistency = self.consistency_of(&self.st.advance_both, None);
            self.error(
                op,
                "advance_watermarks",
                consistency,
                None,
                format!("the watermarks kept changing; gave up after {rounds} rounds"),
            )
        }))
    }

    /// Users by id: from `user_directory`, else (a user last seen by a
    /// schema-5 binary) from the older `users` table.
    pub(super) async fn get_users(&self, ids: Vec<String>) -> StoreResult<Vec<UserRecord>> {
        const OP: &str = "get_users";
        let ids: Vec<String> = ids.into_iter().filter(|id| !id.is_empty()).collect();
        let mut found: Vec<Option<UserRecord>> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(FAN_OUT) {
            let reads = chunk.iter().map(|id| async move {
                if let Some((json,)) = self.one::<(String,)>(OP, &self.st.select_directory_user, (id,), None).await? {
                    return decode_user(&json).map(Some);
                }
                let old = self.one::<(String, String, i32)>(OP, &self.st.select_user, (id,), None).await?;
                Ok(old.map(|(id, display_name, role)| UserRecord { id, display_name, role, ..UserRecord::default() }))
            });
            found.extend(futures_util::future::try_join_all(reads).await?);
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// A page of `user_directory` in token order after `after`'s token.
    pub(super) async fn users_page(&self, after: Option<String>, limit: usize) -> StoreResult<Vec<UserRecord>> {
        const OP: &str = "users_page";
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows: Vec<(String,)> = match after {
            None => self.rows(OP, &self.st.select_directory_first, (limit,), None).await?,
            Some(id) => self.rows(OP, &self.st.select_directory_after, (id, limit), None).await?,
        };
        rows.iter().map(|(json,)| decode_user(json)).collect()
    }
}

/// A `user_directory` record.
fn decode_user(json: &str) -> StoreResult<UserRecord> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt { table: "user_directory", detail: format!("a record does not decode: {e}") })
}
