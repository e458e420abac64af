//! One write request applied inside a group commit: it checks its
//! preconditions (a free seq, a client id not yet stored), reads through its
//! own staged writes, then the group's, then the database, and stages its
//! writes apart; they join the group only if it succeeds. It does not commit.

use std::collections::{HashMap, HashSet};

use chat_protocol::v1::SupportState;
use fjall::Slice;

use super::db::{Db, Ks, backend, decode, encode};
use super::key;
use super::ops::{Done, Op, WriteSet, staged_key};
use crate::store::{ConversationRecord, Created, MemberRecord, NewMessage, StoreError, StoreResult};

fn is_waiting(conv: &ConversationRecord) -> bool {
    conv.support_state == SupportState::Waiting as i32
}

/// One request being applied: it reads through its own staged writes, then
/// the group's, then the database, and stages its writes in `local` (which
/// joins the group only if the request succeeds).
pub(super) struct Txn<'a> {
    db: &'a Db,
    group: &'a WriteSet,
    local: WriteSet,
    op: &'static str,
    /// The writer's known heads (see `Writer::heads`).
    heads: &'a HashMap<u64, u64>,
    /// Heads this request moves, applied if it succeeds.
    new_heads: Vec<(u64, u64)>,
}

impl<'a> Txn<'a> {
    /// A request of operation `op` applied on top of the group's writes so far.
    pub(super) fn new(db: &'a Db, group: &'a WriteSet, op: &'static str, heads: &'a HashMap<u64, u64>) -> Self {
        Self { db, group, local: WriteSet::new(), op, heads, new_heads: Vec::new() }
    }

    /// What a succeeded request staged: its writes and the heads it moved.
    pub(super) fn into_writes(self) -> (WriteSet, Vec<(u64, u64)>) {
        (self.local, self.new_heads)
    }

    /// The database, for reads of committed state only.
    pub(super) fn db(&self) -> &Db {
        self.db
    }

    pub(super) fn get(&self, ks: Ks, key: &[u8]) -> StoreResult<Option<Slice>> {
        let staged = staged_key(ks, key);
        if let Some(value) = self.local.get(&staged).or_else(|| self.group.get(&staged)) {
            return Ok(value.clone());
        }
        // Only this thread writes, and every commit is whole by now.
        self.db.ks(ks).get(key).map_err(backend(self.op))
    }

    /// The highest committed seq of a conversation (0 if none).
    fn stored_head(&self, conversation_id: u64) -> StoreResult<u64> {
        let range = key::pair(conversation_id, 0)..=key::pair(conversation_id, u64::MAX);
        let head = match self.db.ks(Ks::Messages).range(range).next_back() {
            None => 0,
            Some(guard) => key::u64_at(Ks::Messages, &guard.key().map_err(backend(self.op))?, 16, 8)?,
        };
        // A purge never moves the head back.
        let mark = super::db::mark_of(self.get(Ks::Retention, &conversation_id.to_be_bytes())?);
        Ok(head.max(mark))
    }

    /// Whether the message an event changes is stored (or staged); a failed
    /// read counts as stored, as before purges existed.
    fn target_exists(&self, conv: u64, seq: u64) -> bool {
        self.get(Ks::Messages, &key::pair(conv, seq)).map_or(true, |v| v.is_some())
    }

    pub(super) fn put(&mut self, ks: Ks, key: &[u8], value: Slice) {
        self.local.insert(staged_key(ks, key), Some(value));
    }

    pub(super) fn remove(&mut self, ks: Ks, key: &[u8]) {
        self.local.insert(staged_key(ks, key), None);
    }

