//! Secrets kept out of sight: what a redacted secret shows and the
//! redaction of credentials in URLs (`Config::redacted` uses both).

/// What [`Config::redacted`] shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// A URL with its credentials (`user:password@`) replaced by [`REDACTED`].
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{REDACTED}{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_string(),
    }
}
