//! Wire errors: a code whose range says what the client should do, a message
//! safe to show, and for limits which limit and when to retry.

use crate::v1::{self, ErrorCode};
use std::time::Duration;

/// What a client should do about an error, read from its code's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 1000-1999: retry the same request (after `retry_after` if given).
    Temporary,
    /// 2000-2999: the request is wrong; do not retry it as is.
    Final,
    /// 3000-3999: the connection is closing; reconnect with backoff.
    Reconnect,
    /// 4000-4999: the connection is closing; reconnecting with the same credentials will fail.
    Fatal,
}

impl ErrorClass {
    /// The class of a numeric code.
    pub fn of(code: i32) -> Self {
        match code {
            1000..=1999 => Self::Temporary,
            3000..=3999 => Self::Reconnect,
            4000..=4999 => Self::Fatal,
            _ => Self::Final,
        }
    }
}

/// An error as it travels on the wire, with a Rust face.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct WireError {
    /// The code.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
    /// For temporary errors: how long to wait before retrying.
    pub retry_after: Option<Duration>,
    /// For limit errors: the name of the limit.
    pub limit: Option<&'static str>,
}

impl WireError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None, limit: None }
    }

    /// A limit was hit: says which, and when to retry.
    pub fn limited(
        code: ErrorCode,
        limit: &'static str,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self { code, message: message.into(), retry_after, limit: Some(limit) }
    }

    /// What the client should do.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::of(self.code as i32)
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> v1::Error {
        v1::Error {
            code: self.code as i32,
            message: self.message.clone(),
            retry_after_ms: self.retry_after.map(|d| d.as_millis() as u64).unwrap_or(0),
            limit: self.limit.unwrap_or_default().to_string(),
        }
    }

    /// Reads the protobuf form. An unknown code keeps its class by range.
    pub fn from_proto(e: &v1::Error) -> WireErrorOwned {
        WireErrorOwned {
            code: e.code,
            message: e.message.clone(),
            retry_after: (e.retry_after_ms > 0).then(|| Duration::from_millis(e.retry_after_ms)),
            limit: (!e.limit.is_empty()).then(|| e.limit.clone()),
        }
    }
}

/// An error received from the wire (codes may be newer than this crate).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({code}): {message}", ErrorCode::try_from(*code).map(|c| c.as_str_name()).unwrap_or("UNKNOWN"))]
pub struct WireErrorOwned {
    /// Numeric code (an `ErrorCode` when known).
    pub code: i32,
    /// Human-readable detail.
    pub message: String,
    /// When to retry, for temporary errors.
    pub retry_after: Option<Duration>,
    /// Which limit, for limit errors.
    pub limit: Option<String>,
}

impl WireErrorOwned {
    /// What the client should do.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::of(self.code)
    }

    /// The code, if this crate knows it.
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::try_from(self.code).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_ranges() {
        assert_eq!(ErrorClass::of(ErrorCode::RateLimited as i32), ErrorClass::Temporary);
        assert_eq!(ErrorClass::of(ErrorCode::NotMember as i32), ErrorClass::Final);
        assert_eq!(ErrorClass::of(ErrorCode::SlowConsumer as i32), ErrorClass::Reconnect);
        assert_eq!(ErrorClass::of(ErrorCode::TokenExpired as i32), ErrorClass::Fatal);
        assert_eq!(ErrorClass::of(1999), ErrorClass::Temporary);
    }

    #[test]
    fn round_trips_through_proto() {
        let e = WireError::limited(
            ErrorCode::RateLimited,
            "messages_per_minute",
            "slow down",
            Some(Duration::from_millis(600)),
        );
        let back = WireError::from_proto(&e.to_proto());
        assert_eq!(back.code(), Some(ErrorCode::RateLimited));
        assert_eq!(back.retry_after, Some(Duration::from_millis(600)));
        assert_eq!(back.limit.as_deref(), Some("messages_per_minute"));
        assert_eq!(back.class(), ErrorClass::Temporary);
    }
}
