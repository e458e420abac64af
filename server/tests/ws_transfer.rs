//! File transfers over the WebSocket fallback: the real server on loopback
//! (port 0, fresh data directory), a real WebSocket speaking `chat.mux.v1`
//! (transfers on streams of their own, with credit), a plain WebSocket
//! beside it, and the real Rust SDK over QUIC for the other member.

mod common;
use chat_client::Transport;
use chat_protocol::v1::{self, ConversationKind, ErrorCode, command, reply};
use chat_server::transport::ws_mux::{Kind, WINDOW};
use common::mux::MuxWs;
use common::server::*;
use common::web::{Ws, error_of, text_body, text_of};
use std::path::Path;
use std::time::Duration;

/// A real PDF of about `n` bytes.
fn pdf(n: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend((0..n as u32).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    v
}

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 }).sum()
}

/// Files in the blob store, committed or temporary.
fn blob_files(data_dir: &Path) -> usize {
    files_under(&data_dir.join("blobs"))
}

async fn settles_at(data_dir: &Path, n: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while blob_files(data_dir) != n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blob_files(data_dir)
}

fn attachment(r: reply::Result) -> v1::Attachment {
    match r {
        reply::Result::Upload(u) => u.attachment.unwrap(),
        other => panic!("expected UploadOk, got {other:?}"),
    }
}

fn message(conv: u64, text: &str) -> v1::SendMessage {
    let client_msg_id = format!("ws-transfer-{}", text.len());
    v1::SendMessage { conversation_id: conv, client_msg_id, body: text_body(text), ..Default::default() }
}

