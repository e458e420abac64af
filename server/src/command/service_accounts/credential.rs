//! Service-account credentials (sans-IO): their format
//! `chatd_sa_<id>_<64 hex>`, making one, reading one from an
//! `Authorization: Bearer` header, and checking its secret against the
//! stored SHA-256 in constant time. A credential is shown once, at creation
//! or rotation; the server keeps only the hash.

use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

/// What every credential starts with (so that secret scanners can find a leaked one).
pub const PREFIX: &str = "chatd_sa_";
/// Longest service-account id.
pub const MAX_ID: usize = 32;

/// A credential as presented: the account's id and the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The service account's id.
    pub id: String,
    /// The secret (64 hex characters).
    pub secret: String,
}

/// Why a service-account id is not acceptable, if it is not: 1-32 bytes of
/// `a-z`, `0-9` and `-`.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID {
        return Err(format!("a service account id is 1-{MAX_ID} bytes"));
    }
    if !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err("a service account id is made of a-z, 0-9 and '-'".into());
    }
    Ok(())
}

/// The user id a service account acts as in conversations: `svc:<id>`
/// (a `:` no token's user id can have, so no person can be it).
pub fn user_id(id: &str) -> String {
    format!("svc:{id}")
}

/// A new credential for `id` from 32 random bytes: the text to hand out
/// once and the hex SHA-256 to store.
pub fn make(id: &str, random: [u8; 32]) -> (String, String) {
    let secret = hex::encode(random);
    let hash = hash(&secret);
    (format!("{PREFIX}{id}_{secret}"), hash)
}

/// Hex SHA-256 of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(digest(&SHA256, secret.as_bytes()))
}

/// Reads a credential from an `Authorization` header value (`Bearer …`).
pub fn parse(authorization: &str) -> Option<Presented> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (id, secret) = rest.trim().strip_prefix(PREFIX)?.split_once('_')?;
    check_id(id).ok()?;
    let hex_ok = secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex_ok.then(|| Presented { id: id.to_owned(), secret: secret.to_owned() })
}

/// Whether `secret` is the one whose hex SHA-256 is `stored` (constant time).
pub fn matches(secret: &str, stored: &str) -> bool {
    let Ok(stored) = hex::decode(stored) else { return false };
    let computed = digest(&SHA256, secret.as_bytes());
    computed.as_ref().ct_eq(&stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_credential_reads_back_and_matches_only_its_hash() {
        let (text, stored) = make("cms-1", [7; 32]);
        assert!(text.starts_with("chatd_sa_cms-1_0707"), "{text}");
        let p = parse(&format!("Bearer {text}")).expect("parses");
        assert_eq!(p.id, "cms-1");
        assert!(matches(&p.secret, &stored));
        let (_, other) = make("cms-1", [8; 32]);
        assert!(!matches(&p.secret, &other), "another secret's hash");
        assert!(!matches(&p.secret, "zz"), "a corrupt stored hash never matches");
        assert_eq!(parse(&format!("bearer   {text}  ")), Some(p), "scheme case and spaces");
    }

    #[test]
    fn malformed_credentials_are_not_read() {
        let (text, _) = make("cms", [1; 32]);
        for bad in [
            text.clone(),                                   // no scheme
            format!("Basic {text}"),                        // another scheme
            format!("Bearer {}", &text[..text.len() - 1]),  // short secret
            format!("Bearer {}X", &text[..text.len() - 1]), // not hex
            format!("Bearer {}", text.replace("chatd_sa_", "chatd_xx_")),
            format!("Bearer {}", text.replace("cms", "CMS")), // id not lower case
            "Bearer chatd_sa_".into(),
            "Bearer ".into(),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_short_lower_case_slugs() {
        assert!(check_id("cms").is_ok());
        assert!(check_id("a-1").is_ok());
        for bad in ["", "Cms", "a_b", "a:b", &"x".repeat(33)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        assert_eq!(user_id("cms"), "svc:cms");
    }
}
