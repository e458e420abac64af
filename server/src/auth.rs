//! Token verification (and minting of dev tokens): a JWT in `Hello.token`
//! with the user id (`sub`), display name (`name`) and role (`role`:
//! `advocate`, `client` or `admin`). HS256 with a shared secret in development,
//! RS256 or EdDSA with a public key in production, or the keys of the
//! firm's OpenID Connect provider (`oidc`, `oidc_keys`).

mod identity;
pub mod oidc;
pub mod oidc_keys;

pub use identity::{Identity, parse_role};

use crate::config::{AuthConfig, Config};
use chat_protocol::WireError;
use chat_protocol::v1::ErrorCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// The claims we read and write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Display name (defaults to the id).
    #[serde(default)]
    pub name: String,
    /// "advocate", "client" or "admin".
    pub role: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Verifies tokens against the configured key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// Longest remaining lifetime accepted, seconds (plus the leeway).
    max_lifetime: u64,
    /// The identity provider's keys, with `[auth.oidc]`.
    oidc: Option<oidc_keys::OidcKeys>,
    /// Whether HS256 development tokens are accepted beside the provider's.
    dev_tokens: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("algorithms", &self.validation.algorithms).finish()
    }
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The public key file could not be read.
    #[error("cannot read public key {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key or algorithm is not usable.
    #[error("bad auth key: {0}")]
    Key(String),
    /// The identity provider's discovery document or keys could not be fetched.
    #[error("identity provider (auth.oidc): {0}")]
    Oidc(String),
}

