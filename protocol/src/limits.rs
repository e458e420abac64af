//! Limits and the validation of everything a client sends.
//!
//! Every check here says which limit failed so the server can answer with a
//! precise error. Text is stored verbatim: the rich-text subset is Markdown in
//! which HTML is literal text, so renderers escape it; what we refuse here are
//! bytes with no place in a chat line (control characters and the bidi
//! overrides used to disguise text).

use crate::WireError;
use crate::v1::{self, ErrorCode};

/// The media type of a file encrypted on the device for an end-to-end
/// encrypted conversation (the only one such a conversation takes).
pub const E2E_MEDIA_TYPE: &str = "application/vnd.chatd.e2e-encrypted";

/// Default cap on a message's text, in bytes of UTF-8 (10 KiB).
pub const DEFAULT_MAX_TEXT_BYTES: usize = 10 * 1024;

/// Size and count limits shared by validation and the codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest message text, in bytes.
    pub max_text_bytes: usize,
    /// Longest client frame, in bytes (a 10 KiB text plus its envelope fits).
    pub max_client_frame: usize,
    /// Longest server frame a client accepts (a page of history fits).
    pub max_server_frame: usize,
    /// Most members of one conversation.
    pub max_members: usize,
    /// Most messages in one history page.
    pub max_history_page: u32,
    /// Longest conversation title, in bytes.
    pub max_title_bytes: usize,
    /// Most ids in one request (add members, presence).
    pub max_ids_per_request: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
            // Without a cap a single length prefix could make us buffer 4 GiB.
            max_client_frame: 64 * 1024,
            max_server_frame: 4 * 1024 * 1024,
            max_members: 10_000,
            max_history_page: 200,
            max_title_bytes: 256,
            max_ids_per_request: 1_000,
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Text longer than the limit.
    #[error("text is {len} bytes, over the {max}-byte limit")]
    TextTooLong {
        /// Actual length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message with no content.
    #[error("message body is empty")]
    EmptyBody,
    /// A character that has no place in a message.
    #[error("text contains a forbidden character U+{0:04X}")]
    ForbiddenChar(u32),
    /// A malformed id.
    #[error("invalid {what}: {why}")]
    BadId {
        /// Which id.
        what: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A reaction that is not exactly one emoji.
    #[error("reaction must be one emoji: {0}")]
    BadEmoji(&'static str),
    /// A field out of its range.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

impl ValidationError {
    /// The wire form of this error.
    pub fn to_wire(&self) -> WireError {
        match self {
            Self::TextTooLong { .. } => {
                WireError::limited(ErrorCode::TextTooLong, "max_text_bytes", self.to_string(), None)
            }
            Self::BadEmoji(_) => WireError::new(ErrorCode::InvalidEmoji, self.to_string()),
            _ => WireError::new(ErrorCode::InvalidArgument, self.to_string()),
        }
    }
}

impl Limits {
    /// Checks a message body: text within the limit and free of forbidden characters.
    pub fn check_body(&self, body: Option<&v1::MessageBody>) -> Result<(), ValidationError> {
        use v1::message_body::Content;
        match body.and_then(|b| b.content.as_ref()) {
            None => Err(ValidationError::EmptyBody),
            Some(Content::Text(t)) => self.check_text(t),
            Some(Content::Ciphertext(c)) => self.check_ciphertext(c),
        }
    }

    /// Checks an E2E message's shape (the server cannot read it): an MLS
    /// message is there; an application message is at most the text limit
    /// plus 1 KiB of MLS framing and carries no Welcome; a commit (with its
    /// Welcome) is bounded by the frame.
    pub fn check_ciphertext(&self, c: &v1::E2eCiphertext) -> Result<(), ValidationError> {
        if c.mls.is_empty() {
            return Err(ValidationError::EmptyBody);
        }
        if !c.commit && !c.welcome.is_empty() {
            return Err(ValidationError::Invalid {
                what: "ciphertext",
                why: "a Welcome comes only with a commit".into(),
            });
        }
        let max = if c.commit { self.max_client_frame } else { self.max_text_bytes + 1024 };
        let len = c.mls.len() + c.welcome.len();
        if len > max {
            return Err(ValidationError::TextTooLong { len, max });
        }
        Ok(())
    }

    /// Checks message text.
    pub fn check_text(&self, text: &str) -> Result<(), ValidationError> {
        if text.len() > self.max_text_bytes {
            return Err(ValidationError::TextTooLong { len: text.len(), max: self.max_text_bytes });
        }
        if text.trim().is_empty() {
            return Err(ValidationError::EmptyBody);
        }
        if let Some(c) = text.chars().find(|&c| forbidden(c)) {
            return Err(ValidationError::ForbiddenChar(c as u32));
        }
        Ok(())
    }

    /// Checks a conversation title.
    pub fn check_title(&self, title: &str) -> Result<(), ValidationError> {
        if title.len() > self.max_title_bytes {
            return Err(ValidationError::Invalid {
                what: "title",
                why: format!("over {} bytes", self.max_title_bytes),
            });
        }
        if let Some(c) = title.chars().find(|&c| forbidden(c) || c == '\n') {
            return Err(ValidationError::ForbiddenChar(c as u32));
        }
        Ok(())
    }
}

/// Longest reaction in bytes (the longest emoji, a family or a flag with
/// skin tones and joiners, is well under it).
pub const MAX_EMOJI_BYTES: usize = 64;

/// Checks a reaction: exactly one emoji of the Unicode emoji list (with or
/// without its skin tone), at most [`MAX_EMOJI_BYTES`].
pub fn check_emoji(emoji: &str) -> Result<(), ValidationError> {
    if emoji.is_empty() {
        return Err(ValidationError::BadEmoji("empty"));
    }
    if emoji.len() > MAX_EMOJI_BYTES {
        return Err(ValidationError::BadEmoji("too long"));
    }
    if emojis::get(emoji).is_none() {
        return Err(ValidationError::BadEmoji("not a single known emoji"));
    }
    Ok(())
}

/// C0/C1 controls other than tab and newlines, DEL, and the bidi overrides
/// (U+202A-U+202E, U+2066-U+2069) that make text read differently from what it is.
fn forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Checks a display name: one line of text without control characters or
/// bidi overrides (a name is shown beside every message of its owner, so it
/// must read as what it is).
pub fn check_display_name(name: &str) -> Result<(), ValidationError> {
    match name.chars().find(|&c| forbidden(c) || matches!(c, '\n' | '\r' | '\t' | '\u{2028}' | '\u{2029}')) {
        Some(c) => Err(ValidationError::ForbiddenChar(c as u32)),
        None => Ok(()),
    }
}

/// Checks a user id: 1-64 bytes of `[A-Za-z0-9._@+-]`.
pub fn check_user_id(id: &str) -> Result<(), ValidationError> {
    check_token_chars(id, "user id", 64, |b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}

/// Checks an E2E device id: 1-64 bytes of `[A-Za-z0-9_-]`.
pub fn check_device_id(id: &str) -> Result<(), ValidationError> {
    check_token_chars(id, "device id", 64, |b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
}

/// Checks a client message id: 1-64 bytes of printable ASCII.
pub fn check_client_msg_id(id: &str) -> Result<(), ValidationError> {
    check_token_chars(id, "client_msg_id", 64, |b| b.is_ascii_graphic())
}

/// Checks a case id: 1-128 bytes of printable ASCII.
pub fn check_case_id(id: &str) -> Result<(), ValidationError> {
    check_token_chars(id, "case_id", 128, |b| b.is_ascii_graphic())
}

fn check_token_chars(id: &str, what: &'static str, max: usize, ok: impl Fn(u8) -> bool) -> Result<(), ValidationError> {
    if id.is_empty() {
        return Err(ValidationError::BadId { what, why: "empty" });
    }
    if id.len() > max {
        return Err(ValidationError::BadId { what, why: "too long" });
    }
    if !id.bytes().all(ok) {
        return Err(ValidationError::BadId { what, why: "has characters outside its alphabet" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_is_one_emoji() {
        for ok in ["👍", "❤️", "👍🏽", "🇩🇪", "👨‍👩‍👧"] {
            assert_eq!(check_emoji(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a", "👍👍", "👍 ", ":+1:", "x👍"] {
            let e = check_emoji(bad).unwrap_err();
            assert_eq!(e.to_wire().code, ErrorCode::InvalidEmoji, "{bad:?}");
        }
        assert!(matches!(check_emoji(&"👍".repeat(20)), Err(ValidationError::BadEmoji("too long"))));
    }

    #[test]
    fn text_limit_is_in_bytes() {
        let l = Limits::default();
        assert!(l.check_text(&"a".repeat(10 * 1024)).is_ok());
        assert_eq!(
            l.check_text(&"a".repeat(10 * 1024 + 1)),
            Err(ValidationError::TextTooLong { len: 10 * 1024 + 1, max: 10 * 1024 })
        );
        // 3-byte characters: 3414 * 3 = 10242 bytes.
        assert!(matches!(l.check_text(&"€".repeat(3414)), Err(ValidationError::TextTooLong { .. })));
    }

    #[test]
    fn markup_is_text_but_controls_are_refused() {
        let l = Limits::default();
        assert!(l.check_text("<script>alert(1)</script> and x < y").is_ok());
        assert!(l.check_text("line one\nline two\ttab").is_ok());
        assert_eq!(l.check_text("nul\0"), Err(ValidationError::ForbiddenChar(0)));
        assert_eq!(l.check_text("evil\u{202e}fdp.exe"), Err(ValidationError::ForbiddenChar(0x202e)));
        assert_eq!(l.check_text("   \n"), Err(ValidationError::EmptyBody));
    }

    #[test]
    fn ids() {
        assert!(check_user_id("alice.smith@firm-1").is_ok());
        assert!(check_user_id("").is_err());
        assert!(check_user_id("a b").is_err());
        assert!(check_user_id(&"x".repeat(65)).is_err());
        assert!(check_client_msg_id("0190a5b2-7c1e-7000-8000-000000000001").is_ok());
        assert!(check_client_msg_id("tab\there").is_err());
    }
}
