//! The `[auth.oidc]` section: sign-in with the firm's OpenID Connect
//! identity provider — its issuer, the client id its tokens are made for,
//! the claims that carry the display name and role, and how often its keys
//! are fetched again.

use super::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sign-in with an OpenID Connect provider (off unless `issuer` is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The issuer URL (`iss` of its tokens); its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`. HTTPS; plain `http://`
    /// only for a loopback issuer (tests).
    pub issuer: String,
    /// The client id registered at the provider for the web app: the
    /// required `aud` of tokens (a public client, PKCE).
    pub client_id: String,
    /// What the sign-in button calls the provider ("Sign in with ...").
    /// Default "your identity provider".
    pub display_name: String,
    /// Scopes the web app asks for. Default "openid profile offline_access".
    pub scopes: String,
    /// The claim with the user's role (a string or a list). Default "role".
    pub role_claim: String,
    /// Provider role names mapped to `advocate`, `client` or `admin`; the
    /// names themselves count too. Default: none.
    pub roles: BTreeMap<String, String>,
    /// The role of a user whose token carries no known role. Default
    /// "client"; empty: such users are refused.
    pub default_role: String,
    /// The claim with the display name. Default "name".
    pub name_claim: String,
    /// The keys (JWKS) are fetched again this often, seconds. Default 3600.
    /// A token with an unknown key id also fetches them (at most every 30 s).
    pub jwks_refresh_secs: u64,
    /// Whether development tokens (HS256, `chatd token`) are still accepted
    /// beside the provider's. Default false.
    pub allow_dev_tokens: bool,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            display_name: "your identity provider".into(),
            scopes: "openid profile offline_access".into(),
            role_claim: "role".into(),
            roles: BTreeMap::new(),
            default_role: "client".into(),
            name_claim: "name".into(),
            jwks_refresh_secs: 3600,
            allow_dev_tokens: false,
        }
    }
}

impl OidcConfig {
    /// Whether sign-in with a provider is configured.
    pub fn enabled(&self) -> bool {
        !self.issuer.is_empty()
    }

    /// Refuses an unusable section, or one beside `auth.public_key`.
    pub fn check(&self, public_key: bool) -> Result<(), ConfigError> {
        if public_key && self.enabled() {
            return Err(ConfigError::Inconsistent(
                "set auth.public_key or auth.oidc.issuer, not both (the provider's keys come from its JWKS)".into(),
            ));
        }
        self.problem().map_or(Ok(()), |p| Err(ConfigError::Inconsistent(p)))
    }

    /// Why this section cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if !self.enabled() {
            return None;
        }
        let roles = ["advocate", "client", "admin"];
        if self.client_id.is_empty() {
            return Some("auth.oidc.client_id is required with auth.oidc.issuer".into());
        }
        if !(self.issuer.starts_with("https://") || is_loopback_http(&self.issuer)) {
            return Some(format!(
                "auth.oidc.issuer {:?} must be https:// (plain http:// only for a loopback issuer)",
                self.issuer
            ));
        }
        if let Some((k, v)) = self.roles.iter().find(|(_, v)| !roles.contains(&v.as_str())) {
            return Some(format!("auth.oidc.roles.{k} = {v:?} is not advocate, client or admin"));
        }
        if !self.default_role.is_empty() && !roles.contains(&self.default_role.as_str()) {
            return Some(format!(
                "auth.oidc.default_role {:?} is not advocate, client, admin or empty",
                self.default_role
            ));
        }
        if self.jwks_refresh_secs < 30 {
            return Some("auth.oidc.jwks_refresh_secs must be at least 30".into());
        }
        None
    }
}

/// Whether `url` is `http://` to localhost or a loopback address.
pub fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_must_be_https_but_for_loopback() {
        let c = |issuer: &str| OidcConfig { issuer: issuer.into(), client_id: "chat".into(), ..OidcConfig::default() };
        assert_eq!(c("https://id.firm.example").problem(), None);
        assert_eq!(c("http://127.0.0.1:4000").problem(), None);
        assert_eq!(c("http://[::1]:4000/oidc").problem(), None);
        assert_eq!(c("http://localhost:4000").problem(), None);
        assert!(c("http://id.firm.example").problem().unwrap().contains("https://"));
        assert!(c("http://127.0.0.1.evil.example").problem().unwrap().contains("https://"));
        let bad_role = OidcConfig { roles: [("Partner".into(), "boss".into())].into(), ..c("https://id.example") };
        assert!(bad_role.problem().unwrap().contains("auth.oidc.roles.Partner"));
        let no_client = OidcConfig { client_id: String::new(), ..c("https://id.example") };
        assert!(no_client.problem().unwrap().contains("client_id"));
        assert_eq!(OidcConfig::default().problem(), None, "off by default");
    }
}
