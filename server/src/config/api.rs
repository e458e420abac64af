//! The `[api]` section: the server-to-server API under `/api/v1` on the web
//! endpoint (service accounts' requests per minute, body size), the
//! delivery of their event webhooks, the firm's time zone for transcripts,
//! and the link from a case conversation to the firm's case-management system.

use serde::{Deserialize, Serialize};

/// The server API and the case links the apps show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Requests per minute per service account (per node). Default 600.
    pub requests_per_minute: u32,
    /// Largest request body, bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// The case-management system's page of a case, `{case_id}` replaced by
    /// the (URL-encoded) case id, e.g. `https://cms.example/matters/{case_id}`;
    /// the apps link a case conversation's case id there. Empty (default): no link.
    pub case_link: String,
    /// Webhook events waiting to be matched on one node; beyond, dropped
    /// and counted. Default 4096.
    pub webhook_queue: usize,
    /// Attempts per webhook event (exponential backoff from 1 s, capped at
    /// 60 s). Default 6.
    pub webhook_attempts: u32,
    /// How long one webhook request may take, ms. Default 5000.
    pub webhook_timeout_ms: u64,
    /// Accept `http://` webhook URLs (a test receiver); else only
    /// `https://` (events may carry privileged metadata). Default false.
    pub webhook_allow_http: bool,
    /// Accept webhook receivers inside the network (loopback, private,
    /// link-local addresses; checked again at each delivery, after the
    /// name is resolved); else only public ones. Default false.
    pub webhook_allow_private: bool,
    /// The firm's time zone (IANA name, e.g. `Europe/Berlin`): the times
    /// of transcripts. Default `UTC`.
    pub time_zone: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            max_body_bytes: 1 << 20,
            case_link: String::new(),
            webhook_queue: 4096,
            webhook_attempts: 6,
            webhook_timeout_ms: 5_000,
            webhook_allow_http: false,
            webhook_allow_private: false,
            time_zone: "UTC".into(),
        }
    }
}

impl ApiConfig {
    /// The firm's time zone.
    pub fn tz(&self) -> Result<jiff::tz::TimeZone, String> {
        jiff::tz::TimeZone::get(&self.time_zone)
            .map_err(|e| format!("time_zone {:?} is not a time zone name (e.g. Europe/Berlin): {e}", self.time_zone))
    }

    /// Why this section cannot run, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.requests_per_minute == 0 {
            return Err("requests_per_minute must be at least 1".into());
        }
        self.tz()?;
        if self.webhook_attempts == 0 || self.webhook_timeout_ms == 0 {
            return Err("webhook_attempts and webhook_timeout_ms must be at least 1".into());
        }
        if !(1024..=16 << 20).contains(&self.max_body_bytes) {
            return Err("max_body_bytes must be between 1 KiB and 16 MiB".into());
        }
        let link = &self.case_link;
        if !link.is_empty()
            && (!link.starts_with("https://") && !link.starts_with("http://") || !link.contains("{case_id}"))
        {
            return Err(format!("case_link must be an http(s) URL with {{case_id}} in it, not {link:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_links_and_limits_are_checked() {
        assert!(ApiConfig::default().check().is_ok());
        let link = |l: &str| ApiConfig { case_link: l.into(), ..Default::default() }.check();
        assert!(link("https://cms.example/matters/{case_id}").is_ok());
        assert!(link("https://cms.example/matters/").unwrap_err().contains("{case_id}"));
        assert!(link("javascript:alert({case_id})").unwrap_err().contains("http(s)"));
        assert!(ApiConfig { requests_per_minute: 0, ..Default::default() }.check().is_err());
        assert!(ApiConfig { max_body_bytes: 10, ..Default::default() }.check().is_err());
        assert!(ApiConfig { time_zone: "Europe/Berlin".into(), ..Default::default() }.check().is_ok());
        let bad = ApiConfig { time_zone: "Mars/Olympus".into(), ..Default::default() }.check();
        assert!(bad.unwrap_err().contains("Mars/Olympus"));
    }
}