    pub(super) fn apply(&mut self, op: &Op) -> StoreResult<Done> {
        match op {
            Op::Append(msgs) => self.append(msgs),
            Op::CreateConversation(conv, members) => self.create_conversation(conv, members),
            Op::UpdateConversation(conv) => self.update_conversation(conv),
            Op::PutMember(member) => {
                let value = encode(self.op, member)?;
                self.put_member(member.conversation_id, &member.user_id, value)?;
                Ok(Done::Unit)
            }
            Op::RemoveMember { conversation_id, user_id } => self.remove_member(*conversation_id, user_id),
            Op::TouchConversation { conversation_id, at_ms } => self.touch(*conversation_id, *at_ms),
            Op::AdvanceWatermarks { conversation_id, user_id, delivered, read } => {
                self.advance_watermarks(*conversation_id, user_id, *delivered, *read)
            }
            Op::UpsertUser(user) => {
                let key = key::user(self.op, &user.id)?;
                let value = encode(self.op, user)?;
                self.put(Ks::Users, &key, value);
                Ok(Done::Unit)
            }
            Op::PutTemplate(rec, expected) => self.put_template(rec, *expected),
            Op::DeleteTemplate { scope, owner, id } => self.delete_template(*scope, owner, *id),
            Op::PutAttachment(rec) => self.put_attachment(rec),
            Op::AppendAudit(a) => self.append_audit(&a.0, a.1.as_ref()),
            Op::Purge { conversation_id, through } => self.purge(*conversation_id, *through),
            Op::DeleteAttachment { conversation_id, id } => self.delete_attachment(*conversation_id, id),
            Op::ForgetVersions { conversation_id, seq } => self.forget_versions(*conversation_id, *seq),
            Op::StripMessage { conversation_id, seq } => self.strip_message(*conversation_id, *seq),
            Op::PutHold(hold) => self.put_hold(hold),
            Op::RemoveHold { scope, target } => self.remove_hold(*scope, target),
            Op::InsertDataKey { conversation_id, wrapped } => self.insert_data_key(*conversation_id, wrapped),
            Op::ReplaceDataKey { conversation_id, old, new } => self.replace_data_key(*conversation_id, old, new),
            Op::DeleteDataKey { conversation_id } => self.delete_data_key(*conversation_id),
            Op::PutServiceAccount(rec, expected) => self.put_service_account(rec, *expected),
            Op::PublishKeyPackages { user, device, packages } => self.publish_key_packages(user, device, packages),
            Op::ClaimKeyPackages { user, skip } => self.claim_key_packages(user, skip),
            Op::ForgetKeyPackages { user } => self.forget_key_packages(user),
        }
    }

    /// Appends a call's messages: nothing of it if a seq is taken
    /// ([`StoreError::SeqTaken`], checked first) or a client id is already
    /// stored ([`StoreError::Duplicates`]).
    fn append(&mut self, msgs: &[NewMessage]) -> StoreResult<Done> {
        self.check_seqs(msgs)?;
        let records = self.new_client_records(msgs)?;
        for m in msgs {
            let known = self.heads.contains_key(&m.conversation_id)
                || self.new_heads.iter().any(|(c, _)| *c == m.conversation_id);
            if !known {
                // First append to this conversation since start: learn its real head once.
                let head = self.stored_head(m.conversation_id)?;
                self.new_heads.push((m.conversation_id, head));
            }
            self.new_heads.push((m.conversation_id, m.seq));
            self.put(Ks::Messages, &key::pair(m.conversation_id, m.seq), Slice::from(m.encoded.clone()));
            // A target that is gone (purged by retention) is not written back.
            let target = m.target.as_ref().filter(|t| self.target_exists(m.conversation_id, t.seq));
            if let Some(t) = target {
                // The target's latest state, and the version it replaces for the audit trail.
                self.put(Ks::Messages, &key::pair(m.conversation_id, t.seq), Slice::from(t.latest.clone()));
                let version = encode(self.op, &t.version)?;
                self.put(Ks::Versions, &key::triple(m.conversation_id, t.seq, m.seq), version);
            }
        }
        let mut senders: HashMap<(u64, &str), u64> = HashMap::new();
        for (m, key) in records {
            self.put(Ks::Idempotency, &key, Slice::from(&m.seq.to_be_bytes()[..]));
            let top = senders.entry((m.conversation_id, m.sender_id.as_str())).or_insert(0);
            *top = (*top).max(m.seq);
        }
        // Writing is reading: the sender's watermarks follow their message, in
        // the same commit. A damaged member record does not fail the append.
        for ((conv, sender), seq) in senders {
            match self.advance_watermarks(conv, sender, seq, seq) {
                Ok(_) => {}
                Err(e @ StoreError::Corrupt { .. }) => tracing::warn!(conv, error = %e, "sender watermark not moved"),
                Err(e) => return Err(e),
            }
        }
        Ok(Done::Unit)
    }

