//! Errors of the server API as RFC 9457 problem details
//! (`application/problem+json`): the wire protocol's error code (number and
//! name) beside the HTTP status it maps to, so an integration handles one
//! set of codes whichever way it talks to the server.

use chat_protocol::WireError;
use chat_protocol::v1::ErrorCode;
use hyper::StatusCode;

/// What an operation answers: a status and a JSON document, or an error
/// (answered as a problem).
pub type Answer = Result<(StatusCode, serde_json::Value), WireError>;

/// What a request is answered with.
#[derive(Debug)]
pub enum Out {
    /// A JSON document.
    Json(StatusCode, serde_json::Value),
    /// A file to save.
    File {
        /// Its media type.
        media_type: &'static str,
        /// Its name (sent as `Content-Disposition: attachment`).
        name: String,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A file streamed as it is made (an error aborts it).
    Stream {
        /// Its media type.
        media_type: &'static str,
        /// Its name.
        name: String,
        /// Its bytes, piece by piece.
        rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
    },
}

/// A JSON answer as an [`Out`].
pub fn json(a: Answer) -> Result<Out, WireError> {
    a.map(|(status, doc)| Out::Json(status, doc))
}

/// The HTTP status of a wire error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as E;
    match code {
        E::RateLimited | E::ConnectionRateLimited | E::UploadRateExceeded => StatusCode::TOO_MANY_REQUESTS,
        E::Overloaded | E::Unavailable | E::ShuttingDown | E::SlowConsumer => StatusCode::SERVICE_UNAVAILABLE,
        E::Timeout => StatusCode::GATEWAY_TIMEOUT,
        E::FrameTooLarge | E::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        E::NotFound | E::NotMember | E::UnknownAttachment | E::HoldNotFound | E::UnknownCommand => {
            StatusCode::NOT_FOUND
        }
        E::UnknownUser | E::E2eRequired | E::NotE2e => StatusCode::UNPROCESSABLE_ENTITY,
        E::Forbidden | E::NotYourMessage | E::UserDisabled => StatusCode::FORBIDDEN,
        E::Conflict
        | E::Archived
        | E::TooManyMembers
        | E::EditWindowClosed
        | E::MessageDeleted
        | E::NotEditable
        | E::TooManyReactions
        | E::UnderLegalHold
        | E::StaleEpoch
        | E::NoKeyPackages
        | E::TooManyKeyPackages => StatusCode::CONFLICT,
        E::Unauthenticated | E::TokenExpired | E::SessionRevoked => StatusCode::UNAUTHORIZED,
        E::Unsupported | E::SearchDisabled | E::UnsupportedVersion => StatusCode::NOT_IMPLEMENTED,
        E::Malformed
        | E::InvalidArgument
        | E::TextTooLong
        | E::SearchQueryMalformed
        | E::SearchCursorInvalid
        | E::SearchLimitOutOfRange
        | E::TypeNotAllowed
        | E::TypeMismatch
        | E::UploadIncomplete
        | E::InvalidEmoji
        | E::RetentionOutOfRange
        | E::HoldTargetInvalid
        | E::EraseReasonRequired
        | E::ProtocolViolation
        | E::HandshakeTimeout => StatusCode::BAD_REQUEST,
        E::Unspecified => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The problem-details document of `e`.
pub fn body(e: &WireError) -> serde_json::Value {
    let status = status_of(e.code);
    let name = e.code.as_str_name();
    let short = name.strip_prefix("ERROR_CODE_").unwrap_or(name).to_ascii_lowercase();
    let mut doc = serde_json::json!({
        "type": format!("urn:chatd:error:{short}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": e.message,
        "code": e.code as i32,
        "code_name": name,
    });
    if let Some(wait) = e.retry_after {
        doc["retry_after_ms"] = serde_json::json!(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
    }
    if let Some(limit) = e.limit {
        doc["limit"] = serde_json::json!(limit);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_problem_names_the_wire_code_and_its_status() {
        let e = WireError::new(ErrorCode::UnknownUser, "not in the user directory: zed");
        let doc = body(&e);
        assert_eq!(doc["status"], 422);
        assert_eq!(doc["code"], 2018);
        assert_eq!(doc["code_name"], "ERROR_CODE_UNKNOWN_USER");
        assert_eq!(doc["type"], "urn:chatd:error:unknown_user");
        assert_eq!(doc["detail"], "not in the user directory: zed");
        assert!(doc.get("retry_after_ms").is_none());
        let limited = WireError::limited(
            ErrorCode::RateLimited,
            "requests_per_minute",
            "slow",
            Some(Duration::from_millis(1500)),
        );
        let doc = body(&limited);
        assert_eq!((doc["status"].as_u64(), doc["retry_after_ms"].as_u64()), (Some(429), Some(1500)));
        assert_eq!(doc["limit"], "requests_per_minute");
    }

    #[test]
    fn every_code_has_a_client_or_server_status() {
        for code in (0..5000).filter_map(|n| ErrorCode::try_from(n).ok()) {
            let s = status_of(code);
            assert!(s.is_client_error() || s.is_server_error(), "{code:?} -> {s}");
        }
    }
}
