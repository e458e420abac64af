//! The GDPR export of one user's data into a directory (effects, with its
//! record shapes as pure functions): their directory entry
//! (`profile.json`), their memberships with their read and delivered
//! receipts (`conversations.json`), every entry they sent, with its earlier
//! versions (`messages.jsonl`), the files they uploaded
//! (`attachments/<conversation>/<attachment id>`), the audit entries about
//! them (`audit.jsonl`), and last `manifest.json` with each file's size and
//! SHA-256 (written by rename: an export without it is incomplete). Files
//! stream in bounded pieces; nothing is held whole in memory.

use crate::audit::query::{Filter, Format};
use crate::audit::{AuditError, AuditEvent, EventKind};
use crate::blob::{BlobError, BlobHash, BlobStore, MAX_READ_BYTES};
use crate::store::attachments::{AttachmentRecord, uploads_of};
use crate::store::retention::RetentionStore;
use crate::store::walk::Pages;
use crate::store::{ConversationRecord, MemberRecord, MessageStore, MessageVersion, Store, StoreError, UserRecord};
use chat_protocol::v1::{self, message_body::Content};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// Why an export stopped (what it wrote so far has no manifest).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No such user in the directory.
    #[error("no user {0:?} in the directory")]
    UnknownUser(String),
    /// The target directory exists and is not empty.
    #[error("{0} is not empty: an export goes into an empty or absent directory")]
    NotEmpty(PathBuf),
    /// Reading the store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Reading a file's bytes failed.
    #[error("attachment bytes: {0}")]
    Blob(#[from] BlobError),
    /// Reading the audit trail failed.
    #[error("audit trail: {0}")]
    Audit(#[from] AuditError),
    /// Writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One file of an export, in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportFile {
    /// Relative to the export directory.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// What an export holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportManifest {
    /// Whose data it is.
    pub user_id: String,
    /// When it was made, ms since the Unix epoch.
    pub exported_at_ms: u64,
    /// Conversations they are a member of.
    pub conversations: u64,
    /// Entries they sent (messages, edits, deletes, reactions).
    pub messages: u64,
    /// Files they uploaded whose bytes are in the export.
    pub attachments: u64,
    /// Audit entries about them.
    pub audit_entries: u64,
    /// Every file, with its size and SHA-256.
    pub files: Vec<ExportFile>,
}

/// The directory entry as exported.
pub fn profile_json(u: &UserRecord) -> Value {
    json!({
        "id": u.id,
        "display_name": u.display_name,
        "role": v1::Role::try_from(u.role).map(|r| r.as_str_name()).unwrap_or("ROLE_UNSPECIFIED"),
        "disabled": u.disabled,
        "provisioned": u.provisioned,
    })
}

/// A membership as exported: the conversation, their role and receipts.
pub fn membership_json(c: &ConversationRecord, m: Option<&MemberRecord>) -> Value {
    json!({
        "conversation_id": c.id,
        "kind": format!("{:?}", c.kind),
        "title": c.title,
        "case_id": c.case_id,
        "created_by": c.created_by,
        "created_at_ms": c.created_at_ms,
        "archived_at_ms": c.archived_at_ms,
        "role": m.and_then(|m| v1::MemberRole::try_from(m.role).ok()).map(|r| r.as_str_name()),
        "joined_at_ms": m.map(|m| m.joined_at_ms),
        "delivered_seq": m.map(|m| m.delivered_seq),
        "read_seq": m.map(|m| m.read_seq),
    })
}

/// Where an attachment's bytes go in the export.
pub fn attachment_path(conversation_id: u64, attachment_id: &str) -> String {
    format!("attachments/{conversation_id}/{attachment_id}")
}

fn body_json(body: Option<&v1::MessageBody>) -> Value {
    match body.and_then(|b| b.content.as_ref()) {
        Some(Content::Text(t)) => json!({ "text": t }),
        Some(Content::Ciphertext(c)) => json!({ "ciphertext_bytes": c.mls.len() + c.welcome.len() }),
        None => Value::Null,
    }
}

/// One entry they sent, as exported, with its earlier versions.
pub fn message_json(m: &v1::Message, versions: &[MessageVersion]) -> Value {
    let earlier: Vec<Value> = versions
        .iter()
        .map(|v| {
            let prior = v1::Message::decode(v.prior.as_slice()).ok();
            let change =
                v1::MessageKind::try_from(v.kind).map(|k| k.as_str_name()).unwrap_or("MESSAGE_KIND_UNSPECIFIED");
            json!({
                "replaced_at_ms": v.changed_at_ms,
                "replaced_by_seq": v.event_seq,
                "replaced_by": change,
                "body": body_json(prior.as_ref().and_then(|p| p.body.as_ref())),
            })
        })
        .collect();
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| json!({ "id": a.attachment_id, "name": a.name, "media_type": a.media_type, "size": a.size, "sha256": a.sha256, "file": attachment_path(m.conversation_id, &a.attachment_id) }))
        .collect();
    json!({
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "server_time_ms": m.server_time_ms,
        "kind": v1::MessageKind::try_from(m.kind).map(|k| k.as_str_name()).unwrap_or("MESSAGE_KIND_UNSPECIFIED"),
        "body": body_json(m.body.as_ref()),
        "reply_to": m.reply_to,
        "target_seq": m.target_seq,
        "reaction": m.reaction.as_ref().map(|r| json!({ "emoji": r.emoji, "on": r.on })),
        "edited_at_ms": m.edited_at_ms,
        "deleted": m.deleted,
        "attachments": attachments,
        "earlier_versions": earlier,
    })
}

