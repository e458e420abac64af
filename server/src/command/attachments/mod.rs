//! Attachments: the rules of an upload ([`begin_upload`], then
//! [`Upload::feed`] per chunk and [`Upload::finish`]), of a download
//! ([`begin_download`], then [`Download::next_chunk`]) and of the
//! attachments a `SendMessage` names ([`resolve`]). Uploads stream into the
//! blob store as they arrive, checked by content and size on the way;
//! nothing is kept of an upload that fails or is dropped. Access is by
//! conversation and attachment id, for current members only. It does not
//! own the transfer streams (that is `crate::session`).

mod record;

pub use record::to_proto;

use super::request::{Requester, err, require_conversation, store_err};
use crate::audit::{AuditEvent, EventKind};
use crate::blob::content::{ContentCheck, ContentError, E2E_MIME};
use crate::blob::thumbnail::{self, ThumbnailLimits};
use crate::blob::{BlobError, BlobHash, BlobStore, BlobWriter, Blobs, BlobsWriter, MAX_READ_BYTES};
use crate::retention::rules::upload_sendable;
use crate::shard::UserRate;
use crate::store::attachments::{AttachmentRecord, AttachmentStore, ThumbnailRecord};
use crate::store::{MessageStore, Store};
use bytes::Bytes;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode};
use serde_json::json;
use std::time::Duration;

/// Most attachments one message carries.
pub const MAX_PER_MESSAGE: usize = 10;

/// Longest file name, bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Largest image the server reads back to make a thumbnail of (larger ones
/// are stored without one): bounds the memory one upload's preview takes.
pub const THUMBNAIL_SOURCE_MAX_BYTES: u64 = 24 * 1024 * 1024;

/// An upload in progress: its checks and the blob it streams into. Dropped
/// unfinished, it leaves nothing behind.
pub struct Upload {
    start: v1::UploadStart,
    uploader: String,
    check: ContentCheck,
    writer: BlobsWriter,
    received: u64,
}

/// Checks an upload's header (name, declared size, claimed type, the
/// caller's membership and upload rate) and opens its blob.
pub async fn begin_upload(req: &Requester, start: v1::UploadStart) -> Result<Upload, WireError> {
    let conv = require_conversation(start.conversation_id)?;
    check_name(&start.name)?;
    let cap = req.ctx.shared.cfg.blobs.max_file_bytes;
    if start.size == 0 {
        return Err(err(ErrorCode::InvalidArgument, "the file is empty (size 0)"));
    }
    if start.size > cap {
        return Err(too_large(cap, start.size));
    }
    let check = upload_check(req, conv, &start.media_type).await?;
    req.ctx.check_user_rate(UserRate::Uploads, &req.caller.user).await?;
    let writer = req.ctx.shared.blobs.begin(cap).await.map_err(blob_err)?;
    Ok(Upload { start, uploader: req.caller.user.to_string(), check, writer, received: 0 })
}

impl Upload {
    /// Takes the next bytes: checked by content and against the declared
    /// size, then written to the blob.
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<(), WireError> {
        self.received += chunk.len() as u64;
        if self.received > self.start.size {
            return Err(incomplete(format!("more bytes than the declared size of {}", self.start.size)));
        }
        self.check.feed(chunk).map_err(content_err)?;
        self.writer.write(chunk).await.map_err(blob_err)
    }

    /// The client finished the stream: the whole file is checked, stored
    /// (with a thumbnail for images) and recorded; its attachment.
    pub async fn finish(self, req: &Requester) -> Result<v1::Attachment, WireError> {
        if self.received < self.start.size {
            return Err(incomplete(format!(
                "the upload ended after {} of its {} bytes",
                self.received, self.start.size
            )));
        }
        let kind = self.check.finish().map_err(content_err)?;
        let meta = self.writer.commit().await.map_err(blob_err)?;
        let blobs = &req.ctx.shared.blobs;
        let thumbnail = match kind.is_previewable_image() && meta.size <= THUMBNAIL_SOURCE_MAX_BYTES {
            true => make_thumbnail(blobs, &meta.hash, meta.size, kind, &req.ctx.shared.cfg.blobs).await,
            false => None,
        };
        let rec = AttachmentRecord {
            conversation_id: self.start.conversation_id,
            id: format!("{:032x}", rand::random::<u128>()),
            uploader: self.uploader,
            name: self.start.name,
            size: meta.size,
            media_type: kind.mime().to_string(),
            sha256: meta.hash.to_hex(),
            thumbnail,
            uploaded_at_ms: chat_protocol::unix_ms(std::time::SystemTime::now()),
        };
        req.store().put_attachment(&rec).await.map_err(store_err)?;
        let details = json!({"attachment_id": rec.id, "name": rec.name, "size": rec.size, "sha256": rec.sha256});
        let ev = AuditEvent::new(EventKind::AttachmentUploaded, &*req.caller.user).conversation(rec.conversation_id);
        super::audit::record(&req.ctx, ev.details(details)).await;
        let att = to_proto(rec);
        // Service accounts are only ever in case conversations (a failed
        // read here loses the event, not the upload).
        let conv = req.store().get_conversation(att.conversation_id).await.ok().flatten();
        if conv.is_some_and(|c| c.kind == v1::ConversationKind::Case as i32) {
            req.ctx.shared.hooks.emit(crate::notify::hooks::HookEvent::uploaded(&att));
        }
        Ok(att)
    }
}

