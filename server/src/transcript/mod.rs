//! Court-ready transcripts of conversations: read from the store in their
//! latest state ([`gather`]), headed with the export's time, who asked and
//! the audit chain's head ([`header`]), and rendered as PDF ([`pdf`]) or
//! JSON ([`json`]) from one model ([`model`]); the export itself is then
//! recorded on the audit trail with the document's SHA-256
//! ([`exported_event`]), so anyone holding the file can show it is the one
//! the server made. A transcript is built in memory, bounded by
//! [`MAX_ENTRIES`] messages, and streamed out by its caller.

pub mod layout;
pub mod model;
pub mod pdf;

use crate::audit::{Audit, AuditEvent, EventKind};
use crate::store::audit::AuditStore;
use crate::store::retention::RetentionStore;
use crate::store::service_accounts::ServiceAccountStore;
use crate::store::walk::Pages;
use crate::store::{MessageStore, Store, StoreError};
use chat_protocol::v1;
use jiff::tz::TimeZone;
use model::{Header, Participant, Transcript};
use prost::Message as _;
use std::collections::HashMap;

/// Messages in one export at most (a case's conversations together).
pub const MAX_ENTRIES: usize = 50_000;

/// Why a transcript could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// No such conversation.
    #[error("conversation {0} does not exist")]
    NotFound(u64),
    /// Over [`MAX_ENTRIES`].
    #[error("more than {MAX_ENTRIES} messages: too long for one transcript")]
    TooLong,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The PDF could not be made.
    #[error(transparent)]
    Pdf(#[from] pdf::PdfError),
}

/// The document formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A PDF for people and courts.
    Pdf,
    /// JSON for systems.
    Json,
}

impl Format {
    /// The format called `name` (`pdf`, `json`).
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "pdf" => Some(Format::Pdf),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// Its file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Json => "json",
        }
    }

    /// Its media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Pdf => "application/pdf",
            Format::Json => "application/json",
        }
    }
}

/// Display names by user id, read once each (a service account's from its record).
struct Names<'a> {
    store: &'a Store,
    known: HashMap<String, String>,
}

impl Names<'_> {
    async fn of(&mut self, id: &str) -> Result<String, StoreError> {
        if let Some(n) = self.known.get(id) {
            return Ok(n.clone());
        }
        let name = match id.strip_prefix("svc:") {
            Some(svc) => self.store.get_service_account(svc).await?.map(|a| a.display_name),
            None => self.store.get_users(&[id.to_string()]).await?.pop().map(|u| u.display_name),
        }
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.to_string());
        self.known.insert(id.to_string(), name.clone());
        Ok(name)
    }
}

/// Reads conversation `conv` into a transcript; `budget` is what is left of [`MAX_ENTRIES`].
pub async fn gather(
    store: &Store,
    conv: u64,
    tz: &TimeZone,
    budget: &mut usize,
) -> Result<Transcript, TranscriptError> {
    let rec = store.get_conversation(conv).await?.ok_or(TranscriptError::NotFound(conv))?;
    let mut names = Names { store, known: HashMap::new() };
    let mut participants = Vec::new();
    let mut roles = HashMap::new();
    let members = store.members(conv).await?;
    let ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    for u in store.get_users(&ids).await? {
        roles.insert(u.id.clone(), u.role);
    }
    for m in members {
        let role = if m.user_id.starts_with("svc:") {
            v1::Role::Service as i32
        } else {
            roles.get(&m.user_id).copied().unwrap_or(0)
        };
        participants.push(Participant {
            name: names.of(&m.user_id).await?,
            user_id: m.user_id,
            role: model::role_name(role),
            conversation_role: model::member_role_name(m.role),
        });
    }
    let purged_through = store.purged_through(conv).await?;
    let mut entries = Vec::new();
    let mut pages = Pages::new(conv, purged_through);
    while let Some(page) = pages.next(store).await? {
        for (_, bytes) in page {
            let Ok(m) = v1::Message::decode(bytes.as_ref()) else { continue };
            let name = names.of(&m.sender_id).await?;
            if let Some(e) = model::entry(&m, |_| name.clone(), tz) {
                *budget = budget.checked_sub(1).ok_or(TranscriptError::TooLong)?;
                entries.push(e);
            }
        }
    }
    Ok(Transcript {
        conversation_id: conv,
        title: rec.title,
        kind: model::kind_name(rec.kind),
        case_id: rec.case_id,
        created_at: model::stamp(rec.created_at_ms, tz),
        archived_at: (rec.archived_at_ms != 0).then(|| model::stamp(rec.archived_at_ms, tz)),
        purged_through,
        participants,
        entries,
    })
}