/// The `gdpr.exported` audit entry of the export `m` into `to`, made by
/// `actor` through `via`: the user as target, where, how, and the counts.
pub fn exported_event(m: &ExportManifest, actor: &str, to: &str, via: &str) -> AuditEvent {
    let details = json!({
        "via": via,
        "to": to,
        "conversations": m.conversations,
        "messages": m.messages,
        "attachments": m.attachments,
        "audit_entries": m.audit_entries,
    });
    AuditEvent::new(EventKind::UserExported, actor).target(&m.user_id).details(details)
}

/// A file being written: its bytes go through SHA-256 as they are written.
struct Out {
    rel: String,
    path: PathBuf,
    w: BufWriter<File>,
    hash: ring::digest::Context,
    bytes: u64,
}

impl Out {
    fn create(dir: &Path, rel: &str) -> Result<Self, ExportError> {
        let path = dir.join(rel);
        let io = |source| ExportError::Io { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let w = BufWriter::new(File::create(&path).map_err(io)?);
        Ok(Out { rel: rel.into(), path, w, hash: ring::digest::Context::new(&ring::digest::SHA256), bytes: 0 })
    }

    fn put(&mut self, data: &[u8]) -> Result<(), ExportError> {
        self.hash.update(data);
        self.bytes += data.len() as u64;
        self.w.write_all(data).map_err(|source| ExportError::Io { path: self.path.clone(), source })
    }

    fn line(&mut self, v: &Value) -> Result<(), ExportError> {
        let mut s = v.to_string();
        s.push('\n');
        self.put(s.as_bytes())
    }

    fn finish(mut self) -> Result<ExportFile, ExportError> {
        self.w.flush().map_err(|source| ExportError::Io { path: self.path.clone(), source })?;
        Ok(ExportFile { path: self.rel, bytes: self.bytes, sha256: hex::encode(self.hash.finish().as_ref()) })
    }
}

/// A `Write` that feeds an [`Out`] (for the audit trail's exporter).
struct OutWriter<'a>(&'a mut Out);

impl Write for OutWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.put(buf).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// [`export_user`] run to its end on the calling thread, in a small runtime
/// of its own (the control socket's thread, the export command's thread).
pub fn export_user_blocking(
    store: &Store,
    blobs: &impl BlobStore,
    user_id: &str,
    to: &Path,
    now_ms: u64,
) -> Result<ExportManifest, ExportError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ExportError::Io { path: to.to_path_buf(), source })?;
    rt.block_on(export_user(store, blobs, user_id, to, now_ms))
}

