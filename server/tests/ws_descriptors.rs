//! A WebSocket session holds one descriptor on the server (its socket),
//! never a second one per connection. The count is of this process's open
//! descriptors, so this test is alone in its test binary: cargo runs test
//! binaries one after another, and no other test's servers or clients open
//! and close sockets meanwhile (in `web.rs`, beside 14 others, CI once
//! counted 97 for 40 sessions where 80 are expected).

mod common;
use common::server::Server;
use common::web::Ws;

/// Open descriptors of this process (the test's clients and the server in it).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_holds_one_descriptor_on_the_server() {
    let s = Server::start_with(|c| c.store.fsync = false);
    let web = s.h().web_addr().expect("the web endpoint is on");
    // Warm up: the first session opens what the server keeps (store files, timers).
    let (mut first, _) = Ws::connect(web, "warm").await;
    first.ping().await;
    let before = open_descriptors();
    const N: usize = 40;
    let mut open = Vec::new();
    for i in 0..N {
        let (mut ws, _) = Ws::connect(web, &format!("user{i}")).await;
        ws.ping().await;
        open.push(ws);
    }
    // Each session: the client's socket and the server's, nothing more (the
    // server once took a second descriptor of every web connection, to be
    // able to reset it: that adds N). A few passing ones (the store's files,
    // the runtime) are allowed, never one more per session.
    let added = open_descriptors() - before;
    assert!(added <= 2 * N + N / 4, "{N} WebSocket sessions added {added} descriptors");
    for ws in &mut open {
        ws.ping().await;
    }
}