/// The header of an export made now by `by`: the audit trail is flushed
/// first, so its head covers everything recorded before.
pub async fn header(store: &Store, audit: &Audit, by: &str, tz: &TimeZone, tz_name: &str, now_ms: u64) -> Header {
    if let Err(e) = audit.flush().await {
        tracing::warn!(error = %e, "the audit trail did not flush before a transcript");
    }
    let last = store.audit_last(audit.chain()).await.ok().flatten();
    Header {
        exported_at: model::stamp(now_ms, tz),
        exported_by: by.to_string(),
        time_zone: tz_name.to_string(),
        audit_chain: audit.chain().to_string(),
        audit_head_seq: last.as_ref().map_or(0, |l| l.seq),
        audit_head_hash: last.map(|l| l.hash).unwrap_or_default(),
    }
}

/// The JSON document of `transcripts` under `header`.
pub fn json(transcripts: &[Transcript], header: &Header) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({"header": header, "conversations": transcripts})).unwrap_or_default()
}

/// The document of `transcripts` in `format`.
pub fn render(
    transcripts: &[Transcript],
    header: &Header,
    format: Format,
    title: &str,
) -> Result<Vec<u8>, TranscriptError> {
    Ok(match format {
        Format::Pdf => pdf::render(transcripts, header, title)?,
        Format::Json => json(transcripts, header),
    })
}

/// What an export is made of and for.
pub struct Export<'a> {
    /// The conversations, in order.
    pub conversations: &'a [u64],
    /// The format.
    pub format: Format,
    /// The document's title (None: the one conversation's).
    pub title: Option<String>,
    /// Who asks.
    pub by: &'a str,
    /// The firm's time zone and its name.
    pub tz: (&'a TimeZone, &'a str),
}

/// Transcripts read for an export, with their header and title.
pub struct Gathered {
    /// One per conversation, in order.
    pub transcripts: Vec<Transcript>,
    /// The export's header.
    pub header: Header,
    /// The document's title.
    pub title: String,
}

/// Reads what `e` asks for, under a header made now.
pub async fn gather_all(
    store: &Store,
    audit: &Audit,
    e: &Export<'_>,
    now_ms: u64,
) -> Result<Gathered, TranscriptError> {
    let (tz, tz_name) = e.tz;
    let header = header(store, audit, e.by, tz, tz_name, now_ms).await;
    let mut budget = MAX_ENTRIES;
    let mut transcripts = Vec::new();
    for &conv in e.conversations {
        transcripts.push(gather(store, conv, tz, &mut budget).await?);
    }
    let title = match (&e.title, transcripts.first()) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) if !t.title.is_empty() => format!("Transcript of {} (#{})", t.title, t.conversation_id),
        (None, _) => format!("Transcript of conversation {}", e.conversations.first().copied().unwrap_or(0)),
    };
    Ok(Gathered { transcripts, header, title })
}

/// Makes the document of `e` and records it on `audit`; the document.
pub async fn export(store: &Store, audit: &Audit, e: Export<'_>, now_ms: u64) -> Result<Vec<u8>, TranscriptError> {
    let g = gather_all(store, audit, &e, now_ms).await?;
    let (g, doc) = render_off_thread(g, e.format).await?;
    record(audit, exported_event(e.by, &g.transcripts, &g.header, e.format.extension(), &doc)).await;
    Ok(doc)
}

