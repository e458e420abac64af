//! A client of the server API: real HTTP/1.1 (hyper's client connection)
//! over loopback, JSON in and out, and service accounts made over the
//! running server's control socket as `chatd service-accounts` does.
#![allow(dead_code)]

use bytes::Bytes;
use chat_server::api::accounts::{Done, Op};
use chat_server::node::control::{self, Reply, Request};
use chat_server::store::service_accounts::Scope;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// An answer: status, headers, body as JSON (Null when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub json: Value,
}

impl Answer {
    /// The problem's wire code name (for an error).
    pub fn code(&self) -> &str {
        self.json["code_name"].as_str().unwrap_or("")
    }

    /// Asserts a problem-details error with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "{}", self.json);
        let ct = self.headers.get("content-type").and_then(|v| v.to_str().ok());
        assert_eq!(ct, Some("application/problem+json"));
        assert_eq!(self.json["status"], status);
        assert!(self.json["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", self.json);
    }
}

/// Calls the API at `web` with `credential` (None: no Authorization header).
pub async fn call(web: SocketAddr, credential: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Answer {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    raw(web, credential, method, path, Bytes::from(body)).await
}

/// Calls with a raw body.
pub async fn raw(web: SocketAddr, credential: Option<&str>, method: &str, path: &str, body: Bytes) -> Answer {
    let tcp = tokio::net::TcpStream::connect(web).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut req =
        hyper::Request::builder().method(method).uri(format!("/api/v1{path}")).header("host", web.to_string());
    if let Some(c) = credential {
        req = req.header("authorization", format!("Bearer {c}"));
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let resp = send.send_request(req.body(Full::new(body)).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status: parts.status.as_u16(), headers: parts.headers, json }
}

/// Asks the chatd serving `data_dir` over its control socket.
pub async fn accounts(data_dir: &Path, op: Op) -> Result<Done, String> {
    let dir: PathBuf = data_dir.to_owned();
    let r = tokio::task::spawn_blocking(move || control::request(&dir, &Request::ServiceAccounts(op))).await.unwrap();
    match r.expect("control socket").expect("a chatd answers") {
        Reply::ServiceAccounts(d) => Ok(d),
        Reply::Error(e) => Err(e),
        other => panic!("unexpected {other:?}"),
    }
}

/// Makes service account `id` with `scopes`; returns its credential.
pub async fn create_account(data_dir: &Path, id: &str, scopes: &[Scope]) -> String {
    let op = Op::Create { id: id.into(), display_name: format!("{id} system"), scopes: scopes.to_vec() };
    match accounts(data_dir, op).await.expect("created") {
        Done::Credential { credential, .. } => credential,
        other => panic!("unexpected {other:?}"),
    }
}
