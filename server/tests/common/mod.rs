//! Helpers the end-to-end, hardening and cluster tests share.
#![allow(dead_code)]

pub mod api;
pub mod archive;
pub mod cluster;
pub mod mux;
pub mod server;
pub mod web;

use chat_client::{Event, Events, v1};
use chat_protocol::v1::message_body;
use std::time::Duration;

/// A token for `user` with `role`, valid for 10 minutes, signed with the
/// public dev secret the test servers use.
pub fn token(user: &str, role: &str) -> String {
    chat_server::auth::mint_hs256(
        chat_server::config::PUBLIC_DEV_SECRET,
        user,
        &format!("{user} name"),
        role,
        Duration::from_secs(600),
    )
}

/// A message's text ("" for other bodies).
pub fn text(m: &v1::Message) -> String {
    match m.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(message_body::Content::Text(t)) => t.clone(),
        _ => String::new(),
    }
}

/// Waits up to `within` for the next event that `f` picks.
pub async fn next_where<T>(ev: &mut Events, within: Duration, mut f: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(within, async {
        loop {
            let e = ev.next().await.expect("event stream ended");
            if let Some(t) = f(e) {
                return t;
            }
        }
    })
    .await
    .expect("timed out waiting for an event")
}
