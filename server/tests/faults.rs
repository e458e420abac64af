//! Faults as they happen to users: a device that vanishes without a goodbye
//! (its packets simply stop) is shown offline within 5 s, over QUIC and over
//! WebSocket.

mod common;

use chat_client::{Client, Event, Events, Transport};
use chat_protocol::v1::ConversationKind;
use common::server::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// What "within 5 s" is allowed on a busy test machine.
const OFFLINE_WITHIN: Duration = Duration::from_millis(6_500);

/// A UDP relay between one client and the server, that can go silent in
/// both directions at once: a device that lost its network.
struct Relay {
    addr: SocketAddr,
    silent: Arc<AtomicBool>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let addr = front.local_addr().unwrap();
        let silent = Arc::new(AtomicBool::new(false));
        let flag = silent.clone();
        let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        let (f, b, s, c) = (front.clone(), back.clone(), silent.clone(), client.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = f.recv_from(&mut buf).await {
                *c.lock().unwrap() = Some(from);
                if !s.load(Ordering::Relaxed) {
                    let _ = b.send(&buf[..n]).await;
                }
            }
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = back.recv(&mut buf).await {
                let to = *client.lock().unwrap();
                if let Some(to) = to.filter(|_| !silent.load(Ordering::Relaxed)) {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
        Relay { addr, silent: flag }
    }

    fn go_silent(&self) {
        self.silent.store(true, Ordering::Relaxed);
    }
}

/// Waits until `who`'s presence as `ev`'s user sees it is `online`.
async fn presence_is(ev: &mut Events, who: &str, online: bool) {
    next_where(ev, |e| match e {
        Event::Presence(p) if p.user_id == who && p.online == online => Some(()),
        _ => None,
    })
    .await
}

/// Alice and bob share a group (members see each other at once); alice
/// watches bob come online.
async fn watched(s: &Server) -> (Client, Events, u64) {
    let (alice, mut a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["bob"]).await;
    next_where(&mut a_ev, |e| matches!(e, Event::Conversation(_)).then_some(())).await;
    (alice, a_ev, conv)
}

/// A QUIC device whose packets stop (no close, no goodbye) is offline to
/// the others within 5 s: the server pings idle peers and closes one that
/// does not answer within `session.idle_timeout_ms` (4 s). The device here
/// behaves like a browser: no pings of its own, a 30 s idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_quic_device_is_offline_within_5s() {
    let s = Server::start_with(|c| c.session.idle_timeout_ms = 4_000);
    let (_alice, mut a_ev, _) = watched(&s).await;
    let relay = Relay::start(s.h().addr()).await;
    let mut cfg = s.client_config("bob", "client", Transport::Quic);
    cfg.addr = relay.addr.to_string();
    cfg.keep_alive = None;
    cfg.idle_timeout = Duration::from_secs(30);
    let (bob, _b_ev) = Client::connect(cfg).await.unwrap();
    presence_is(&mut a_ev, "bob", true).await;
    // Quiet for a while first: an idle device that is there stays online.
    tokio::time::sleep(Duration::from_secs(6)).await;
    bob.ping().await.expect("an idle device stays connected");
    let gone = Instant::now();
    relay.go_silent();
    presence_is(&mut a_ev, "bob", false).await;
    let took = gone.elapsed();
    assert!(took <= OFFLINE_WITHIN, "bob was shown offline {took:?} after his packets stopped");
    drop(bob);
}

/// A WebSocket device that stops answering (its pings go unanswered) is
/// offline to the others within 5 s too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_websocket_device_is_offline_within_5s() {
    let s = Server::start_with(|c| c.session.idle_timeout_ms = 4_000);
    let (_alice, mut a_ev, _) = watched(&s).await;
    // A raw WebSocket client that reads (and so answers pings) only when asked.
    let (ws, _) = common::web::Ws::connect(s.h().web_addr().unwrap(), "bob").await;
    presence_is(&mut a_ev, "bob", true).await;
    let gone = Instant::now();
    presence_is(&mut a_ev, "bob", false).await;
    let took = gone.elapsed();
    assert!(took <= OFFLINE_WITHIN, "bob was shown offline {took:?} after he stopped answering");
    drop(ws);
}