/// Renders `g` in `format` on a blocking thread (a long transcript takes
/// seconds of CPU: never on a shard); `g` comes back with the document.
pub async fn render_off_thread(g: Gathered, format: Format) -> Result<(Gathered, Vec<u8>), TranscriptError> {
    let done = tokio::task::spawn_blocking(move || {
        let doc = render(&g.transcripts, &g.header, format, &g.title);
        doc.map(|d| (g, d))
    })
    .await;
    done.map_err(|e| TranscriptError::Pdf(pdf::PdfError::new(format!("the rendering thread failed: {e}"))))?
}

/// Records an export on the audit trail (a failure is logged: the document is made).
pub async fn record(audit: &Audit, ev: AuditEvent) {
    if let Err(err) = audit.record(ev).await {
        tracing::error!(error = %err, "a transcript export was not recorded on the audit trail");
    }
}

/// The conversations of case `case_id`, oldest first (every conversation
/// is read: for an operator's export, not for a request path).
pub async fn case_conversations(store: &Store, case_id: &str) -> Result<Vec<u64>, StoreError> {
    let mut found = Vec::new();
    for id in store.conversation_ids().await? {
        if let Some(c) = store.get_conversation(id).await?
            && c.case_id == case_id
        {
            found.push((c.created_at_ms, id));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// What an operator's export writes.
pub struct Target<'a> {
    /// The conversation (0: the case's).
    pub conversation_id: u64,
    /// The case (empty: the conversation's).
    pub case_id: &'a str,
    /// PDF or JSON.
    pub format: Format,
    /// The file to create (never overwritten).
    pub to: &'a std::path::Path,
}

/// An operator's export (`chatd conversations transcript`), as the node
/// `chatd`: the document written to a new file; its conversations and bytes.
pub async fn to_file(
    store: &Store,
    audit: &Audit,
    api: &crate::config::ApiConfig,
    t: Target<'_>,
) -> Result<(usize, usize), String> {
    let tz = api.tz()?;
    let (convs, title) = match (t.conversation_id, t.case_id) {
        (0, "") => return Err("name a conversation (--id) or a case (--case)".into()),
        (0, case) => (
            case_conversations(store, case).await.map_err(|e| e.to_string())?,
            Some(format!("Transcript of case {case}")),
        ),
        (id, "") => (vec![id], None),
        _ => return Err("name a conversation (--id) or a case (--case), not both".into()),
    };
    if convs.is_empty() {
        return Err(format!("case {:?} has no conversation", t.case_id));
    }
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let e = Export { conversations: &convs, format: t.format, title, by: "chatd", tz: (&tz, &api.time_zone) };
    let doc = export(store, audit, e, now_ms).await.map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(t.to)
        .map_err(|e| format!("{}: {e} (an existing file is never overwritten)", t.to.display()))?;
    std::io::Write::write_all(&mut file, &doc)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", t.to.display()))?;
    Ok((convs.len(), doc.len()))
}

/// The audit entry of an export: which conversations, how many messages,
/// the format, the header's chain head and the document's SHA-256.
/// `format`: `pdf`, `json` or `bundle` (then `doc` is the bundle's manifest).
pub fn exported_event(by: &str, transcripts: &[Transcript], header: &Header, format: &str, doc: &[u8]) -> AuditEvent {
    let ids: Vec<String> = transcripts.iter().map(|t| t.conversation_id.to_string()).collect();
    let messages: usize = transcripts.iter().map(|t| t.entries.len()).sum();
    let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, doc));
    let details = serde_json::json!({
        "format": format,
        "conversations": ids,
        "messages": messages,
        "bytes": doc.len(),
        "sha256": sha256,
        "audit_head_seq": header.audit_head_seq,
    });
    let ev = AuditEvent::new(EventKind::TranscriptExported, by).details(details);
    match transcripts {
        [one] => ev.conversation(one.conversation_id),
        _ => ev,
    }
}
