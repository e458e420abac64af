//! The rules of OpenID Connect token verification, sans-IO: the provider's
//! key set (JWKS, by `kid`), checking a token against it (signature, `iss`,
//! `aud`, `exp`/`nbf` with leeway), mapping its claims to an [`Identity`],
//! and when an unknown `kid` may fetch the keys again. The fetching itself
//! is in `oidc_keys`.

use super::identity::{Identity, parse_role};
use crate::config::OidcConfig;
use chat_protocol::WireError;
use chat_protocol::v1::{ErrorCode, Role};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// An unknown `kid` fetches the keys again at most this often.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// The provider's signing keys, by key id.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").field("kids", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl KeySet {
    /// Parses a JWKS document; keys without a `kid`, of another use than
    /// signing, or of an unsupported type are skipped.
    pub fn from_jwks(json: &[u8]) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| format!("the JWKS is not a key set: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature) {
                continue;
            }
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                AlgorithmParameters::OctetKey(_) => continue,
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, alg));
            }
        }
        if keys.is_empty() {
            return Err("the JWKS holds no usable signing key (RS256, ES256 or EdDSA with a kid)".into());
        }
        Ok(Self { keys })
    }

    /// The key ids held.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.keys().map(String::as_str).collect()
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Signed with a key id not in the set: fetch the keys again and retry.
    UnknownKid(String),
    /// Refused for good, with the reason for the client.
    Refused(WireError),
}

fn refused(code: ErrorCode, msg: impl Into<String>) -> Refusal {
    Refusal::Refused(WireError::new(code, msg))
}

/// The error for a key id still unknown after the keys were fetched again.
pub fn unknown_kid_error(kid: &str) -> WireError {
    WireError::new(
        ErrorCode::Unauthenticated,
        format!("token key id {kid:?} is not among the identity provider's signing keys"),
    )
}

/// Checks `token` against `keys` under `cfg`; `leeway` seconds on `exp`/`nbf`,
/// tokens valid for longer than `max_lifetime` seconds from `now` refused.
pub fn check(
    keys: &KeySet,
    cfg: &OidcConfig,
    token: &str,
    leeway: u64,
    max_lifetime: u64,
    now: u64,
) -> Result<Identity, Refusal> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| refused(ErrorCode::Unauthenticated, format!("malformed token: {e}")))?;
    let Some(kid) = header.kid else {
        return Err(refused(ErrorCode::Unauthenticated, "token has no key id (kid)"));
    };
    let Some((key, alg)) = keys.keys.get(&kid) else { return Err(Refusal::UnknownKid(kid)) };
    if header.alg != *alg {
        return Err(refused(ErrorCode::Unauthenticated, "token algorithm does not match its key"));
    }
    let mut v = Validation::new(*alg);
    v.leeway = leeway;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&[&cfg.client_id]);
    // `exp` and `nbf` are checked below against `now` (jsonwebtoken reads the clock).
    v.validate_exp = false;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &v).map_err(|e| {
        let msg = match e.kind() {
            ErrorKind::InvalidSignature => "token signature is invalid".to_string(),
            ErrorKind::InvalidIssuer => "token issuer is not accepted".to_string(),
            ErrorKind::InvalidAudience => "token audience is not accepted".to_string(),
            ErrorKind::ImmatureSignature => "token is not valid yet".to_string(),
            ErrorKind::MissingRequiredClaim(c) => format!("token lacks the {c} claim"),
            _ => format!("malformed token: {e}"),
        };
        refused(ErrorCode::Unauthenticated, msg)
    })?;
    let c = data.claims;
    let exp = c
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or_else(|| refused(ErrorCode::Unauthenticated, "token exp is not a number"))?;
    if exp.saturating_add(leeway) < now {
        return Err(refused(ErrorCode::TokenExpired, "token expired"));
    }
    if let Some(nbf) = c.get("nbf").and_then(Value::as_u64)
        && nbf > now.saturating_add(leeway)
    {
        return Err(refused(ErrorCode::Unauthenticated, "token is not valid yet"));
    }
    if exp > now.saturating_add(max_lifetime) {
        return Err(refused(
            ErrorCode::Unauthenticated,
            "token lifetime is over what this server accepts (auth.max_token_lifetime_secs)",
        ));
    }
    identity(&c, cfg, exp)
}

/// Maps verified claims to who the user is.
fn identity(c: &Map<String, Value>, cfg: &OidcConfig, exp: u64) -> Result<Identity, Refusal> {
    let sub = c.get("sub").and_then(Value::as_str).unwrap_or_default().to_string();
    chat_protocol::limits::check_user_id(&sub)
        .map_err(|e| refused(ErrorCode::Unauthenticated, format!("token subject: {e}")))?;
    let role = role_of(c.get(&cfg.role_claim), cfg).ok_or_else(|| {
        refused(
            ErrorCode::Unauthenticated,
            format!(
                "token claim {:?} names no role this server knows, and auth.oidc.default_role is empty",
                cfg.role_claim
            ),
        )
    })?;
    let name = c.get(&cfg.name_claim).and_then(Value::as_str).unwrap_or_default();
    chat_protocol::limits::check_display_name(name)
        .map_err(|e| refused(ErrorCode::Unauthenticated, format!("token name: {e}")))?;
    let display_name = if name.trim().is_empty() { sub.clone() } else { name.chars().take(128).collect() };
    Ok(Identity { user_id: sub, display_name, role, expires_at: exp })
}

/// The role a claim (a string or a list of strings) names, through
/// `cfg.roles`; the first one known wins; else the default role.
fn role_of(claim: Option<&Value>, cfg: &OidcConfig) -> Option<Role> {
    let names: Vec<&str> = match claim {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    names
        .iter()
        .find_map(|n| parse_role(cfg.roles.get(*n).map_or(n, String::as_str)))
        .or_else(|| parse_role(&cfg.default_role))
}

/// When an unknown key id may fetch the keys again (at most once per
/// [`MIN_REFETCH_INTERVAL`]), so a stream of forged kids cannot hammer the provider.
#[derive(Debug, Default)]
pub struct RefetchGate {
    last: Option<Instant>,
}

impl RefetchGate {
    /// Whether to fetch now (and if so, the fetch is counted).
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|l| now.duration_since(l) < MIN_REFETCH_INTERVAL) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// The public JWK (`OKP`, `Ed25519`, for signing) of a raw Ed25519 public
/// key: what a provider's JWKS lists (tests serve keys with it).
pub fn ed25519_jwk(kid: &str, public_raw: &[u8]) -> Value {
    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid, "x": base64url(public_raw)})
}

/// Unpadded base64url.
pub fn base64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
#[path = "oidc_tests.rs"]
mod tests;
