//! What the writer thread is asked and answers: the queued writes
//! ([`Request`], [`Op`]), their results ([`Done`]), and the in-memory write
//! set of one group commit, and the counters the store shares with the
//! writer ([`Shared`]). A leaf of the embedded store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};

use fjall::Slice;
use tokio::sync::oneshot;

use super::db::Ks;
use crate::store::attachments::AttachmentRecord;
use crate::store::audit::{AuditRecord, CheckpointRecord};
use crate::store::key_packages::{Claimed, Published};
use crate::store::retention::{HoldRecord, HoldScope};
use crate::store::service_accounts::ServiceAccountRecord;
use crate::store::templates::TemplateRecord;
use crate::store::{ConversationRecord, Created, MemberRecord, NewMessage, StoreResult, UserRecord};

/// A write, as queued for the writer.
pub(super) enum Op {
    Append(Vec<NewMessage>),
    CreateConversation(ConversationRecord, Vec<MemberRecord>),
    UpdateConversation(ConversationRecord),
    PutMember(MemberRecord),
    RemoveMember {
        conversation_id: u64,
        user_id: String,
    },
    AdvanceWatermarks {
        conversation_id: u64,
        user_id: String,
        delivered: u64,
        read: u64,
    },
    TouchConversation {
        conversation_id: u64,
        at_ms: u64,
    },
    UpsertUser(UserRecord),
    /// A template written if the stored one's `updated_at_ms` is the given one (None: absent).
    PutTemplate(TemplateRecord, Option<u64>),
    /// An attachment record (boxed: it is larger than the other ops).
    PutAttachment(Box<AttachmentRecord>),
    DeleteTemplate {
        scope: i32,
        owner: String,
        id: u64,
    },
    /// Audit entries of one chain and a checkpoint (boxed: large).
    AppendAudit(Box<(Vec<AuditRecord>, Option<CheckpointRecord>)>),
    /// Messages at or below `through` removed, the purge mark moved up.
    Purge {
        conversation_id: u64,
        through: u64,
    },
    DeleteAttachment {
        conversation_id: u64,
        id: String,
    },
    /// The kept versions of one message removed.
    ForgetVersions {
        conversation_id: u64,
        seq: u64,
    },
    /// A message's content removed, its metadata kept.
    StripMessage {
        conversation_id: u64,
        seq: u64,
    },
    /// A legal hold (boxed: it is larger than the other ops).
    PutHold(Box<HoldRecord>),
    RemoveHold {
        scope: HoldScope,
        target: String,
    },
    /// A data key stored unless one is (answers the stored one).
    InsertDataKey {
        conversation_id: u64,
        wrapped: Vec<u8>,
    },
    /// A data key replaced if it is still `old`.
    ReplaceDataKey {
        conversation_id: u64,
        old: Vec<u8>,
        new: Vec<u8>,
    },
    DeleteDataKey {
        conversation_id: u64,
    },
    /// A service account written if the stored one's `updated_at_ms` is the given one (None: absent).
    PutServiceAccount(Box<ServiceAccountRecord>, Option<u64>),
    /// KeyPackages of one device, within the caps.
    PublishKeyPackages {
        user: String,
        device: String,
        packages: Vec<Vec<u8>>,
    },
    /// One KeyPackage of each device of a user (but those skipped), taken.
    ClaimKeyPackages {
        user: String,
        skip: Vec<String>,
    },
    /// Every KeyPackage of a user, removed.
    ForgetKeyPackages {
        user: String,
    },
}

impl Op {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Op::Append(_) => "append",
            Op::CreateConversation(..) => "create_conversation",
            Op::UpdateConversation(_) => "update_conversation",
            Op::PutMember(_) => "put_member",
            Op::RemoveMember { .. } => "remove_member",
            Op::AdvanceWatermarks { .. } => "advance_watermarks",
            Op::TouchConversation { .. } => "touch_conversation",
            Op::UpsertUser(_) => "upsert_user",
            Op::PutTemplate(..) => "put_template",
            Op::DeleteTemplate { .. } => "delete_template",
            Op::PutAttachment(_) => "put_attachment",
            Op::AppendAudit(_) => "append_audit",
            Op::Purge { .. } => "purge_through",
            Op::DeleteAttachment { .. } => "delete_attachment",
            Op::ForgetVersions { .. } => "forget_versions",
            Op::StripMessage { .. } => "strip_message",
            Op::PutHold(_) => "put_hold",
            Op::RemoveHold { .. } => "remove_hold",
            Op::InsertDataKey { .. } => "insert_data_key",
            Op::ReplaceDataKey { .. } => "replace_data_key",
            Op::DeleteDataKey { .. } => "delete_data_key",
            Op::PutServiceAccount(..) => "put_service_account",
            Op::PublishKeyPackages { .. } => "publish_key_packages",
            Op::ClaimKeyPackages { .. } => "claim_key_packages",
            Op::ForgetKeyPackages { .. } => "forget_key_packages",
        }
    }
}

/// What a write produced.
pub(super) enum Done {
    Unit,
    /// What a KeyPackage publish did.
    Published(Published),
    /// The KeyPackages a claim took.
    Claimed(Vec<Claimed>),
    Created(Created),
    /// Whether a conditional write applied.
    Applied(bool),
    /// The value stored (a create-if-absent's answer).
    Value(Vec<u8>),
}

pub(super) type Reply = oneshot::Sender<StoreResult<Done>>;

/// A message on the writer's queue.
pub(super) enum Request {
    Write(Op, Reply),
    /// Wakes the writer so that it notices `closed`.
    Wake,
}

/// Writes staged in memory: `tag(ks) | key` -> the new value, `None` to remove.
pub(super) type WriteSet = HashMap<Vec<u8>, Option<Slice>>;

pub(super) fn staged_key(ks: Ks, key: &[u8]) -> Vec<u8> {
    let mut staged = Vec::with_capacity(1 + key.len());
    staged.push(ks as u8);
    staged.extend_from_slice(key);
    staged
}

/// State shared with the writer thread.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) closed: AtomicBool,
    pub(super) commits: AtomicU64,
    pub(super) requests: AtomicU64,
    /// Where commits are recorded, once the node says (see `Store::set_metrics`).
    pub(super) metrics: std::sync::OnceLock<crate::metrics::StoreMetrics>,
}