fn send(conv: u64, text: &str) -> command::Body {
    command::Body::SendMessage(message(conv, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_goes_up_and_down_over_the_websocket_and_plain_websockets_still_chat() {
    let s = Server::start();
    let web = s.h().web_addr().unwrap();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["carol", "bob"]).await;
    let mut carol = MuxWs::connect(web, "carol").await;
    let (mut bob, _) = Ws::connect(web, "bob").await;
    let file = pdf(1_000_000);
    let a = attachment(carol.upload(conv, "brief.pdf", "application/pdf", &file).await);
    assert_eq!((a.name.as_str(), a.size), ("brief.pdf", file.len() as u64));
    assert_eq!(a.sha256, hex::encode(ring::digest::digest(&ring::digest::SHA256, &file)));
    assert_eq!(carol.download(conv, &a.attachment_id).await.expect("download"), file, "the same bytes back");
    // Over QUIC the other member gets the very same file.
    let got = alice.download(conv, &a.attachment_id, 0, 0, false).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, file);
    // The message naming it reaches the plain WebSocket client, which chats as before.
    let mut sm = message(conv, "the brief");
    sm.attachment_ids = vec![a.attachment_id.clone()];
    assert!(matches!(carol.request(command::Body::SendMessage(sm)).await, reply::Result::SendMessage(_)));
    let m = bob.message(conv).await;
    assert_eq!(text_of(&m), "the brief");
    assert_eq!(m.attachments.len(), 1, "{m:?}");
    bob.ping().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_line_arrives_while_a_large_download_is_held_back() {
    let s = Server::start();
    let web = s.h().web_addr().unwrap();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["carol"]).await;
    let file = pdf(8 << 20);
    let a = alice.upload_bytes(conv, "big.pdf", "application/pdf", &file).await.expect("upload");
    let mut carol = MuxWs::connect(web, "carol").await;
    // Carol grants no credit: the download stops at one window.
    carol.auto_credit = false;
    let id = carol.start_download(conv, &a.attachment_id).await;
    while carol.streams[&id].received < WINDOW {
        carol.pump().await.unwrap();
    }
    alice.send_text(conv, "urgent: hearing moved").await.expect("send");
    let m = carol.message(conv).await;
    assert_eq!(text_of(&m), "urgent: hearing moved");
    let st = &carol.streams[&id];
    assert!(!st.fin && st.received <= WINDOW + 64 * 1024, "the download went no further: {}", st.received);
    // Credit again: the rest comes, whole.
    carol.auto_credit = true;
    let held = carol.streams[&id].received as u32;
    carol.send(id, Kind::Credit(held), b"").await;
    assert!(matches!(carol.stream_reply(id).await, reply::Result::Download(_)));
    while !carol.streams[&id].fin {
        carol.pump().await.unwrap();
    }
    assert_eq!(&carol.streams[&id].data[..], &file[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_line_goes_out_in_the_middle_of_an_upload() {
    let s = Server::start();
    let web = s.h().web_addr().unwrap();
    let (alice, mut a_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["carol"]).await;
    let mut carol = MuxWs::connect(web, "carol").await;
    let file = pdf(4 << 20);
    let start = v1::UploadStart {
        conversation_id: conv,
        name: "big.pdf".into(),
        media_type: "application/pdf".into(),
        size: file.len() as u64,
    };
    let id = carol.open(command::Body::UploadStart(start)).await;
    carol.write(id, &file[..file.len() / 2]).await;
    // Half way: a chat line is answered and delivered before the upload ends.
    assert!(matches!(carol.request(send(conv, "sending the brief now")).await, reply::Result::SendMessage(_)));
    messages(&mut a_ev, conv, 1).await;
    carol.write(id, &file[file.len() / 2..]).await;
    carol.send(id, Kind::Fin, b"").await;
    let a = attachment(carol.stream_reply(id).await);
    assert_eq!(a.size, file.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_midway_leaves_nothing() {
    let s = Server::start();
    let (web, dir) = (s.h().web_addr().unwrap(), s.cfg.data_dir.clone());
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["carol"]).await;
    let file = pdf(1_000_000);
    let start = || {
        command::Body::UploadStart(v1::UploadStart {
            conversation_id: conv,
            name: "brief.pdf".into(),
            media_type: "application/pdf".into(),
            size: file.len() as u64,
        })
    };
    // Reset halfway: the upload fails precisely and nothing is kept.
    let mut carol = MuxWs::connect(web, "carol").await;
    let id = carol.open(start()).await;
    carol.write(id, &file[..file.len() / 2]).await;
    carol.send(id, Kind::Reset(7), b"").await;
    let e = error_of(carol.stream_reply(id).await);
    assert_eq!(e.code, ErrorCode::UploadIncomplete as i32, "{e:?}");
    assert_eq!(settles_at(&dir, 0).await, 0, "no blob, no partial file");
    assert!(matches!(carol.request(send(conv, "still here")).await, reply::Result::SendMessage(_)));
    // The socket dropped halfway: the same.
    let id = carol.open(start()).await;
    carol.write(id, &file[..file.len() / 2]).await;
    drop(carol);
    assert_eq!(settles_at(&dir, 0).await, 0, "no blob, no partial file");
    // A whole upload on a new socket is kept.
    let mut carol = MuxWs::connect(web, "carol").await;
    attachment(carol.upload(conv, "brief.pdf", "application/pdf", &file).await);
    assert_eq!(settles_at(&dir, 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_past_the_credit_is_closed_precisely() {
    let s = Server::start();
    let web = s.h().web_addr().unwrap();
    let mut carol = MuxWs::connect(web, "carol").await;
    // A download stream is not read past its header: its credit runs out.
    let id = carol.start_download(1, "0123").await;
    let chunk = vec![0u8; 32 * 1024];
    for _ in 0..(WINDOW as usize / chunk.len() + 1) {
        carol.send(id, Kind::Data, &chunk).await;
    }
    let (code, reason) = carol.closed().await;
    assert_eq!(code, 4302, "PROTOCOL_VIOLATION: {reason}");
    assert!(reason.contains(&format!("stream {id} sent")) && reason.contains("past its credit"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_multiplex_messages_are_closed_precisely() {
    let s = Server::start();
    let web = s.h().web_addr().unwrap();
    let cases: [(u32, Kind, &str); 3] = [
        (5, Kind::Data, "stream 5 is out of order: the next new stream is 1"),
        (2, Kind::Data, "stream 2: client streams have odd ids"),
        (0, Kind::Fin, "stream 0 (control) carries data only"),
    ];
    for (id, kind, why) in cases {
        let mut carol = MuxWs::connect(web, "carol").await;
        carol.send(id, kind, b"x").await;
        assert_eq!(carol.closed().await, (4302, why.to_string()));
    }
    // A stream used again after its end.
    let mut carol = MuxWs::connect(web, "carol").await;
    let err = error_of(carol.upload(1, "a.txt", "text/plain", b"hello").await);
    assert!([ErrorCode::NotMember as i32, ErrorCode::NotFound as i32].contains(&err.code), "{err:?}");
    carol.send(1, Kind::Data, b"more").await;
    assert_eq!(carol.closed().await, (4302, "stream 1 already ended; a new transfer takes a new id".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_past_the_per_connection_bound_are_refused_over_websocket() {
    let s = Server::start_with(|c| c.blobs.transfers_per_connection = 1);
    let web = s.h().web_addr().unwrap();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["carol"]).await;
    let mut carol = MuxWs::connect(web, "carol").await;
    let file = pdf(500_000);
    let start = v1::UploadStart {
        conversation_id: conv,
        name: "slow.pdf".into(),
        media_type: "application/pdf".into(),
        size: file.len() as u64,
    };
    let slow = carol.open(command::Body::UploadStart(start)).await;
    carol.write(slow, &file[..1000]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = error_of(carol.upload(conv, "brief.pdf", "application/pdf", &file).await);
    assert_eq!((e.code, e.limit.as_str()), (ErrorCode::Overloaded as i32, "transfers_per_connection"), "{e:?}");
    carol.write(slow, &file[1000..]).await;
    carol.send(slow, Kind::Fin, b"").await;
    attachment(carol.stream_reply(slow).await);
    attachment(carol.upload(conv, "brief.pdf", "application/pdf", &file).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_given_no_credit_is_reset_with_timeout_and_frees_its_slot() {
    let s = Server::start_with(|c| {
        c.blobs.transfers_per_connection = 1;
        c.blobs.transfer_idle_timeout_ms = 500;
    });
    let web = s.h().web_addr().unwrap();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["carol"]).await;
    let file = pdf(2 * WINDOW as usize);
    let a = alice.upload_bytes(conv, "record.pdf", "application/pdf", &file).await.expect("upload");
    let mut carol = MuxWs::connect(web, "carol").await;
    carol.auto_credit = false;
    let id = carol.start_download(conv, &a.attachment_id).await;
    // The server stops at the window, waits the idle timeout, then resets the stream.
    while carol.streams[&id].reset.is_none() {
        carol.pump().await.expect("the socket stays open");
    }
    let st = &carol.streams[&id];
    assert_eq!(st.reset, Some(ErrorCode::Timeout as u32), "reset with TIMEOUT");
    assert!(!st.fin && st.received <= WINDOW + 64 * 1024, "cut, never a short file: {}", st.received);
    // The slot is free again: the same file comes down whole on a new stream.
    carol.auto_credit = true;
    assert_eq!(carol.download(conv, &a.attachment_id).await.expect("the slot is free"), file);
}