    /// Fails with the first seq of the call that is stored, staged by an
    /// earlier request of the group, or given twice in the call.
    fn check_seqs(&self, msgs: &[NewMessage]) -> StoreResult<()> {
        let mut seen = HashSet::with_capacity(msgs.len());
        for m in msgs {
            let key = key::pair(m.conversation_id, m.seq);
            let above_head = self.heads.get(&m.conversation_id).is_some_and(|&head| m.seq > head);
            if !seen.insert(key) || (!above_head && self.get(Ks::Messages, &key)?.is_some()) {
                return Err(StoreError::SeqTaken { conversation_id: m.conversation_id, seq: m.seq });
            }
        }
        Ok(())
    }

    /// The idempotency key of each message with a client id, after one point
    /// lookup each (through the group's staged writes too); fails with
    /// [`StoreError::Duplicates`] naming every message whose key is stored. A
    /// record is written with its message in one commit, so the seq it names
    /// holds that message.
    fn new_client_records<'m>(&self, msgs: &'m [NewMessage]) -> StoreResult<Vec<(&'m NewMessage, Vec<u8>)>> {
        let mut records = Vec::with_capacity(msgs.len());
        let mut duplicates = Vec::new();
        for m in msgs.iter().filter(|m| !m.client_msg_id.is_empty()) {
            let key = key::idempotency(self.op, m.conversation_id, &m.sender_id, &m.client_msg_id)?;
            if let Some(stored) = self.get(Ks::Idempotency, &key)? {
                duplicates.push((m.seq, key::u64_at(Ks::Idempotency, &stored, 8, 0)?));
            }
            records.push((m, key));
        }
        if !duplicates.is_empty() {
            return Err(StoreError::Duplicates(duplicates));
        }
        Ok(records)
    }

    fn create_conversation(&mut self, conv: &ConversationRecord, members: &[MemberRecord]) -> StoreResult<Done> {
        let id = conv.id.to_be_bytes();
        if let Some(existing) = self.get(Ks::Conversations, &id)? {
            return decode(Ks::Conversations, &existing).map(|rec| Done::Created(Created::Existing(rec)));
        }
        let value = encode(self.op, conv)?;
        self.put(Ks::Conversations, &id, value);
        self.put(Ks::Activity, &id, Slice::from(&conv.created_at_ms.to_be_bytes()[..]));
        if is_waiting(conv) {
            self.put(Ks::SupportQueue, &key::pair(conv.created_at_ms, conv.id), Slice::from(&[][..]));
        }
        for member in members {
            let member = MemberRecord { conversation_id: conv.id, ..member.clone() };
            let value = encode(self.op, &member)?;
            self.put_member(conv.id, &member.user_id, value)?;
        }
        Ok(Done::Created(Created::New))
    }

    fn update_conversation(&mut self, conv: &ConversationRecord) -> StoreResult<Done> {
        let id = conv.id.to_be_bytes();
        let old = match self.get(Ks::Conversations, &id)? {
            Some(old) => Some(decode::<ConversationRecord>(Ks::Conversations, &old)?),
            None => None,
        };
        let value = encode(self.op, conv)?;
        if let Some(old) = old {
            self.remove(Ks::SupportQueue, &key::pair(old.created_at_ms, old.id));
        }
        let queued = key::pair(conv.created_at_ms, conv.id);
        if is_waiting(conv) {
            self.put(Ks::SupportQueue, &queued, Slice::from(&[][..]));
        } else {
            self.remove(Ks::SupportQueue, &queued);
        }
        self.put(Ks::Conversations, &id, value);
        Ok(Done::Unit)
    }

    /// A conversation's activity (None: unknown).
    fn activity(&self, conversation_id: u64) -> StoreResult<Option<u64>> {
        match self.get(Ks::Activity, &conversation_id.to_be_bytes())? {
            Some(at) => key::u64_at(Ks::Activity, &at, 8, 0).map(Some),
            None => Ok(None),
        }
    }

    /// Adds or replaces a membership; a new one enters the user's list at the
    /// conversation's activity.
    fn put_member(&mut self, conversation_id: u64, user_id: &str, value: Slice) -> StoreResult<()> {
        let member = key::member(self.op, conversation_id, user_id)?;
        let user_conv = key::user_conv(self.op, user_id, conversation_id)?;
        if self.get(Ks::UserConvs, &user_conv)?.is_none() {
            let at = self.activity(conversation_id)?.unwrap_or(0);
            let listed = key::user_activity(self.op, user_id, at, conversation_id)?;
            self.put(Ks::UserActivity, &listed, Slice::from(&[][..]));
        }
        self.put(Ks::Members, &member, value);
        self.put(Ks::UserConvs, &user_conv, Slice::from(&[][..]));
        Ok(())
    }

    fn remove_member(&mut self, conversation_id: u64, user_id: &str) -> StoreResult<Done> {
        let member = key::member(self.op, conversation_id, user_id)?;
        let user_conv = key::user_conv(self.op, user_id, conversation_id)?;
        if self.get(Ks::UserConvs, &user_conv)?.is_some() {
            let at = self.activity(conversation_id)?.unwrap_or(0);
            self.remove(Ks::UserActivity, &key::user_activity(self.op, user_id, at, conversation_id)?);
        }
        self.remove(Ks::Members, &member);
        self.remove(Ks::UserConvs, &user_conv);
        Ok(Done::Unit)
    }

    /// Moves a conversation's activity up to `at_ms` and its members' lists
    /// with it. Its members are read from the database: the owner never puts
    /// a membership write of this conversation in the same group.
    fn touch(&mut self, conversation_id: u64, at_ms: u64) -> StoreResult<Done> {
        let Some(was) = self.activity(conversation_id)? else { return Ok(Done::Unit) };
        if at_ms <= was {
            return Ok(Done::Unit);
        }
        let prefix = conversation_id.to_be_bytes();
        let mut users = Vec::new();
        for entry in self.db.ks(Ks::Members).prefix(prefix) {
            let key = entry.key().map_err(backend(self.op))?;
            let user = std::str::from_utf8(&key[8..]).map_err(|_| StoreError::Corrupt {
                table: Ks::Members.name(),
                detail: "user id is not UTF-8".into(),
            })?;
            users.push(user.to_owned());
        }
        for user in users {
            self.remove(Ks::UserActivity, &key::user_activity(self.op, &user, was, conversation_id)?);
            self.put(
                Ks::UserActivity,
                &key::user_activity(self.op, &user, at_ms, conversation_id)?,
                Slice::from(&[][..]),
            );
        }
        self.put(Ks::Activity, &prefix, Slice::from(&at_ms.to_be_bytes()[..]));
        Ok(Done::Unit)
    }

    fn advance_watermarks(
        &mut self,
        conversation_id: u64,
        user_id: &str,
        delivered: u64,
        read: u64,
    ) -> StoreResult<Done> {
        let key = key::member(self.op, conversation_id, user_id)?;
        let Some(current) = self.get(Ks::Members, &key)? else {
            return Ok(Done::Unit);
        };
        let mut member: MemberRecord = decode(Ks::Members, &current)?;
        let (d, r) = (member.delivered_seq.max(delivered), member.read_seq.max(read));
        if (d, r) == (member.delivered_seq, member.read_seq) {
            return Ok(Done::Unit);
        }
        member.delivered_seq = d;
        member.read_seq = r;
        let value = encode(self.op, &member)?;
        self.put(Ks::Members, &key, value);
        Ok(Done::Unit)
    }
}
