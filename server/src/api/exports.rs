//! Files out of the API: a conversation's or a case's transcript (PDF or
//! JSON, `crate::transcript`), recorded on the audit trail with its
//! SHA-256, and an attachment's bytes (checked and audited as the apps'
//! downloads are). Both only for conversations the service account is a
//! member of.

use super::problem::Out;
use super::route::query;
use crate::command::Requester;
use crate::command::attachments;
use crate::transcript::{self, Export, Format, MAX_ENTRIES, TranscriptError};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode};

fn format(q: Option<&str>) -> Result<Format, WireError> {
    match query(q, "format") {
        None => Ok(Format::Pdf),
        Some(Ok(f)) => Format::parse(&f)
            .ok_or_else(|| WireError::new(ErrorCode::InvalidArgument, format!("format {f:?}: pdf or json"))),
        Some(Err(f)) => Err(WireError::new(ErrorCode::InvalidArgument, format!("format {f:?}: pdf or json"))),
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
    let format = format(q)?;
    let shared = &call.ctx.shared;
    let tz = shared.cfg.api.tz().map_err(|e| WireError::new(ErrorCode::Unavailable, e))?;
    for &conv in convs {
        crate::command::conversations::readable(call, conv).await?;
    }
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let by = call.caller.user.to_string();
    let e = Export { conversations: convs, format, title, by: &by, tz: (&tz, &shared.cfg.api.time_zone) };
    let doc = transcript::export(&shared.store, &shared.audit, e, now_ms).await.map_err(transcript_err)?;
    Ok(Out::File { media_type: format.media_type(), name: format!("{name}.{}", format.extension()), bytes: doc })
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
