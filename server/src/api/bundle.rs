//! A transcript bundle (`?format=bundle`): one tar archive, streamed as it
//! is made, holding `transcript.pdf`, `transcript.json`, every file of the
//! transcribed messages (`files/<conversation>/<attachment id>-<name>`,
//! read from the blob store a piece at a time) and, last, `manifest.json`
//! with each member's size and SHA-256 (an archive cut off midway has no
//! manifest). Memory stays at a few pieces whatever the files weigh.

use crate::blob::{BlobHash, BlobStore, Blobs, MAX_READ_BYTES};
use crate::transcript::model::{Header, Transcript};
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Pieces waiting to be written to the client at most.
const QUEUE: usize = 4;

/// Where a member's bytes come from.
enum Source {
    /// Made in memory (the PDF, the JSON).
    Made(Bytes),
    /// A stored file.
    Blob(BlobHash),
}

/// One member of the archive.
struct Member {
    path: String,
    size: u64,
    sha256: String,
    source: Source,
}

/// The archive's members and its manifest, from the documents made and the
/// files the transcripts list (each once).
pub struct Bundle {
    members: Vec<Member>,
    manifest: Bytes,
    mtime: u64,
}

fn sha256(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

impl Bundle {
    /// The bundle of `transcripts` with their PDF and JSON made at `now_ms`.
    pub fn new(transcripts: &[Transcript], header: &Header, pdf: Vec<u8>, json_doc: Vec<u8>, now_ms: u64) -> Self {
        let made = |path: &str, b: Vec<u8>| Member {
            path: path.to_string(),
            size: b.len() as u64,
            sha256: sha256(&b),
            source: Source::Made(Bytes::from(b)),
        };
        let mut members = vec![made("transcript.pdf", pdf), made("transcript.json", json_doc)];
        let mut seen = std::collections::HashSet::new();
        for t in transcripts {
            for f in t.entries.iter().flat_map(|e| &e.files) {
                let Ok(hash) = BlobHash::from_hex(&f.sha256) else { continue };
                if !seen.insert((t.conversation_id, f.id.clone())) {
                    continue;
                }
                let name: String = f
                    .name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
                    .take(60)
                    .collect();
                let path = format!("files/{}/{}-{name}", t.conversation_id, f.id);
                members.push(Member { path, size: f.size, sha256: f.sha256.clone(), source: Source::Blob(hash) });
            }
        }
        let listed: Vec<_> =
            members.iter().map(|m| json!({"path": m.path, "size": m.size, "sha256": m.sha256})).collect();
        let manifest = serde_json::to_vec_pretty(&json!({"header": header, "files": listed})).unwrap_or_default();
        Self { members, manifest: Bytes::from(manifest), mtime: now_ms / 1000 }
    }

    /// The manifest (what the audit trail records the SHA-256 of).
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// Streams the archive on this thread's task set, holding `slot` (the
    /// node's export slot) until it ends; the receiving end.
    pub fn stream(
        self,
        blobs: Arc<Blobs>,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> mpsc::Receiver<Result<Bytes, std::io::Error>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::task::spawn_local(async move {
            let _slot = slot;
            if let Err(e) = self.write(&blobs, &tx).await {
                tracing::warn!(error = %e, "a transcript bundle was cut off");
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn write(self, blobs: &Blobs, tx: &mpsc::Sender<Result<Bytes, std::io::Error>>) -> std::io::Result<()> {
        let send =
            |b: Bytes| async move { tx.send(Ok(b)).await.map_err(|_| std::io::Error::other("the client went away")) };
        let manifest = Member {
            path: "manifest.json".into(),
            size: self.manifest.len() as u64,
            sha256: String::new(),
            source: Source::Made(self.manifest.clone()),
        };
        for m in self.members.iter().chain([&manifest]) {
            send(header(&m.path, m.size, self.mtime)?).await?;
            match &m.source {
                Source::Made(b) => send(b.clone()).await?,
                Source::Blob(hash) => {
                    let mut pos = 0;
                    while pos < m.size {
                        let piece = blobs.read_range(hash, pos, MAX_READ_BYTES).await.map_err(std::io::Error::other)?;
                        if piece.is_empty() {
                            return Err(std::io::Error::other(format!("{} ended early", m.path)));
                        }
                        pos += piece.len() as u64;
                        send(piece).await?;
                    }
                }
            }
            let pad = (512 - m.size % 512) % 512;
            if pad > 0 {
                send(Bytes::from(vec![0; pad as usize])).await?;
            }
        }
        send(Bytes::from(vec![0; 1024])).await
    }
}

/// A tar (ustar) header of a regular file.
fn header(path: &str, size: u64, mtime: u64) -> std::io::Result<Bytes> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(Bytes::copy_from_slice(h.as_bytes()))
}
