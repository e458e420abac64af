//! Secrets kept out of sight: what a redacted secret shows and the
//! redaction of credentials in URLs (`Config::redacted` uses both).

use super::Config;

/// What [`Config::redacted`] shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// A URL with its credentials (`user:password@`) replaced by [`REDACTED`].
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{REDACTED}{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_string(),
    }
}

impl Config {
    /// The configuration with its secrets replaced by [`REDACTED`], to show
    /// (`chatd config`) or log.
    pub fn redacted(&self) -> Self {
        let mut c = self.clone();
        if !c.auth.hs256_secret.is_empty() {
            c.auth.hs256_secret = REDACTED.into();
        }
        if c.store.scylla.password.is_some() {
            c.store.scylla.password = Some(REDACTED.into());
        }
        c.cluster.redis_url = redact_url(&c.cluster.redis_url);
        if !c.cluster.secret.is_empty() {
            c.cluster.secret = REDACTED.into();
        }
        if !c.cluster.redis_password.is_empty() {
            c.cluster.redis_password = REDACTED.into();
        }
        if !c.notify.secret.is_empty() {
            c.notify.secret = REDACTED.into();
        }
        c.notify.webhook_url = redact_url(&c.notify.webhook_url);
        if !c.encryption.master_key.is_empty() {
            c.encryption.master_key = REDACTED.into();
        }
        c
    }
}
