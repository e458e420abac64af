//! The embedded [`MessageStore`] impl: reads run inline on a fjall snapshot
//! (whole group commits only, once durable); writes are queued for the
//! writer thread. It does not apply writes itself.

use bytes::Bytes;
use fjall::Readable;

use super::EmbeddedStore;
use super::db::{Ks, backend, decode};
use super::key;
use super::ops::{Done, Op};
use crate::store::{
    ConversationRecord, Created, Direction, ListKey, MemberRecord, MessageStore, MessageVersion, NewMessage, Range,
    StoreError, StoreResult, UserRecord,
};

impl MessageStore for EmbeddedStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn append_run_limit(&self, next_seq: u64) -> usize {
        match self.append_run {
            None => usize::MAX,
            Some(run) => usize::try_from(run - next_seq % run).unwrap_or(usize::MAX),
        }
    }

    async fn append(&self, msgs: Vec<NewMessage>) -> StoreResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        if let Some(run) = self.append_run
            && let Some(m) =
                msgs.iter().find(|m| (m.conversation_id, m.seq / run) != (msgs[0].conversation_id, msgs[0].seq / run))
        {
            return Err(StoreError::Backend {
                op: "append",
                source: format!(
                    "seq {} of conversation {} is in another run of {run} than seq {} of conversation {} \
                     (EmbeddedConfig::append_run)",
                    m.seq, m.conversation_id, msgs[0].seq, msgs[0].conversation_id
                )
                .into(),
            });
        }
        self.submit_unit(Op::Append(msgs)).await
    }

    async fn find_client_msg(
        &self,
        conversation_id: u64,
        sender_id: &str,
        client_msg_id: &str,
    ) -> StoreResult<Option<u64>> {
        const OP: &str = "find_client_msg";
        if client_msg_id.is_empty() {
            return Ok(None);
        }
        let key = key::idempotency(OP, conversation_id, sender_id, client_msg_id)?;
        match self.get(OP, Ks::Idempotency, &key)? {
            None => Ok(None),
            Some(seq) => key::u64_at(Ks::Idempotency, &seq, 8, 0).map(Some),
        }
    }

    async fn last_seq(&self, conversation_id: u64) -> StoreResult<u64> {
        const OP: &str = "last_seq";
        let snapshot = self.snapshot();
        let range = key::pair(conversation_id, 0)..=key::pair(conversation_id, u64::MAX);
        let head = match snapshot.range(self.db.ks(Ks::Messages), range).next_back() {
            None => 0,
            Some(guard) => key::u64_at(Ks::Messages, &guard.key().map_err(backend(OP))?, 16, 8)?,
        };
        // Purged messages keep their seqs taken.
        Ok(head.max(self.mark(OP, conversation_id)?))
    }

    async fn read_range(&self, conversation_id: u64, range: Range) -> StoreResult<Vec<(u64, Bytes)>> {
        const OP: &str = "read_range";
        let Some(lo) = range.after.checked_add(1) else {
            return Ok(Vec::new());
        };
        if range.limit == 0 || lo >= range.before {
            return Ok(Vec::new());
        }
        let entry = |guard: fjall::Guard| -> StoreResult<(u64, Bytes)> {
            let (key, value) = guard.into_inner().map_err(backend(OP))?;
            Ok((key::u64_at(Ks::Messages, &key, 16, 8)?, Bytes::from(value)))
        };
        let snapshot = self.snapshot();
        let messages = self.db.ks(Ks::Messages);
        let span = |from: u64, to: u64| {
            snapshot.range(messages, key::pair(conversation_id, from)..key::pair(conversation_id, to))
        };
        match range.direction {
            Direction::Forward => span(lo, range.before).take(range.limit).map(entry).collect(),
            Direction::Backward => {
                // Stepping back through a memtable costs a search per entry;
                // seqs are dense, so find the newest one and read the page
                // forward, stepping back only over what gaps leave missing.
                let Some(newest) = span(lo, range.before).next_back() else {
                    return Ok(Vec::new());
                };
                let newest = key::u64_at(Ks::Messages, &newest.key().map_err(backend(OP))?, 16, 8)?;
                let start = newest.saturating_sub(range.limit as u64 - 1).max(lo);
                let mut out = span(start, newest.saturating_add(1))
                    .take(range.limit)
                    .map(entry)
                    .collect::<StoreResult<Vec<_>>>()?;
                if out.len() < range.limit && start > lo {
                    let mut older = span(lo, start)
                        .rev()
                        .take(range.limit - out.len())
                        .map(entry)
                        .collect::<StoreResult<Vec<_>>>()?;
                    older.reverse();
                    older.append(&mut out);
                    out = older;
                }
                Ok(out)
            }
        }
    }

    async fn create_conversation(&self, conv: &ConversationRecord, members: &[MemberRecord]) -> StoreResult<Created> {
        match self.submit(Op::CreateConversation(conv.clone(), members.to_vec())).await? {
            Done::Created(created) => Ok(created),
            _ => Ok(Created::New),
        }
    }

    async fn get_conversation(&self, id: u64) -> StoreResult<Option<ConversationRecord>> {
        const OP: &str = "get_conversation";
        let value = self.get(OP, Ks::Conversations, &id.to_be_bytes())?;
        value.map(|v| decode(Ks::Conversations, &v)).transpose()
    }

    async fn update_conversation(&self, conv: &ConversationRecord) -> StoreResult<()> {
        self.submit_unit(Op::UpdateConversation(conv.clone())).await
    }

    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()> {
        self.submit_unit(Op::PutMember(member.clone())).await
    }

    async fn remove_member(&self, conversation_id: u64, user_id: &str) -> StoreResult<()> {
        self.submit_unit(Op::RemoveMember { conversation_id, user_id: user_id.to_owned() }).await
    }

    async fn members(&self, conversation_id: u64) -> StoreResult<Vec<MemberRecord>> {
        const OP: &str = "members";
        let entries = self.scan_prefix(OP, Ks::Members, &conversation_id.to_be_bytes())?;
        entries.iter().map(|(_, value)| decode(Ks::Members, value)).collect()
    }

    async fn member(&self, conversation_id: u64, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        const OP: &str = "member";
        let value = self.get(OP, Ks::Members, &key::member(OP, conversation_id, user_id)?)?;
        value.map(|v| decode(Ks::Members, &v)).transpose()
    }

    async fn user_conversations(&self, user_id: &str) -> StoreResult<Vec<u64>> {
        const OP: &str = "user_conversations";
        let prefix = key::user_convs_prefix(OP, user_id)?;
        let entries = self.scan_prefix(OP, Ks::UserConvs, &prefix)?;
        entries.iter().map(|(key, _)| key::u64_at(Ks::UserConvs, key, prefix.len() + 8, prefix.len())).collect()
    }

    async fn conversation_ids(&self) -> StoreResult<Vec<u64>> {
        const OP: &str = "conversation_ids";
        let entries = self.scan_prefix(OP, Ks::Conversations, &[])?;
        entries.iter().map(|(key, _)| key::u64_at(Ks::Conversations, key, 8, 0)).collect()
    }

    async fn advance_watermarks(
        &self,
        conversation_id: u64,
        user_id: &str,
        delivered: u64,
        read: u64,
    ) -> StoreResult<()> {
        if delivered == 0 && read == 0 {
            return Ok(());
        }
        self.submit_unit(Op::AdvanceWatermarks { conversation_id, user_id: user_id.to_owned(), delivered, read }).await
    }

    async fn touch_conversation(&self, conversation_id: u64, at_ms: u64) -> StoreResult<()> {
        self.submit_unit(Op::TouchConversation { conversation_id, at_ms }).await
    }

    async fn conversation_activity(&self, conversation_id: u64) -> StoreResult<Option<u64>> {
        const OP: &str = "conversation_activity";
        match self.get(OP, Ks::Activity, &conversation_id.to_be_bytes())? {
            Some(at) => key::u64_at(Ks::Activity, &at, 8, 0).map(Some),
            None => Ok(None),
        }
    }

    async fn user_conversations_page(
        &self,
        user_id: &str,
        after: Option<ListKey>,
        limit: usize,
    ) -> StoreResult<Vec<ListKey>> {
        const OP: &str = "user_conversations_page";
        let prefix = key::user_convs_prefix(OP, user_id)?;
        // Below `after`, or from this user's last possible key down.
        let end = match after {
            Some((at, conv)) => std::ops::Bound::Excluded(key::user_activity(OP, user_id, at, conv)?),
            None => std::ops::Bound::Included(key::user_activity(OP, user_id, u64::MAX, u64::MAX)?),
        };
        let snapshot = self.snapshot();
        let keys = snapshot
            .range(self.db.ks(Ks::UserActivity), (std::ops::Bound::Included(prefix.clone()), end))
            .rev()
            .take(limit);
        keys.map(|guard| {
            let key = guard.key().map_err(backend(OP))?;
            let n = prefix.len();
            Ok((key::u64_at(Ks::UserActivity, &key, n + 16, n)?, key::u64_at(Ks::UserActivity, &key, n + 16, n + 8)?))
        })
        .collect()
    }

    async fn support_queue(&self, after: Option<ListKey>, limit: usize) -> StoreResult<Vec<ListKey>> {
        const OP: &str = "support_queue";
        let start = match after {
            None => std::ops::Bound::Unbounded,
            Some((at, conv)) => std::ops::Bound::Excluded(key::pair(at, conv).to_vec()),
        };
        let snapshot = self.snapshot();
        let keys = snapshot.range(self.db.ks(Ks::SupportQueue), (start, std::ops::Bound::Unbounded)).take(limit);
        keys.map(|guard| {
            let key = guard.key().map_err(backend(OP))?;
            Ok((key::u64_at(Ks::SupportQueue, &key, 16, 0)?, key::u64_at(Ks::SupportQueue, &key, 16, 8)?))
        })
        .collect()
    }

    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.submit_unit(Op::UpsertUser(user.clone())).await
    }

    async fn message_versions(&self, conversation_id: u64, seq: u64) -> StoreResult<Vec<MessageVersion>> {
        const OP: &str = "message_versions";
        let rows = self.scan_prefix(OP, Ks::Versions, &key::pair(conversation_id, seq))?;
        rows.iter().map(|(_, value)| decode(Ks::Versions, value)).collect()
    }

    async fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>> {
        const OP: &str = "get_users";
        let snapshot = self.snapshot();
        let users = self.db.ks(Ks::Users);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(value) = snapshot.get(users, key::user(OP, id)?).map_err(backend(OP))? {
                out.push(decode(Ks::Users, &value)?);
            }
        }
        Ok(out)
    }

    async fn users_page(&self, after: Option<String>, limit: usize) -> StoreResult<Vec<UserRecord>> {
        const OP: &str = "users_page";
        let start = match after {
            None => std::ops::Bound::Unbounded,
            Some(id) => std::ops::Bound::Excluded(key::user(OP, &id)?.to_vec()),
        };
        let snapshot = self.snapshot();
        let rows = snapshot.range(self.db.ks(Ks::Users), (start, std::ops::Bound::Unbounded)).take(limit);
        rows.map(|guard| {
            let (_, value) = guard.into_inner().map_err(backend(OP))?;
            decode(Ks::Users, &value)
        })
        .collect()
    }
}
