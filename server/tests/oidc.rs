//! Sign-in with an OpenID Connect provider: a real (tiny) provider in the
//! test serves its discovery document and keys (JWKS) over HTTP on
//! loopback; chatd fetches them at start, follows a key rotation, and
//! refuses foreign, misaddressed and expired tokens precisely. The real
//! server, the real Rust SDK over QUIC.

mod common;
use chat_client::{Client, Transport};
use chat_protocol::v1::{ErrorCode, Role};
use chat_server::auth::oidc::ed25519_jwk;
use common::server::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The provider: its issuer URL, its current keys, how often its JWKS was read.
struct Provider {
    issuer: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

struct Key {
    kid: String,
    pair: rcgen::KeyPair,
}

impl Key {
    fn new(kid: &str) -> Self {
        Self { kid: kid.into(), pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap() }
    }
    fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &EncodingKey::from_ed_der(&self.pair.serialize_der())).unwrap()
    }
}

impl Provider {
    /// Starts answering on a loopback port of its own (a thread with its runtime).
    fn start(keys: &[&Key]) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let p = Provider { issuer, jwks: Arc::new(Mutex::new(json!({}))), fetches: Arc::new(AtomicUsize::new(0)) };
        p.publish(keys);
        let (issuer, jwks, fetches) = (p.issuer.clone(), p.jwks.clone(), p.fetches.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (mut sock, _) = listener.accept().await.unwrap();
                    let mut buf = vec![0u8; 4096];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (status, body) = match path.as_str() {
                        "/.well-known/openid-configuration" => ("200 OK", json!({
                            "issuer": issuer,
                            "authorization_endpoint": format!("{issuer}/auth"),
                            "token_endpoint": format!("{issuer}/token"),
                            "jwks_uri": format!("{issuer}/jwks"),
                        })),
                        "/jwks" => {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            ("200 OK", jwks.lock().unwrap().clone())
                        }
                        _ => ("404 Not Found", json!({})),
                    };
                    let body = body.to_string();
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                }
            })
        });
        p
    }

    /// The provider now signs with `keys` (a rotation).
    fn publish(&self, keys: &[&Key]) {
        let list: Vec<Value> = keys.iter().map(|k| ed25519_jwk(&k.kid, k.pair.public_key_raw())).collect();
        *self.jwks.lock().unwrap() = json!({ "keys": list });
    }

    fn claims(&self, sub: &str) -> Value {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        json!({"sub": sub, "name": format!("{sub} (firm)"), "role": "Partner", "iss": self.issuer,
               "aud": "chat-web", "exp": now + 600, "iat": now})
    }
}

fn start_chatd(p: &Provider) -> Server {
    Server::start_with(|c| {
        c.auth.oidc.issuer = p.issuer.clone();
        c.auth.oidc.client_id = "chat-web".into();
        c.auth.oidc.roles = [("Partner".to_string(), "advocate".to_string())].into();
    })
}

async fn sign_in(s: &Server, token: String) -> Result<Client, Option<ErrorCode>> {
    let mut c = s.client_config("x", "client", Transport::Quic);
    c.token = token;
    Client::connect(c).await.map(|(c, _)| c).map_err(code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_tokens_sign_in_and_rotated_keys_are_followed() {
    let (k1, k2) = (Key::new("2026-11"), Key::new("2026-12"));
    let p = Provider::start(&[&k1]);
    let s = start_chatd(&p);
    let dana = sign_in(&s, k1.sign(&p.claims("dana"))).await.expect("signed by the provider's key");
    let me = dana.user().unwrap();
    assert_eq!((me.id.as_str(), me.display_name.as_str()), ("dana", "dana (firm)"));
    assert_eq!(me.role, Role::Advocate as i32, "the provider's Partner role maps to advocate");
    dana.close().await;
    let fetched = p.fetches.load(Ordering::SeqCst);

    // The provider rotates: a token with the new kid makes chatd fetch the keys again.
    p.publish(&[&k2]);
    let erin = sign_in(&s, k2.sign(&p.claims("erin"))).await.expect("the rotated key is fetched");
    assert_eq!(p.fetches.load(Ordering::SeqCst), fetched + 1);
    erin.close().await;

    // A key the provider never published: refused, and no second fetch within 30 s.
    let foreign = Key::new("2026-13");
    assert_eq!(sign_in(&s, foreign.sign(&p.claims("mallory"))).await.err(), Some(Some(ErrorCode::Unauthenticated)));
    assert_eq!(p.fetches.load(Ordering::SeqCst), fetched + 1, "unknown kids are rate-limited");
    // Same kid as the provider's, another key: a forgery.
    let forger = Key::new("2026-12");
    assert_eq!(sign_in(&s, forger.sign(&p.claims("mallory"))).await.err(), Some(Some(ErrorCode::Unauthenticated)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misaddressed_and_expired_provider_tokens_are_refused_precisely() {
    let k = Key::new("k1");
    let p = Provider::start(&[&k]);
    let s = start_chatd(&p);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = p.claims("dana");
        f(&mut c);
        k.sign(&c)
    };
    let wrong_aud = with(&|c| c["aud"] = json!("payroll"));
    assert_eq!(sign_in(&s, wrong_aud).await.err(), Some(Some(ErrorCode::Unauthenticated)));
    let wrong_iss = with(&|c| c["iss"] = json!("https://evil.example"));
    assert_eq!(sign_in(&s, wrong_iss).await.err(), Some(Some(ErrorCode::Unauthenticated)));
    let expired = with(&|c| c["exp"] = json!(1_000));
    assert_eq!(sign_in(&s, expired).await.err(), Some(Some(ErrorCode::TokenExpired)));
    // Development tokens are off once a provider is configured.
    assert_eq!(sign_in(&s, common::token("dana", "admin")).await.err(), Some(Some(ErrorCode::Unauthenticated)));
    sign_in(&s, with(&|_| {})).await.expect("and the good one still signs in");
}

#[test]
fn chatd_does_not_start_when_the_provider_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg.auth.oidc.issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    cfg.auth.oidc.client_id = "chat-web".into();
    let e = chat_server::start(cfg).err().expect("refused").to_string();
    assert!(e.contains("identity provider") && e.contains("discovery document"), "{e}");
}
