//! The OpenID Connect rules: keys by kid, refetch on an unknown kid, and
//! the precise refusals.

use super::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const ISS: &str = "https://id.firm.example";

fn cfg() -> OidcConfig {
    OidcConfig {
        issuer: ISS.into(),
        client_id: "chat-web".into(),
        roles: [("Partner".into(), "advocate".into())].into(),
        ..OidcConfig::default()
    }
}

/// An Ed25519 key pair: its JWK (public, with `kid`) and a signer.
struct Key {
    kid: String,
    pair: rcgen::KeyPair,
}

impl Key {
    fn new(kid: &str) -> Self {
        Self { kid: kid.into(), pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap() }
    }
    fn jwk(&self) -> Value {
        ed25519_jwk(&self.kid, self.pair.public_key_raw())
    }
    fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(&self.pair.serialize_der())).unwrap()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64url(bytes)
}

fn set(keys: &[&Key]) -> KeySet {
    let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    KeySet::from_jwks(doc.to_string().as_bytes()).unwrap()
}

const NOW: u64 = 1_900_000_000;

fn claims() -> Value {
    json!({"sub": "dana", "name": "Dana Advocate", "role": "Partner", "iss": ISS, "aud": "chat-web",
           "exp": NOW + 600, "iat": NOW})
}

fn run(keys: &KeySet, token: &str) -> Result<Identity, Refusal> {
    check(keys, &cfg(), token, 30, 7 * 86400, NOW)
}

fn refusal(r: Result<Identity, Refusal>) -> WireError {
    match r {
        Err(Refusal::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_token_signed_by_a_known_key_maps_to_an_identity() {
    let k = Key::new("k1");
    let id = run(&set(&[&k]), &k.sign(&claims())).unwrap();
    assert_eq!((id.user_id.as_str(), id.display_name.as_str(), id.role), ("dana", "Dana Advocate", Role::Advocate));
    assert_eq!(id.expires_at, NOW + 600);
}

#[test]
fn roles_map_through_the_table_or_fall_back_to_the_default() {
    let k = Key::new("k1");
    let keys = set(&[&k]);
    let with = |role: Value| {
        let mut c = claims();
        c["role"] = role;
        c
    };
    assert_eq!(run(&keys, &k.sign(&with(json!(["staff", "admin"])))).unwrap().role, Role::Admin);
    assert_eq!(run(&keys, &k.sign(&with(json!("intern")))).unwrap().role, Role::Client, "default_role");
    let mut no_default = cfg();
    no_default.default_role = String::new();
    let e = check(&keys, &no_default, &k.sign(&with(json!("intern"))), 30, 86400, NOW);
    assert!(refusal(e).message.contains("default_role"));
    let mut c = claims();
    c["aud"] = json!(["other-app", "chat-web"]);
    run(&keys, &k.sign(&c)).expect("an audience list naming this client");
}

#[test]
fn an_unknown_kid_asks_for_a_refetch_then_signs_in() {
    let (old, new) = (Key::new("2026-11"), Key::new("2026-12"));
    let before = set(&[&old]);
    let t = new.sign(&claims());
    assert_eq!(run(&before, &t).unwrap_err(), Refusal::UnknownKid("2026-12".into()));
    let after = set(&[&new]);
    run(&after, &t).expect("after the refetch the rotated key is known");
    // A key id still unknown after the refetch: the precise error.
    let e = unknown_kid_error("2026-12");
    assert_eq!(e.code, ErrorCode::Unauthenticated);
    assert!(e.message.contains("\"2026-12\""));
}

#[test]
fn refusals_are_precise() {
    let k = Key::new("k1");
    let keys = set(&[&k]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        k.sign(&c)
    };
    let e = refusal(run(&keys, &with(&|c| c["aud"] = json!("payroll"))));
    assert!(e.message.contains("audience"), "{e:?}");
    let e = refusal(run(&keys, &with(&|c| c["iss"] = json!("https://evil.example"))));
    assert!(e.message.contains("issuer"), "{e:?}");
    let e = refusal(run(&keys, &with(&|c| c["exp"] = json!(NOW - 31))));
    assert_eq!(e.code, ErrorCode::TokenExpired);
    run(&keys, &with(&|c| c["exp"] = json!(NOW - 29))).expect("within the leeway");
    let e = refusal(run(&keys, &with(&|c| c["nbf"] = json!(NOW + 300))));
    assert!(e.message.contains("not valid yet"), "{e:?}");
    let e = refusal(run(&keys, &with(&|c| c["exp"] = json!(NOW + 30 * 86400))));
    assert!(e.message.contains("max_token_lifetime_secs"), "{e:?}");
    let e = refusal(run(&keys, &with(&|c| c["name"] = json!("Eve\nAdmin"))));
    assert!(e.message.contains("token name"), "{e:?}");
    // Same kid, another key (a forgery): the signature.
    let forger = Key::new("k1");
    let e = refusal(run(&keys, &forger.sign(&claims())));
    assert!(e.message.contains("signature"), "{e:?}");
    // Tampered payload.
    let t = k.sign(&claims());
    let mut parts: Vec<&str> = t.split('.').collect();
    let evil = b64(json!({"sub": "mallory", "role": "admin", "iss": ISS, "aud": "chat-web", "exp": NOW + 60})
        .to_string()
        .as_bytes());
    parts[1] = &evil;
    assert!(refusal(run(&keys, &parts.join("."))).message.contains("signature"));
    // No kid, HS256 with the kid of a public key, garbage.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(b"0123456789abcdef0123")).unwrap();
    assert!(refusal(run(&keys, &hs)).message.contains("algorithm"));
    let nokid =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(b"x")).unwrap();
    assert!(refusal(run(&keys, &nokid)).message.contains("kid"));
    assert!(refusal(run(&keys, "not.a.jwt")).message.contains("malformed"));
}

#[test]
fn key_sets_skip_unusable_keys_and_refuse_empty_ones() {
    let k = Key::new("k1");
    let doc = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}, {"kty": "OKP", "crv": "Ed25519", "x": b64(k.pair.public_key_raw())}, k.jwk()]});
    assert_eq!(KeySet::from_jwks(doc.to_string().as_bytes()).unwrap().kids(), vec!["k1"]);
    assert!(KeySet::from_jwks(br#"{"keys": []}"#).unwrap_err().contains("no usable"));
    assert!(KeySet::from_jwks(b"<html>").unwrap_err().contains("not a key set"));
}

#[test]
fn refetches_are_rate_limited() {
    let mut g = RefetchGate::default();
    let t0 = Instant::now();
    assert!(g.allow(t0));
    assert!(!g.allow(t0 + Duration::from_secs(5)));
    assert!(g.allow(t0 + MIN_REFETCH_INTERVAL));
}
