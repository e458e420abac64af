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
    let pdf = transcript::render(&g.transcripts, &g.header, Format::Pdf, &g.title).map_err(transcript_err)?;
    let json = transcript::json(&g.transcripts, &g.header);
    let bundle = Bundle::new(&g.transcripts, &g.header, pdf, json, now_ms);
    let ev = transcript::exported_event(&by, &g.transcripts, &g.header, "bundle", bundle.manifest());
    transcript::record(&shared.audit, ev).await;
    Ok(Out::Stream {
        media_type: "application/x-tar",
        name: format!("{name}.tar"),
        rx: bundle.stream(shared.blobs.clone()),
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

/// `GET /conversations/{id}/attachments/{attachment_id}`.
pub async fn attachment(call: &Requester, conv: u64, id: &str) -> Result<Out, WireError> {
    let start = v1::DownloadStart { conversation_id: conv, attachment_id: id.to_string(), ..Default::default() };
    let mut d = attachments::begin_download(call, start).await?;
    let a = d.ok.attachment.clone().unwrap_or_default();
    let mut bytes = Vec::with_capacity(usize::try_from(a.size).unwrap_or(0));
    while let Some(chunk) = d.next_chunk(&call.ctx.shared.blobs).await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(Out::File { media_type: "application/octet-stream", name: a.name, bytes })
}