impl Verifier {
    /// Builds a verifier from config.
    pub fn new(cfg: &AuthConfig) -> Result<Self, AuthSetupError> {
        let (key, alg) = match &cfg.public_key {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|source| AuthSetupError::Read { path: path.display().to_string(), source })?;
                match cfg.public_key_alg.as_str() {
                    "RS256" => (
                        DecodingKey::from_rsa_pem(&pem).map_err(|e| AuthSetupError::Key(e.to_string()))?,
                        Algorithm::RS256,
                    ),
                    "EdDSA" => (
                        DecodingKey::from_ed_pem(&pem).map_err(|e| AuthSetupError::Key(e.to_string()))?,
                        Algorithm::EdDSA,
                    ),
                    other => {
                        return Err(AuthSetupError::Key(format!(
                            "unsupported public_key_alg {other:?} (RS256 or EdDSA)"
                        )));
                    }
                }
            }
            None => {
                if cfg.hs256_secret.len() < 16 {
                    return Err(AuthSetupError::Key("auth.hs256_secret must be at least 16 bytes".into()));
                }
                (DecodingKey::from_secret(cfg.hs256_secret.as_bytes()), Algorithm::HS256)
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = cfg.leeway_secs;
        validation.validate_nbf = true;
        if cfg.public_key.is_some() {
            // An identity provider's tokens: only those it made for this server.
            if cfg.issuer.is_none() || cfg.audience.is_none() {
                return Err(AuthSetupError::Key("auth.public_key needs auth.issuer and auth.audience".into()));
            }
            validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        } else {
            validation.set_required_spec_claims(&["exp", "sub"]);
        }
        validation.validate_aud = cfg.audience.is_some();
        if let Some(aud) = &cfg.audience {
            validation.set_audience(&[aud]);
        }
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
        }
        let oidc = match cfg.oidc.enabled() {
            true => Some(oidc_keys::OidcKeys::start(&cfg.oidc).map_err(AuthSetupError::Oidc)?),
            false => None,
        };
        let dev_tokens = oidc.is_none() || cfg.oidc.allow_dev_tokens;
        let max_lifetime = cfg.max_token_lifetime_secs.saturating_add(cfg.leeway_secs);
        Ok(Self { key, validation, max_lifetime, oidc, dev_tokens })
    }

    /// The identity provider's keys and discovery document, with `[auth.oidc]`.
    pub fn oidc(&self) -> Option<&oidc_keys::OidcKeys> {
        self.oidc.as_ref()
    }

    /// Whether development tokens are accepted.
    pub fn dev_tokens(&self) -> bool {
        self.dev_tokens
    }

    /// Verifies a token: the identity, or the precise reason it is refused.
    /// A provider's token with an unknown key id waits briefly for its keys.
    pub async fn verify(&self, token: &str) -> Result<Identity, WireError> {
        let Some(o) = &self.oidc else { return self.verify_static(token) };
        let hs256 = jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == Algorithm::HS256);
        if hs256 && self.dev_tokens {
            return self.verify_static(token);
        }
        if token.is_empty() {
            return Err(WireError::new(ErrorCode::Unauthenticated, "missing token"));
        }
        o.verify(token, self.validation.leeway, self.max_lifetime).await
    }

    /// Verifies a token against the configured secret or public key.
    pub fn verify_static(&self, token: &str) -> Result<Identity, WireError> {
        if token.is_empty() {
            return Err(WireError::new(ErrorCode::Unauthenticated, "missing token"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => WireError::new(ErrorCode::TokenExpired, "token expired"),
            ErrorKind::InvalidSignature => WireError::new(ErrorCode::Unauthenticated, "token signature is invalid"),
            ErrorKind::InvalidAlgorithm => {
                WireError::new(ErrorCode::Unauthenticated, "token algorithm is not accepted")
            }
            ErrorKind::ImmatureSignature => WireError::new(ErrorCode::Unauthenticated, "token is not valid yet"),
            ErrorKind::InvalidIssuer => WireError::new(ErrorCode::Unauthenticated, "token issuer is not accepted"),
            ErrorKind::InvalidAudience => WireError::new(ErrorCode::Unauthenticated, "token audience is not accepted"),
            ErrorKind::MissingRequiredClaim(c) => {
                WireError::new(ErrorCode::Unauthenticated, format!("token lacks the {c} claim"))
            }
            _ => WireError::new(ErrorCode::Unauthenticated, format!("malformed token: {e}")),
        })?;
        let c = data.claims;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        if c.exp > now.saturating_add(self.max_lifetime) {
            return Err(WireError::new(
                ErrorCode::Unauthenticated,
                format!(
                    "token lifetime of {} s is over the {} s this server accepts (auth.max_token_lifetime_secs)",
                    c.exp - now,
                    self.max_lifetime - self.validation.leeway
                ),
            ));
        }
        chat_protocol::limits::check_user_id(&c.sub)
            .map_err(|e| WireError::new(ErrorCode::Unauthenticated, format!("token subject: {e}")))?;
        let role = parse_role(&c.role).ok_or_else(|| {
            WireError::new(
                ErrorCode::Unauthenticated,
                format!("token role {:?} is not advocate, client or admin", c.role),
            )
        })?;
        chat_protocol::limits::check_display_name(&c.name)
            .map_err(|e| WireError::new(ErrorCode::Unauthenticated, format!("token name: {e}")))?;
        let display_name = if c.name.trim().is_empty() { c.sub.clone() } else { c.name.chars().take(128).collect() };
        Ok(Identity { user_id: c.sub, display_name, role, expires_at: c.exp })
    }
}

/// Where the per-data-directory development secret lives.
pub fn dev_secret_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("auth").join("dev-hs256.secret")
}

/// With no key configured (no `auth.public_key`, empty `auth.hs256_secret`),
/// puts this data directory's random development secret into `cfg`, making
/// it on first use (32 random bytes as hex, directory 0700, file 0600). So a
/// default install never accepts tokens signed with a secret anyone knows, and
/// `chatd token` on the same data directory mints tokens `chatd serve` accepts.
/// Returns the file used, if any.
pub fn resolve_dev_secret(cfg: &mut Config) -> Result<Option<std::path::PathBuf>, AuthSetupError> {
    if cfg.auth.public_key.is_some() || !cfg.auth.hs256_secret.is_empty() {
        return Ok(None);
    }
    let path = dev_secret_path(&cfg.data_dir);
    let io = |source| AuthSetupError::Read { path: path.display().to_string(), source };
    let secret =
        crate::files::secret_file(&path, || hex::encode(rand::random::<[u8; 32]>()).into_bytes()).map_err(io)?;
    let secret = String::from_utf8_lossy(&secret).trim().to_string();
    if secret.len() < 16 {
        return Err(AuthSetupError::Key(format!(
            "{} holds fewer than 16 bytes; delete it to make a new one",
            path.display()
        )));
    }
    cfg.auth.hs256_secret = secret;
    Ok(Some(path))
}