/// Reads the stored image back (bounded by [`THUMBNAIL_SOURCE_MAX_BYTES`]),
/// scales it off the async runtime and stores the preview; None when the
/// image cannot be previewed (it is kept without one).
async fn make_thumbnail(
    blobs: &Blobs,
    hash: &BlobHash,
    size: u64,
    kind: crate::blob::content::FileKind,
    cfg: &crate::config::BlobsConfig,
) -> Option<ThumbnailRecord> {
    let mut source = Vec::with_capacity(size as usize);
    while (source.len() as u64) < size {
        match blobs.read_range(hash, source.len() as u64, MAX_READ_BYTES).await {
            Ok(b) => source.extend_from_slice(&b),
            Err(e) => {
                tracing::warn!(%hash, error = %e, "cannot read an image back for its thumbnail");
                return None;
            }
        }
    }
    let limits = ThumbnailLimits::from_config(cfg);
    let made = tokio::task::spawn_blocking(move || thumbnail::make(&source, kind, &limits)).await;
    let thumb = match made {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::info!(%hash, error = %e, "no thumbnail");
            return None;
        }
        Err(e) => {
            tracing::warn!(%hash, error = %e, "thumbnail task failed");
            return None;
        }
    };
    match thumbnail::store_thumbnail(blobs, &thumb).await {
        Ok(meta) => Some(ThumbnailRecord {
            sha256: meta.hash.to_hex(),
            size: meta.size,
            width: thumb.width,
            height: thumb.height,
            media_type: thumb.kind.mime().to_string(),
        }),
        Err(e) => {
            tracing::warn!(%hash, error = %e, "cannot store a thumbnail");
            None
        }
    }
}

/// A download in progress: what it serves and where it is.
pub struct Download {
    /// The header the client gets first.
    pub ok: v1::DownloadOk,
    hash: BlobHash,
    pos: u64,
    end: u64,
}

/// Checks a download (membership, the attachment in that conversation, the
/// range) and says what follows.
pub async fn begin_download(req: &Requester, d: v1::DownloadStart) -> Result<Download, WireError> {
    let conv = require_conversation(d.conversation_id)?;
    require_member(req, conv).await?;
    let rec = req
        .store()
        .attachment(conv, &d.attachment_id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| unknown(&d.attachment_id))?;
    let (hex, total) = match (&rec.thumbnail, d.thumbnail) {
        (_, false) => (rec.sha256.clone(), rec.size),
        (Some(t), true) => (t.sha256.clone(), t.size),
        (None, true) => return Err(err(ErrorCode::NotFound, "this attachment has no thumbnail")),
    };
    let hash = BlobHash::from_hex(&hex).map_err(|e| {
        tracing::error!(conv, id = %rec.id, error = %e, "attachment record with a bad hash");
        err(ErrorCode::Unavailable, "this attachment cannot be read")
    })?;
    if d.offset >= total {
        return Err(err(
            ErrorCode::InvalidArgument,
            format!("offset {} is at or past the end of {total} bytes", d.offset),
        ));
    }
    let left = total - d.offset;
    let length = if d.length == 0 { left } else { d.length.min(left) };
    if !d.thumbnail {
        // Previews are not audited: every image in view fetches one.
        let details = json!({"attachment_id": rec.id, "offset": d.offset, "length": length});
        let ev = AuditEvent::new(EventKind::AttachmentDownloaded, &*req.caller.user).conversation(conv);
        super::audit::record(&req.ctx, ev.details(details)).await;
    }
    let ok = v1::DownloadOk { attachment: Some(to_proto(rec)), offset: d.offset, length, total };
    Ok(Download { ok, hash, pos: d.offset, end: d.offset + length })
}

impl Download {
    /// The next bytes of the range (at most [`MAX_READ_BYTES`]); None at its end.
    pub async fn next_chunk(&mut self, blobs: &Blobs) -> Result<Option<Bytes>, WireError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let b = blobs.read_range(&self.hash, self.pos, self.end - self.pos).await.map_err(blob_err)?;
        if b.is_empty() {
            return Err(err(ErrorCode::Unavailable, "the stored file ended early"));
        }
        self.pos += b.len() as u64;
        Ok(Some(b))
    }
}

