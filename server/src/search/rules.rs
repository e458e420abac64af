//! The rules of a `Search` request, sans-IO: the limits on the query and
//! the page, the filters it names, and the opaque cursor (the last hit's
//! place in the order, bound to the query it was given for, so a cursor of
//! another query is refused rather than paging the wrong results).

use super::SortKey;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ConversationKind, ErrorCode};

/// Longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Hits per page when the request names none.
pub const DEFAULT_LIMIT: usize = 20;
/// Most hits per page.
pub const MAX_LIMIT: usize = 100;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Query text over [`MAX_QUERY_BYTES`].
    #[error("the query is {0} bytes; at most {MAX_QUERY_BYTES}")]
    QueryTooLong(usize),
    /// The engine could not parse the query.
    #[error("the query does not parse: {0}")]
    QueryMalformed(String),
    /// A cursor that is not one of ours, or of another query.
    #[error("the cursor is not one given for this search; start again without it")]
    CursorInvalid,
    /// `limit` above [`MAX_LIMIT`].
    #[error("limit {0} is out of range 1-{MAX_LIMIT}")]
    LimitOutOfRange(u32),
    /// `from_ms` after `to_ms`.
    #[error("from_ms must not be after to_ms")]
    EmptyRange,
    /// A conversation kind that does not exist.
    #[error("unknown conversation kind {0}")]
    UnknownKind(i32),
}

impl RequestError {
    /// The precise wire error.
    pub fn to_wire(&self) -> WireError {
        let code = match self {
            Self::QueryTooLong(_) | Self::QueryMalformed(_) => ErrorCode::SearchQueryMalformed,
            Self::CursorInvalid => ErrorCode::SearchCursorInvalid,
            Self::LimitOutOfRange(_) => ErrorCode::SearchLimitOutOfRange,
            Self::EmptyRange | Self::UnknownKind(_) => ErrorCode::InvalidArgument,
        };
        let limit = match self {
            Self::QueryTooLong(_) => "max_search_query_bytes",
            Self::LimitOutOfRange(_) => "max_search_limit",
            _ => "",
        };
        let mut e = WireError::new(code, self.to_string());
        if !limit.is_empty() {
            e.limit = Some(limit);
        }
        e
    }
}

/// A checked request: the page size, where it starts, the conversation kind
/// filter and the fingerprint its cursors carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Hits wanted.
    pub limit: usize,
    /// Start after this hit (None: from the newest).
    pub after: Option<SortKey>,
    /// Only conversations of this kind.
    pub kind: Option<ConversationKind>,
    /// The request's fingerprint (its query and filters, not its cursor or limit).
    pub fingerprint: u64,
}

/// Checks a request before anything is read.
pub fn check(s: &v1::Search) -> Result<Checked, RequestError> {
    if s.query.len() > MAX_QUERY_BYTES {
        return Err(RequestError::QueryTooLong(s.query.len()));
    }
    let limit = match s.limit {
        0 => DEFAULT_LIMIT,
        n if n as usize > MAX_LIMIT => return Err(RequestError::LimitOutOfRange(n)),
        n => n as usize,
    };
    if s.from_ms != 0 && s.to_ms != 0 && s.from_ms > s.to_ms {
        return Err(RequestError::EmptyRange);
    }
    let kind = match ConversationKind::try_from(s.kind) {
        Ok(ConversationKind::Unspecified) => None,
        Ok(k) => Some(k),
        Err(_) => return Err(RequestError::UnknownKind(s.kind)),
    };
    let fingerprint = fingerprint(s);
    let after = match s.cursor.as_str() {
        "" => None,
        c => Some(decode_cursor(c, fingerprint).ok_or(RequestError::CursorInvalid)?),
    };
    Ok(Checked { limit, after, kind, fingerprint })
}

/// FNV-1a over the query and filters: the same on every node and release.
fn fingerprint(s: &v1::Search) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes.iter().chain([0xff_u8].iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(s.query.as_bytes());
    eat(&s.conversation_id.to_be_bytes());
    eat(s.sender_id.as_bytes());
    eat(&s.from_ms.to_be_bytes());
    eat(&s.to_ms.to_be_bytes());
    eat(s.case_id.as_bytes());
    eat(&s.kind.to_be_bytes());
    eat(&[u8::from(s.has_attachment)]);
    eat(s.attachment_type.as_bytes());
    h
}

/// The cursor after `last` for a request of `fingerprint`.
pub fn encode_cursor(last: SortKey, fingerprint: u64) -> String {
    let mut b = Vec::with_capacity(32);
    for v in [last.time_ms, last.conversation_id, last.seq, fingerprint] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    hex::encode(b)
}

/// The place a cursor names, if it is well formed and for this request.
pub fn decode_cursor(cursor: &str, fingerprint: u64) -> Option<SortKey> {
    let b = hex::decode(cursor).ok()?;
    if b.len() != 32 {
        return None;
    }
    let word = |i: usize| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    (word(3) == fingerprint).then(|| SortKey { time_ms: word(0), conversation_id: word(1), seq: word(2) })
}

/// Whether a conversation passes the conversation-level filters.
pub fn conversation_matches(s: &v1::Search, kind: Option<ConversationKind>, rec_kind: i32, rec_case: &str) -> bool {
    kind.is_none_or(|k| k as i32 == rec_kind) && (s.case_id.is_empty() || s.case_id == rec_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(query: &str) -> v1::Search {
        v1::Search { query: query.into(), ..Default::default() }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(check(&search("x")).unwrap().limit, DEFAULT_LIMIT);
        let s = v1::Search { limit: 101, ..search("x") };
        assert_eq!(check(&s).unwrap_err(), RequestError::LimitOutOfRange(101));
        assert_eq!(check(&s).unwrap_err().to_wire().code, ErrorCode::SearchLimitOutOfRange);
        let long = "a".repeat(MAX_QUERY_BYTES + 1);
        assert_eq!(check(&search(&long)).unwrap_err().to_wire().code, ErrorCode::SearchQueryMalformed);
        let s = v1::Search { from_ms: 5, to_ms: 4, ..search("x") };
        assert_eq!(check(&s).unwrap_err(), RequestError::EmptyRange);
        let s = v1::Search { kind: 99, ..search("x") };
        assert_eq!(check(&s).unwrap_err(), RequestError::UnknownKind(99));
    }

    #[test]
    fn a_cursor_round_trips_only_for_its_own_query() {
        let key = SortKey { time_ms: 7, conversation_id: 8, seq: 9 };
        let first = check(&search("fee")).unwrap();
        let s = v1::Search { cursor: encode_cursor(key, first.fingerprint), ..search("fee") };
        assert_eq!(check(&s).unwrap().after, Some(key));
        let other = v1::Search { cursor: s.cursor.clone(), ..search("invoice") };
        assert_eq!(check(&other).unwrap_err(), RequestError::CursorInvalid);
        for bad in ["zz", "00", &"0".repeat(64)] {
            let s = v1::Search { cursor: bad.into(), ..search("fee") };
            assert_eq!(check(&s).unwrap_err().to_wire().code, ErrorCode::SearchCursorInvalid, "{bad}");
        }
    }
}