/// Mints an HS256 token (development and tests).
pub fn mint_hs256(secret: &str, user: &str, name: &str, role: &str, ttl: Duration) -> String {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let claims = Claims {
        sub: user.into(),
        name: name.into(),
        role: role.into(),
        exp: now + ttl.as_secs(),
        iat: now,
        iss: None,
        aud: None,
    };
    mint_claims(secret, &claims)
}

/// Mints an HS256 token with exactly these claims (tests use it for expired tokens).
pub fn mint_claims(secret: &str, claims: &Claims) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::v1::Role;

    fn verifier() -> Verifier {
        Verifier::new(&AuthConfig { hs256_secret: crate::config::PUBLIC_DEV_SECRET.into(), ..AuthConfig::default() })
            .unwrap()
    }

    #[test]
    fn the_dev_secret_is_random_per_data_directory_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let cfg_in = |d: &tempfile::TempDir| Config { data_dir: d.path().into(), ..Config::default() };
        let (mut ca, mut cb) = (cfg_in(&a), cfg_in(&b));
        let file = resolve_dev_secret(&mut ca).unwrap().expect("made for an unconfigured install");
        resolve_dev_secret(&mut cb).unwrap();
        assert!(ca.auth.hs256_secret.len() >= 32 && ca.auth.hs256_secret != cb.auth.hs256_secret);
        assert_ne!(ca.auth.hs256_secret, crate::config::PUBLIC_DEV_SECRET);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        // The same directory gives the same secret (serve and token agree).
        let mut again = cfg_in(&a);
        resolve_dev_secret(&mut again).unwrap();
        assert_eq!(again.auth.hs256_secret, ca.auth.hs256_secret);
        // A token signed with the public secret is refused by a default install.
        let v = Verifier::new(&ca.auth).unwrap();
        let forged = mint_hs256(crate::config::PUBLIC_DEV_SECRET, "mallory", "", "admin", Duration::from_secs(60));
        assert_eq!(v.verify_static(&forged).unwrap_err().code, ErrorCode::Unauthenticated);
        // A configured secret is left alone.
        let mut set = cfg_in(&a);
        set.auth.hs256_secret = "a-configured-secret-0123".into();
        assert_eq!(resolve_dev_secret(&mut set).unwrap(), None);
        assert_eq!(set.auth.hs256_secret, "a-configured-secret-0123");
    }

    #[test]
    fn good_token() {
        let t = mint_hs256(crate::config::PUBLIC_DEV_SECRET, "alice", "Alice A.", "advocate", Duration::from_secs(60));
        let id = verifier().verify_static(&t).unwrap();
        assert_eq!((id.user_id.as_str(), id.display_name.as_str(), id.role), ("alice", "Alice A.", Role::Advocate));
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert!((now + 59..=now + 61).contains(&id.expires_at), "the session ends with the token");
    }

    #[test]
    fn eddsa_public_key_tokens() {
        // Production: the identity provider signs with its private key; chatd holds the public one.
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pub_path = dir.path().join("idp.pub.pem");
        std::fs::write(&pub_path, key.public_key_pem()).unwrap();
        let cfg = AuthConfig {
            public_key: Some(pub_path.clone()),
            public_key_alg: "EdDSA".into(),
            issuer: Some("https://id.firm.example".into()),
            audience: Some("chat".into()),
            ..AuthConfig::default()
        };
        let v = Verifier::new(&cfg).unwrap();
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let claims = Claims {
            sub: "carol".into(),
            name: "Carol".into(),
            role: "client".into(),
            exp: now + 60,
            iat: now,
            iss: Some("https://id.firm.example".into()),
            aud: Some("chat".into()),
        };
        let sign = |c: &Claims| {
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), c, &EncodingKey::from_ed_der(&key.serialize_der()))
                .unwrap()
        };
        assert_eq!(v.verify_static(&sign(&claims)).unwrap().role, Role::Client);
        // Made for another application, by another issuer, or with neither: refused.
        let other_app = Claims { aud: Some("payroll".into()), ..claims.clone() };
        assert!(v.verify_static(&sign(&other_app)).unwrap_err().message.contains("audience"));
        let other_iss = Claims { iss: Some("https://evil.example".into()), ..claims.clone() };
        assert!(v.verify_static(&sign(&other_iss)).unwrap_err().message.contains("issuer"));
        let bare = Claims { aud: None, iss: None, ..claims.clone() };
        assert!(v.verify_static(&sign(&bare)).unwrap_err().message.contains("lacks"));
        // And no public-key verifier without an issuer and audience to require.
        let lax = AuthConfig { public_key: Some(pub_path), public_key_alg: "EdDSA".into(), ..AuthConfig::default() };
        assert!(Verifier::new(&lax).is_err());
        // An HS256 token signed with the dev secret is not accepted by a public-key verifier.
        let hs = mint_hs256(crate::config::PUBLIC_DEV_SECRET, "carol", "", "admin", Duration::from_secs(60));
        assert_eq!(v.verify_static(&hs).unwrap_err().code, ErrorCode::Unauthenticated);
    }

    #[test]
    fn refusals_are_precise() {
        let v = verifier();
        assert_eq!(v.verify_static("").unwrap_err().code, ErrorCode::Unauthenticated);
        assert_eq!(v.verify_static("not.a.jwt").unwrap_err().code, ErrorCode::Unauthenticated);
        let forged = mint_hs256("another-secret-of-16+", "alice", "", "admin", Duration::from_secs(60));
        assert!(v.verify_static(&forged).unwrap_err().message.contains("signature"));
        let old = Claims {
            sub: "alice".into(),
            name: String::new(),
            role: "client".into(),
            exp: 1_000,
            iat: 0,
            iss: None,
            aud: None,
        };
        assert_eq!(
            v.verify_static(&mint_claims(crate::config::PUBLIC_DEV_SECRET, &old)).unwrap_err().code,
            ErrorCode::TokenExpired
        );
        let bad_role = mint_hs256(crate::config::PUBLIC_DEV_SECRET, "alice", "", "judge", Duration::from_secs(60));
        assert!(v.verify_static(&bad_role).unwrap_err().message.contains("judge"));
    }

    #[test]
    fn lifetime_not_before_and_names_are_checked() {
        let v = verifier();
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let forever = mint_hs256(
            crate::config::PUBLIC_DEV_SECRET,
            "alice",
            "",
            "admin",
            Duration::from_secs(8_000 * 365 * 86400),
        );
        let e = v.verify_static(&forever).unwrap_err();
        assert!(e.message.contains("max_token_lifetime_secs"), "an exp in year 9999 is refused: {e:?}");
        let week = mint_hs256(crate::config::PUBLIC_DEV_SECRET, "alice", "", "admin", Duration::from_secs(7 * 86400));
        v.verify_static(&week).expect("the default maximum is a week");
        // nbf in the future (beyond the leeway) is refused, in the past accepted.
        #[derive(Serialize)]
        struct WithNbf<'a> {
            sub: &'a str,
            role: &'a str,
            exp: u64,
            nbf: u64,
        }
        let nbf = |at: u64| {
            let c = WithNbf { sub: "alice", role: "client", exp: now + 600, nbf: at };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &c,
                &EncodingKey::from_secret(crate::config::PUBLIC_DEV_SECRET.as_bytes()),
            )
            .unwrap()
        };
        assert!(v.verify_static(&nbf(now + 300)).unwrap_err().message.contains("not valid yet"));
        v.verify_static(&nbf(now - 10)).unwrap();
        // Names are one line of plain text.
        for bad in ["Eve\u{202e}gnp.exe", "Eve\nAdmin: approved", "Eve\u{0}"] {
            let t = mint_hs256(crate::config::PUBLIC_DEV_SECRET, "eve", bad, "client", Duration::from_secs(60));
            assert!(v.verify_static(&t).unwrap_err().message.contains("token name"), "{bad:?}");
        }
    }
}
