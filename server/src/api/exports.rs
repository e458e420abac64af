//! Files out of the API: a conversation's or a case's transcript (PDF or
//! JSON, `crate::transcript`), recorded on the audit trail with its
//! SHA-256, and an attachment's bytes (checked and audited as the apps'
//! downloads are). Both only for conversations the service account is a
//! member of.

use super::bundle::Bundle;
use super::problem::Out;
use super::route::query;
use crate::command::Requester;
use crate::command::attachments;
use crate::transcript::{self, Export, Format, MAX_ENTRIES, TranscriptError};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode};

/// What is asked for: one document, or the bundle of both with the files.
enum Want {
    Doc(Format),
    Bundle,
}

fn want(q: Option<&str>) -> Result<Want, WireError> {
    let bad = |f: &str| WireError::new(ErrorCode::InvalidArgument, format!("format {f:?}: pdf, json or bundle"));
    match query(q, "format") {
        None => Ok(Want::Doc(Format::Pdf)),
        Some(Ok(f)) if f == "bundle" => Ok(Want::Bundle),
        Some(Ok(f)) => Format::parse(&f).map(Want::Doc).ok_or_else(|| bad(&f)),
        Some(Err(f)) => Err(bad(f)),
    }
}

fn transcript_err(e: TranscriptError) -> WireError {
    match e {
        TranscriptError::NotFound(c) => crate::conversation::no_access(c),
        TranscriptError::TooLong => WireError::limited(
            ErrorCode::FrameTooLarge,
            "transcript_messages",
            format!("more than {MAX_ENTRIES} messages: export the conversations of the case one by one"),
            None,
        ),
        TranscriptError::Store(e) => crate::command::request::store_err(e),
        TranscriptError::Pdf(e) => WireError::new(ErrorCode::Unavailable, e.to_string()),
    }
}

/// The transcript of `convs` (each readable by the caller), audited.
/// `title`: the document's (None: the one conversation's).
async fn document(
    call: &Requester,
    convs: &[u64],
    q: Option<&str>,
    name: &str,
    title: Option<String>,
) -> Result<Out, WireError> {
    let want = want(q)?;
    let shared = &call.ctx.shared;
    // One export at a time per node (transcripts and GDPR exports alike):
    // each holds a transcript in memory and a core while it renders.
    let slot = shared.exports.clone().try_acquire_owned().map_err(|_| {
        let msg = "another export runs on this node; one runs at a time";
        WireError::limited(ErrorCode::Overloaded, "exports_per_node", msg, Some(std::time::Duration::from_secs(5)))
    })?;
    let tz = shared.cfg.api.tz().map_err(|e| WireError::new(ErrorCode::Unavailable, e))?;
    for &conv in convs {
        crate::command::conversations::readable(call, conv).await?;
    }
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let by = call.caller.user.to_string();
    let format = match want {
        Want::Doc(f) => f,
        Want::Bundle => Format::Pdf,
    };
    let e = Export { conversations: convs, format, title, by: &by, tz: (&tz, &shared.cfg.api.time_zone) };
    if let Want::Doc(format) = want {
        let doc = transcript::export(&shared.store, &shared.audit, e, now_ms).await.map_err(transcript_err)?;
        return Ok(Out::File {
            media_type: format.media_type(),
            name: format!("{name}.{}", format.extension()),
            bytes: doc,
        });
    }
    let g = transcript::gather_all(&shared.store, &shared.audit, &e, now_ms).await.map_err(transcript_err)?;
    let (g, pdf) = transcript::render_off_thread(g, Format::Pdf).await.map_err(transcript_err)?;
    let (g, json) = transcript::render_off_thread(g, Format::Json).await.map_err(transcript_err)?;
    let bundle = Bundle::new(&g.transcripts, &g.header, pdf, json, now_ms);
    let ev = transcript::exported_event(&by, &g.transcripts, &g.header, "bundle", bundle.manifest());
    transcript::record(&shared.audit, ev).await;
    Ok(Out::Stream {
        media_type: "application/x-tar",
        name: format!("{name}.tar"),
        rx: bundle.stream(shared.blobs.clone(), slot),
    })
}

/// `GET /conversations/{id}/transcript`.
pub async fn conversation(call: &Requester, conv: u64, q: Option<&str>) -> Result<Out, WireError> {
    document(call, &[conv], q, &format!("transcript-{conv}"), None).await
}

/// `GET /cases/{case_id}/transcript`: the account's conversations of the case, oldest first.
pub async fn case(call: &Requester, convs: Vec<u64>, case: &str, q: Option<&str>) -> Result<Out, WireError> {
    if convs.is_empty() {
        return Err(WireError::new(
            ErrorCode::NotFound,
            format!("case {case:?} has no conversation of this service account"),
        ));
    }
    let safe: String = case.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    document(call, &convs, q, &format!("case-{safe}"), Some(format!("Transcript of case {case}"))).await
}

/// `GET /conversations/{id}/attachments/{attachment_id}`: streamed a piece at a time.
pub async fn attachment(call: &Requester, conv: u64, id: &str) -> Result<Out, WireError> {
    let start = v1::DownloadStart { conversation_id: conv, attachment_id: id.to_string(), ..Default::default() };
    let mut d = attachments::begin_download(call, start).await?;
    let name = d.ok.attachment.as_ref().map(|a| a.name.clone()).unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let blobs = call.ctx.shared.blobs.clone();
    tokio::task::spawn_local(async move {
        loop {
            let piece = match d.next_chunk(&blobs).await {
                Ok(Some(b)) => Ok(b),
                Ok(None) => return,
                Err(e) => Err(std::io::Error::other(e.message)),
            };
            let failed = piece.is_err();
            if tx.send(piece).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(Out::Stream { media_type: "application/octet-stream", name, rx })
}