/// Exports everything of `user_id` into `to` (empty or absent); its manifest.
pub async fn export_user(
    store: &Store,
    blobs: &impl BlobStore,
    user_id: &str,
    to: &Path,
    now_ms: u64,
) -> Result<ExportManifest, ExportError> {
    let io = |source| ExportError::Io { path: to.to_path_buf(), source };
    if to.exists() && std::fs::read_dir(to).map_err(io)?.next().is_some() {
        return Err(ExportError::NotEmpty(to.to_path_buf()));
    }
    std::fs::create_dir_all(to).map_err(io)?;
    let Some(user) = store.get_users(&[user_id.to_string()]).await?.pop() else {
        return Err(ExportError::UnknownUser(user_id.into()));
    };
    let mut files = Vec::new();
    let mut profile = Out::create(to, "profile.json")?;
    profile.put(serde_json::to_string_pretty(&profile_json(&user)).unwrap_or_default().as_bytes())?;
    files.push(profile.finish()?);

    let convs = store.user_conversations(user_id).await?;
    let mut memberships = Vec::new();
    let mut messages = Out::create(to, "messages.jsonl")?;
    let (mut sent, mut uploaded) = (0u64, Vec::<AttachmentRecord>::new());
    for &conv in &convs {
        let Some(c) = store.get_conversation(conv).await? else { continue };
        memberships.push(membership_json(&c, store.member(conv, user_id).await?.as_ref()));
        let mut pages = Pages::new(conv, store.purged_through(conv).await?);
        while let Some(page) = pages.next(store).await? {
            for (seq, bytes) in page {
                let Ok(m) = v1::Message::decode(bytes.as_ref()) else { continue };
                if m.sender_id != user_id {
                    continue;
                }
                let versions = if m.kind == v1::MessageKind::User as i32 {
                    store.message_versions(conv, seq).await?
                } else {
                    Vec::new()
                };
                messages.line(&message_json(&m, &versions))?;
                sent += 1;
            }
        }
        // Their uploads there, sent in a message or not.
        uploaded.extend(uploads_of(store, conv, user_id).await?);
    }
    files.push(messages.finish()?);
    let mut list = Out::create(to, "conversations.json")?;
    list.put(serde_json::to_string_pretty(&memberships).unwrap_or_default().as_bytes())?;
    files.push(list.finish()?);

    let mut attachments = 0;
    for rec in &uploaded {
        let hash = BlobHash::from_hex(&rec.sha256)?;
        let mut out = Out::create(to, &attachment_path(rec.conversation_id, &rec.id))?;
        let mut at = 0;
        while at < rec.size {
            let piece = blobs.read_range(&hash, at, MAX_READ_BYTES.min(rec.size - at)).await?;
            if piece.is_empty() {
                break;
            }
            at += piece.len() as u64;
            out.put(&piece)?;
        }
        files.push(out.finish()?);
        attachments += 1;
    }

    let mut audit = Out::create(to, "audit.jsonl")?;
    let filter = Filter { user: user_id.into(), ..Default::default() };
    let audit_entries = crate::audit::read::export(store, &filter, Format::Jsonl, &mut OutWriter(&mut audit)).await?;
    files.push(audit.finish()?);

    let manifest = ExportManifest {
        user_id: user_id.into(),
        exported_at_ms: now_ms,
        conversations: memberships.len() as u64,
        messages: sent,
        attachments,
        audit_entries,
        files,
    };
    let tmp = to.join(".manifest.json.tmp");
    let write = |source| ExportError::Io { path: tmp.clone(), source };
    std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest).unwrap_or_default()).map_err(write)?;
    std::fs::rename(&tmp, to.join(MANIFEST)).map_err(write)?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_keeps_its_text_its_files_and_its_earlier_versions() {
        let m = v1::Message {
            conversation_id: 7,
            seq: 3,
            sender_id: "ann".into(),
            body: Some(v1::MessageBody { content: Some(Content::Text("now".into())) }),
            kind: v1::MessageKind::User as i32,
            edited_at_ms: 9,
            attachments: vec![v1::Attachment {
                attachment_id: "a1".into(),
                name: "x.pdf".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let prior =
            v1::Message { body: Some(v1::MessageBody { content: Some(Content::Text("before".into())) }), ..m.clone() }
                .encode_to_vec();
        let v = MessageVersion {
            conversation_id: 7,
            target_seq: 3,
            event_seq: 4,
            changed_by: "ann".into(),
            changed_at_ms: 9,
            kind: v1::MessageKind::Edit as i32,
            prior,
        };
        let j = message_json(&m, &[v]);
        assert_eq!(j["body"]["text"], "now");
        assert_eq!(j["kind"], "MESSAGE_KIND_USER");
        assert_eq!(j["earlier_versions"][0]["body"]["text"], "before");
        assert_eq!(j["earlier_versions"][0]["replaced_by"], "MESSAGE_KIND_EDIT");
        assert_eq!(j["attachments"][0]["file"], "attachments/7/a1");
    }

    #[test]
    fn ciphertext_is_exported_as_its_size_only() {
        let ct = v1::E2eCiphertext { mls: vec![0u8; 12].into(), ..Default::default() };
        let b = v1::MessageBody { content: Some(Content::Ciphertext(ct)) };
        assert_eq!(body_json(Some(&b)), json!({ "ciphertext_bytes": 12 }));
    }
}
