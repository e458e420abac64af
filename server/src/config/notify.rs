//! The `[notify]` section: the offline-notification webhook (off unless
//! `webhook_url` is set).

use serde::{Deserialize, Serialize};

/// Where and how members with no connected device are told of new messages.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The receiver (`http://` or `https://`; system roots). Empty (default): off.
    pub webhook_url: String,
    /// The HMAC-SHA256 key the requests are signed with, at least 32 bytes
    /// (better from the environment: `CHAT_NOTIFY__SECRET`).
    pub secret: String,
    /// Put the message's text in the payload. Default false: conversation,
    /// sender and unread count only.
    pub include_content: bool,
    /// At most one notification per member per conversation in this many
    /// seconds. Default 30.
    pub debounce_secs: u64,
    /// Conversations with more members than this notify nobody (a firm-wide
    /// room is not a reason to page everyone). Default 50.
    pub max_members: usize,
    /// Notifications waiting to be sent on one node; beyond, dropped and
    /// counted. Default 1024.
    pub queue: usize,
    /// Attempts per notification (exponential backoff from 1 s, capped at
    /// 60 s). Default 6.
    pub max_attempts: u32,
    /// How long one request may take, ms. Default 5000.
    pub timeout_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhook_url: String::new(),
            secret: String::new(),
            include_content: false,
            debounce_secs: 30,
            max_members: 50,
            queue: 1024,
            max_attempts: 6,
            timeout_ms: 5_000,
        }
    }
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("webhook_url", &self.webhook_url)
            .field("secret", &if self.secret.is_empty() { "" } else { "<set>" })
            .field("include_content", &self.include_content)
            .field("debounce_secs", &self.debounce_secs)
            .field("max_members", &self.max_members)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl NotifyConfig {
    /// Whether the webhook is on.
    pub fn enabled(&self) -> bool {
        !self.webhook_url.is_empty()
    }

    /// Why this section cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let url = self.webhook_url.to_ascii_lowercase();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("webhook_url must be http:// or https://, not {:?}", self.webhook_url));
        }
        if self.secret.len() < 32 {
            return Err("secret must be at least 32 bytes (openssl rand -hex 32)".into());
        }
        if self.queue == 0 || self.max_attempts == 0 || self.timeout_ms == 0 {
            return Err("queue, max_attempts and timeout_ms must be at least 1".into());
        }
        Ok(())
    }
}
