//! Session control: a live session outlives its first token when it is
//! handed a fresh one (`RefreshToken`, by the SDK's token source or by the
//! application), and refuses one for another user or role precisely. The
//! real server on loopback, the real SDK over QUIC and WebTransport.

mod common;
use chat_client::{Client, ClientError, Event, TokenSource, Transport};
use chat_protocol::v1::ErrorCode;
use chat_server::auth::mint_hs256;
use chat_server::config::PUBLIC_DEV_SECRET;
use common::server::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn short(user: &str, role: &str, secs: u64) -> String {
    mint_hs256(PUBLIC_DEV_SECRET, user, "", role, Duration::from_secs(secs))
}

fn now_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

/// With a token source, the SDK refreshes before each lapse: the session
/// stays up (no disconnection) well past the first token's `exp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_source_keeps_the_session_alive_past_its_first_token() {
    let s = Server::start();
    for transport in [Transport::Quic, Transport::WebTransport] {
        let minted = Arc::new(AtomicUsize::new(0));
        let counter = minted.clone();
        let source = TokenSource::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(short("alice", "advocate", 3)) }
        });
        let cfg = s.client_config("alice", "advocate", transport).token(short("alice", "advocate", 3));
        let (alice, mut events) = Client::connect(cfg.token_source(source)).await.unwrap();
        let first = alice.token_expires_at_ms();
        assert!(first > now_ms() && first <= now_ms() + 3_000, "the Welcome says when the token lapses: {first}");
        // Twice the first token's life, watching for any disconnection.
        let watch = tokio::time::timeout(Duration::from_secs(6), async {
            loop {
                if let Some(Event::Disconnected { error, .. }) = events.next().await {
                    return error;
                }
            }
        })
        .await;
        assert!(watch.is_err(), "{transport:?}: the session ended: {watch:?}");
        alice.ping().await.expect("still served");
        assert!(alice.token_expires_at_ms() > first, "the lapse moved");
        assert!(minted.load(Ordering::SeqCst) >= 2, "refreshed before each lapse");
        alice.close().await;
    }
}

/// The application may hand a token itself; one for another user or role,
/// or an invalid one, is refused precisely and the session goes on (until
/// its own token lapses).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_refused_for_another_user_or_role_or_a_bad_token() {
    let s = Server::start();
    let cfg = s.client_config("alice", "advocate", Transport::Quic).token(short("alice", "advocate", 2));
    let (alice, mut events) = Client::connect(cfg).await.unwrap();
    let refused = |r: Result<u64, ClientError>| code(r.expect_err("refused"));
    assert_eq!(refused(alice.refresh_token(short("bob", "advocate", 600)).await), Some(ErrorCode::Forbidden));
    assert_eq!(refused(alice.refresh_token(short("alice", "admin", 600)).await), Some(ErrorCode::Forbidden));
    let forged = mint_hs256("another-secret-entirely-here", "alice", "", "advocate", Duration::from_secs(600));
    assert_eq!(refused(alice.refresh_token(forged).await), Some(ErrorCode::Unauthenticated));
    alice.ping().await.expect("the session goes on");
    // A good one, by hand: the session outlives its first token.
    let until = alice.refresh_token(short("alice", "advocate", 600)).await.expect("accepted");
    assert!(until > now_ms() + 500_000, "{until}");
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    alice.ping().await.expect("served past the first token's lapse");
    let ended = tokio::time::timeout(Duration::from_millis(100), async {
        loop {
            if let Some(Event::Disconnected { .. }) = events.next().await {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_err(), "no disconnection");
}