/// The attachments a message of `sender` in `conv` names: each must be an
/// upload of the sender to that conversation, made within
/// `send_within_secs` (`blobs.send_within_secs`).
pub async fn resolve(
    store: &Store,
    conv: u64,
    sender: &str,
    ids: &[String],
    send_within_secs: u64,
) -> Result<Vec<v1::Attachment>, WireError> {
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    if ids.len() > MAX_PER_MESSAGE {
        return Err(WireError::limited(
            ErrorCode::InvalidArgument,
            "max_attachments_per_message",
            format!("{} attachments; at most {MAX_PER_MESSAGE} per message", ids.len()),
            None,
        ));
    }
    let mut out: Vec<v1::Attachment> = Vec::with_capacity(ids.len());
    for id in ids {
        if out.iter().any(|a| &a.attachment_id == id) {
            return Err(err(ErrorCode::InvalidArgument, format!("attachment {id:?} is named twice")));
        }
        match store.attachment(conv, id).await.map_err(store_err)? {
            Some(rec) if rec.uploader == sender => {
                if !upload_sendable(rec.uploaded_at_ms, now_ms, send_within_secs) {
                    return Err(err(
                        ErrorCode::UnknownAttachment,
                        format!(
                            "attachment {id:?} was uploaded more than {send_within_secs} s ago and never sent; upload it again"
                        ),
                    ));
                }
                out.push(to_proto(rec))
            }
            _ => return Err(unknown(id)),
        }
    }
    Ok(out)
}

/// The content check of an upload: by type in a plain conversation (a
/// type not allowed refused before anything else); in an E2E one, where
/// files are encrypted on the device, none, and only the E2E media type.
async fn upload_check(req: &Requester, conv: u64, media_type: &str) -> Result<ContentCheck, WireError> {
    let claimed_e2e = media_type.eq_ignore_ascii_case(E2E_MIME);
    let check =
        if claimed_e2e { ContentCheck::opaque() } else { ContentCheck::new(media_type).map_err(content_err)? };
    require_member(req, conv).await?;
    let e2e = req.store().get_conversation(conv).await.map_err(store_err)?.is_some_and(|c| c.e2e);
    match (e2e, claimed_e2e) {
        (true, false) => Err(err(
            ErrorCode::E2eRequired,
            format!(
                "this conversation is end-to-end encrypted: encrypt the file on the device and upload it as {E2E_MIME}"
            ),
        )),
        (false, true) => Err(err(
            ErrorCode::NotE2e,
            format!("{E2E_MIME} is for end-to-end encrypted conversations; this one is not"),
        )),
        _ => Ok(check),
    }
}

/// A file name: 1-255 bytes, no path, no control characters.
fn check_name(name: &str) -> Result<(), WireError> {
    let bad = |why: &str| Err(err(ErrorCode::InvalidArgument, format!("file name {why}")));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad(&format!("is {} bytes; at most {MAX_NAME_BYTES}", name.len()));
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) || name == "." || name == ".." {
        return bad("has a path separator or a control character");
    }
    Ok(())
}

/// Only current members upload to or download from a conversation; anyone
/// else is told it does not exist, as for every conversation.
async fn require_member(req: &Requester, conv: u64) -> Result<(), WireError> {
    match req.store().member(conv, &req.caller.user).await.map_err(store_err)? {
        Some(_) => Ok(()),
        None => Err(err(ErrorCode::NotFound, "no such conversation")),
    }
}

fn unknown(id: &str) -> WireError {
    let shown: String = id.chars().take(64).collect();
    err(ErrorCode::UnknownAttachment, format!("no attachment {shown:?} uploaded by you to this conversation"))
}

fn incomplete(msg: String) -> WireError {
    err(ErrorCode::UploadIncomplete, msg)
}

fn too_large(cap: u64, size: u64) -> WireError {
    WireError::limited(
        ErrorCode::FileTooLarge,
        "max_file_bytes",
        format!("file of {size} bytes is over the limit of {cap} bytes"),
        None,
    )
}

fn content_err(e: ContentError) -> WireError {
    let code = match e {
        ContentError::Mismatch { .. } => ErrorCode::TypeMismatch,
        ContentError::Empty => ErrorCode::InvalidArgument,
        _ => ErrorCode::TypeNotAllowed,
    };
    err(code, e.to_string())
}

fn blob_err(e: BlobError) -> WireError {
    match e {
        BlobError::TooLarge { limit } => WireError::limited(
            ErrorCode::FileTooLarge,
            "max_file_bytes",
            format!("the file passed the limit of {limit} bytes"),
            None,
        ),
        e => {
            tracing::error!(error = %e, "blob store error");
            WireError::limited(
                ErrorCode::Unavailable,
                "blobs",
                "file storage is unavailable; retry",
                Some(Duration::from_secs(1)),
            )
        }
    }
}
