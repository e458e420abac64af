//! Attachments end to end: the real server on loopback (port 0, fresh data
//! directory, filesystem blob store), real QUIC and WebTransport, the real
//! Rust SDK. Uploads and downloads go on streams of their own.

mod common;
use chat_client::{Client, ClientError, Event, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode};
use common::server::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// A small but real PDF.
fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    v.extend((0..200_000u32).map(|i| b'a' + (i % 26) as u8));
    v.extend_from_slice(b"\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    v
}

/// A real 400x300 PNG.
fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(400, 300, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn server_code(e: ClientError) -> (Option<ErrorCode>, String) {
    match e {
        ClientError::Server(w) => (w.code(), w.message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// Files committed in the blob store (temporary uploads not counted).
fn stored_blobs(data_dir: &Path) -> usize {
    let root = data_dir.join("blobs");
    let mut n = 0;
    for d in std::fs::read_dir(&root).unwrap().flatten() {
        if d.file_name() == "tmp" || !d.path().is_dir() {
            continue;
        }
        n += std::fs::read_dir(d.path()).unwrap().count();
    }
    n
}

fn tmp_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("blobs/tmp")).map(|d| d.count()).unwrap_or(0)
}

async fn download_all(c: &Client, conv: u64, id: &str, thumbnail: bool) -> Result<Vec<u8>, ClientError> {
    c.download(conv, id, 0, 0, thumbnail).await?.bytes().await
}

async fn pdf_and_png_reach_the_other_member(transport: Transport) {
    let s = Server::start();
    let (alice, mut a_ev) = s.connect("alice", "advocate", transport).await;
    let (bob, mut b_ev) = s.connect("bob", "client", transport).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    // Bob holds a cursor of the conversation: he resumes from it below.
    alice.send_text(conv, "hello").await.expect("send");
    messages(&mut b_ev, conv, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = bob.resume_state();
    let (pdf, png) = (pdf(), png());
    let mut seen = Vec::new();
    let p = alice
        .upload(conv, "brief.pdf", "application/pdf", pdf.len() as u64, &pdf[..], |sent, of| seen.push((sent, of)))
        .await
        .expect("upload pdf");
    assert_eq!(seen.last(), Some(&(pdf.len() as u64, pdf.len() as u64)), "progress reaches the whole size");
    assert!(seen.len() > 1, "progress is reported as it goes");
    assert_eq!((p.name.as_str(), p.size, p.media_type.as_str()), ("brief.pdf", pdf.len() as u64, "application/pdf"));
    assert_eq!(p.sha256, hex::encode(ring::digest::digest(&ring::digest::SHA256, &pdf)));
    assert!(p.thumbnail.is_none(), "no preview of a PDF");
    let i = alice.upload_bytes(conv, "photo.png", "image/png", &png).await.expect("upload png");
    let t = i.thumbnail.clone().expect("an image gets a thumbnail");
    assert!(t.width <= 320 && t.height <= 320 && t.width > 0, "{t:?}");

    let ok = alice.send_with_attachments(
        conv,
        "the brief and a photo",
        vec![p.attachment_id.clone(), i.attachment_id.clone()],
    );
    let ok = ok.await.expect("send");
    let seq = ok.seq;
    assert_eq!(ok.attachments, [p.clone(), i.clone()], "the ack carries both");
    let own = next_where(&mut a_ev, |e| match e {
        Event::Message(m) if m.conversation_id == conv && m.seq == seq => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(own.attachments, [p.clone(), i.clone()], "the sender's own copy shows both without a reload");
    let live = next_where(&mut b_ev, |e| match e {
        Event::Message(m) if m.conversation_id == conv && m.seq == seq => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(live.attachments, [p.clone(), i.clone()], "the live message carries both");
    let h = bob.history(conv, 0, 0, 50).await.expect("history");
    let stored = h.messages.iter().find(|m| m.seq == seq).expect("in history");
    assert_eq!(stored.attachments, [p.clone(), i.clone()], "history carries both");

    // A fresh connection resuming from before the message gets it again, with them.
    let (_bob2, mut b2) =
        Client::connect(s.client_config("bob", "client", transport).resume(Some(state))).await.unwrap();
    let resumed = next_where(&mut b2, |e| match e {
        Event::Message(m) if m.conversation_id == conv && m.seq == seq => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(resumed.attachments, [p.clone(), i.clone()], "resume carries both");

    assert_eq!(download_all(&bob, conv, &p.attachment_id, false).await.expect("pdf"), pdf, "byte-identical");
    assert_eq!(download_all(&bob, conv, &i.attachment_id, false).await.expect("png"), png, "byte-identical");
    let thumb = download_all(&bob, conv, &i.attachment_id, true).await.expect("thumbnail");
    assert_eq!(thumb.len() as u64, t.size);
    let decoded = image::load_from_memory(&thumb).expect("the thumbnail is an image");
    assert_eq!((decoded.width(), decoded.height()), (t.width, t.height));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdf_and_png_reach_the_other_member_over_quic() {
    pdf_and_png_reach_the_other_member(Transport::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdf_and_png_reach_the_other_member_over_webtransport() {
    pdf_and_png_reach_the_other_member(Transport::WebTransport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_cannot_download_nor_send_anothers_attachment() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (mallory, _m) = s.connect("mallory", "advocate", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let p = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf()).await.expect("upload");
    let e = mallory.download(conv, &p.attachment_id, 0, 0, false).await.err().expect("refused");
    assert_eq!(server_code(e).0, Some(ErrorCode::NotFound), "a non-member is told the conversation does not exist");
    let e = mallory.upload_bytes(conv, "x.pdf", "application/pdf", &pdf()).await.unwrap_err();
    assert_eq!(server_code(e).0, Some(ErrorCode::NotFound), "nor may upload to it");
    // Mallory's own conversation does not reach alice's attachment by its id.
    let own = create(&mallory, ConversationKind::Group, "mine", "", &["alice"]).await;
    let e = mallory.send_with_attachments(own, "look", vec![p.attachment_id.clone()]).await.unwrap_err();
    assert_eq!(server_code(e).0, Some(ErrorCode::UnknownAttachment));
    let e = mallory.download(own, &p.attachment_id, 0, 0, false).await.err().expect("refused");
    assert_eq!(server_code(e).0, Some(ErrorCode::UnknownAttachment));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_and_mismatched_types_are_refused_and_keep_nothing() {
    let s = Server::start();
    let dir = s.cfg.data_dir.clone();
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let e =
        alice.upload_bytes(conv, "run.exe", "application/x-msdownload", b"MZ\x90\x00 not allowed").await.unwrap_err();
    let (code, msg) = server_code(e);
    assert_eq!(code, Some(ErrorCode::TypeNotAllowed), "{msg}");
    // A ZIP claimed as a PDF: the bytes decide.
    let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00 an archive, not a document".repeat(100);
    let e = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &zip).await.unwrap_err();
    assert_eq!(server_code(e).0, Some(ErrorCode::TypeNotAllowed));
    // A PNG claimed as a PDF.
    let e = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &png()).await.unwrap_err();
    let (code, msg) = server_code(e);
    assert_eq!(code, Some(ErrorCode::TypeMismatch));
    assert_eq!(msg, "content is image/png but was declared as application/pdf");
    let e = alice.send_with_attachments(conv, "x", vec!["0123456789abcdef0123456789abcdef".into()]).await.unwrap_err();
    assert_eq!(server_code(e).0, Some(ErrorCode::UnknownAttachment));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((stored_blobs(&dir), tmp_files(&dir)), (0, 0), "nothing of a refused upload is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_cap_is_refused() {
    let s = Server::start_with(|c| c.blobs.max_file_bytes = 100_000);
    let dir = s.cfg.data_dir.clone();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let e = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf()).await.unwrap_err();
    let (code, msg) = server_code(e);
    assert_eq!(code, Some(ErrorCode::FileTooLarge), "{msg}");
    assert!(msg.contains("over the limit of 100000 bytes"), "{msg}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((stored_blobs(&dir), tmp_files(&dir)), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_midway_leaves_nothing() {
    let s = Server::start();
    let dir = s.cfg.data_dir.clone();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let pdf = pdf();
    // The data source fails after half the file: the SDK resets the stream.
    let half = &pdf[..pdf.len() / 2];
    let e = alice.upload(conv, "brief.pdf", "application/pdf", pdf.len() as u64, half, |_, _| {}).await.unwrap_err();
    assert!(matches!(e, ClientError::Transfer(_)), "{e:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tmp_files(&dir) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((stored_blobs(&dir), tmp_files(&dir)), (0, 0), "no blob, no partial file");
    // The connection is fine, and a whole upload still works.
    alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf).await.expect("a whole upload");
    assert_eq!(stored_blobs(&dir), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_upload_in_an_hour_is_refused() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    for i in 0..10 {
        alice
            .upload_bytes(conv, &format!("note{i}.txt"), "text/plain", b"a short note")
            .await
            .expect("within the limit");
    }
    let e = alice.upload_bytes(conv, "note10.txt", "text/plain", b"a short note").await.unwrap_err();
    let ClientError::Server(w) = e else { panic!("expected a server error, got {e:?}") };
    assert_eq!(w.code(), Some(ErrorCode::UploadRateExceeded));
    assert_eq!(w.limit.as_deref(), Some("uploads_per_hour"));
    assert!(w.retry_after.is_some_and(|d| d > Duration::from_secs(3000)), "{:?}", w.retry_after);
    // Another user has their own hour.
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    bob.upload_bytes(conv, "mine.txt", "text/plain", b"hello").await.expect("bob's first upload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranged_download_resumes() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let pdf = pdf();
    let p = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf).await.expect("upload");
    // The first 70,000 bytes, then (as after a cut) the rest from there.
    let first = bob.download(conv, &p.attachment_id, 0, 70_000, false).await.expect("range");
    assert_eq!((first.ok.offset, first.ok.length, first.ok.total), (0, 70_000, pdf.len() as u64));
    let mut got = first.bytes().await.expect("first part");
    let rest = bob.download(conv, &p.attachment_id, got.len() as u64, 0, false).await.expect("resume");
    assert_eq!(rest.ok.length, (pdf.len() - 70_000) as u64);
    got.extend(rest.bytes().await.expect("rest"));
    assert_eq!(got, pdf);
    let e = bob.download(conv, &p.attachment_id, pdf.len() as u64, 0, false).await.err().expect("past the end");
    assert_eq!(server_code(e).0, Some(ErrorCode::InvalidArgument));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_command_on_the_control_stream_is_refused() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let start = v1::DownloadStart { conversation_id: 1, attachment_id: "x".into(), ..Default::default() };
    let e = alice.request(v1::command::Body::DownloadStart(start)).await.unwrap_err();
    assert_eq!(server_code(e).0, Some(ErrorCode::Unsupported));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_past_the_per_connection_bound_are_refused() {
    let s = Server::start_with(|c| c.blobs.transfers_per_connection = 1);
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let pdf = pdf();
    // An upload whose source stalls halfway keeps the one transfer slot.
    let (mut feed, source) = tokio::io::duplex(1 << 20);
    tokio::io::AsyncWriteExt::write_all(&mut feed, &pdf[..pdf.len() / 2]).await.unwrap();
    let a = alice.clone();
    let size = pdf.len() as u64;
    let stalled =
        tokio::spawn(async move { a.upload(conv, "slow.pdf", "application/pdf", size, source, |_, _| {}).await });
    upload_started(&s.cfg.data_dir).await;
    let e = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf).await.unwrap_err();
    let ClientError::Server(w) = e else { panic!("expected a server error, got {e:?}") };
    assert_eq!((w.code(), w.limit.as_deref()), (Some(ErrorCode::Overloaded), Some("transfers_per_connection")));
    // Chat goes on meanwhile, and once the slot is free a transfer runs.
    alice.send_text(conv, "still here").await.expect("chat is not blocked");
    drop(feed);
    assert!(matches!(stalled.await.unwrap(), Err(ClientError::Transfer(_))));
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf).await.expect("the slot is free again");
}

/// Files in the blob store: committed ones and temporary uploads.
fn blob_files(dir: &Path) -> (usize, usize) {
    (stored_blobs(dir), tmp_files(dir))
}

/// Waits until an upload has begun on the server (its temporary file exists).
async fn upload_started(data_dir: &Path) {
    let deadline = Instant::now() + WAIT;
    while tmp_files(data_dir) == 0 {
        assert!(Instant::now() < deadline, "the upload never began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `f`'s result once it is not refused for a busy transfer slot (within `WAIT`).
async fn once_free<T, F: std::future::Future<Output = Result<T, ClientError>>>(
    mut f: impl FnMut() -> F,
) -> Result<T, ClientError> {
    let deadline = Instant::now() + WAIT;
    loop {
        match f().await {
            Err(ClientError::Server(w)) if w.code() == Some(ErrorCode::Overloaded) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => return other,
        }
    }
}

/// Idle timeout of the stalled-transfer tests, ms.
const IDLE_MS: u64 = 1_500;

async fn a_stalled_upload_times_out_and_frees_its_slot(transport: Transport) {
    let s = Server::start_with(|c| {
        c.blobs.transfers_per_connection = 1;
        c.blobs.transfer_idle_timeout_ms = IDLE_MS;
    });
    let dir = s.cfg.data_dir.clone();
    let (alice, _a) = s.connect("alice", "advocate", transport).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let pdf = pdf();
    // Half the file, then the source stalls (the stream stays open).
    let (mut feed, source) = tokio::io::duplex(1 << 20);
    tokio::io::AsyncWriteExt::write_all(&mut feed, &pdf[..pdf.len() / 2]).await.unwrap();
    let a = alice.clone();
    let size = pdf.len() as u64;
    let stalled =
        tokio::spawn(async move { a.upload(conv, "slow.pdf", "application/pdf", size, source, |_, _| {}).await });
    upload_started(&dir).await;
    let e = alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf).await.unwrap_err();
    assert_eq!(server_code(e).0, Some(ErrorCode::Overloaded), "while it runs, the stalled upload holds the slot");
    // Past the idle timeout the server has ended it: nothing kept, the slot free.
    tokio::time::sleep(Duration::from_millis(IDLE_MS)).await;
    let deadline = Instant::now() + WAIT;
    while blob_files(&dir) != (0, 0) {
        assert!(Instant::now() < deadline, "something of the stalled upload is kept: {:?}", blob_files(&dir));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ok = once_free(|| alice.upload_bytes(conv, "brief.pdf", "application/pdf", &pdf)).await;
    let ok = ok.expect("the slot is free again");
    assert_eq!(ok.size, size);
    alice.send_text(conv, "still connected").await.expect("the connection stays up");
    // When its source moves again, the stalled upload learns why it ended.
    tokio::io::AsyncWriteExt::write_all(&mut feed, &pdf[pdf.len() / 2..]).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), stalled).await.expect("it ends").unwrap().unwrap_err();
    let ClientError::Server(w) = e else { panic!("expected the server's error, got {e:?}") };
    assert_eq!((w.code(), w.limit.as_deref()), (Some(ErrorCode::Timeout), Some("transfer_idle_timeout_ms")));
    assert!(w.message.contains(&format!("no bytes of the upload arrived for {IDLE_MS} ms")), "{}", w.message);
    assert_eq!(blob_files(&dir), (1, 0), "only the whole upload is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_times_out_and_frees_its_slot_over_quic() {
    a_stalled_upload_times_out_and_frees_its_slot(Transport::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_times_out_and_frees_its_slot_over_webtransport() {
    a_stalled_upload_times_out_and_frees_its_slot(Transport::WebTransport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_never_read_times_out_and_frees_its_slot() {
    let s = Server::start_with(|c| {
        c.blobs.transfers_per_connection = 1;
        c.blobs.transfer_idle_timeout_ms = IDLE_MS;
    });
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    // Larger than the client's stream window: the server blocks once it is full.
    let text: Vec<u8> = (0..8u32 << 20).map(|i| b"abcdefghij klmnopqrstuvwxyz\n"[(i % 28) as usize]).collect();
    let big = alice.upload_bytes(conv, "record.txt", "text/plain", &text).await.expect("upload");
    let small = alice.upload_bytes(conv, "note.txt", "text/plain", b"a short note").await.expect("upload");
    let mut stalled = bob.download(conv, &big.attachment_id, 0, 0, false).await.expect("download starts");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = bob.download(conv, &small.attachment_id, 0, 0, false).await.err().expect("refused");
    assert_eq!(server_code(e).0, Some(ErrorCode::Overloaded), "the unread download holds the slot");
    tokio::time::sleep(Duration::from_millis(IDLE_MS)).await;
    let got = once_free(|| download_all(&bob, conv, &small.attachment_id, false)).await;
    let got = got.expect("the slot is free again");
    assert_eq!(got, b"a short note");
    // Reading the stalled one now ends in an error before its end, never in a short file.
    let mut read = 0usize;
    let end = loop {
        match stalled.chunk().await {
            Ok(Some(b)) => read += b.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(matches!(end, Err(ClientError::Transfer(_))), "{end:?} after {read} bytes");
    assert!(read < text.len(), "the download was cut, {read} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_paces_file_bytes_and_chat_goes_on() {
    // 1 MiB/s for the whole node: two 1 MiB uploads at once take ~1.75 s
    // (the 256 KiB burst goes at once), however fast the link.
    let s = Server::start_with(|c| c.blobs.transfer_bytes_per_sec = 1 << 20);
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut b_ev) = s.connect("bob", "client", Transport::Quic).await;
    let conv = create(&alice, ConversationKind::Group, "Smith", "", &["bob"]).await;
    let text: Vec<u8> = (0..1u32 << 20).map(|i| b"abcdefghij klmnopqrstuvwxyz\n"[(i % 28) as usize]).collect();
    let started = std::time::Instant::now();
    let (one, two, line) = tokio::join!(
        alice.upload_bytes(conv, "one.txt", "text/plain", &text),
        alice.upload_bytes(conv, "two.txt", "text/plain", &text),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let sent = std::time::Instant::now();
            alice.send_text(conv, "hearing moved to 10:00").await.expect("send");
            sent.elapsed()
        }
    );
    let took = started.elapsed();
    assert_eq!((one.expect("upload").size, two.expect("upload").size), (1 << 20, 1 << 20));
    assert!(took >= Duration::from_millis(1_500), "2 MiB at 1 MiB/s took {took:?}");
    assert!(line < Duration::from_millis(1_000), "the chat line waited {line:?} behind the files");
    let m = messages(&mut b_ev, conv, 1).await.remove(0);
    assert_eq!(m.body.and_then(|b| b.content), Some(v1::message_body::Content::Text("hearing moved to 10:00".into())));
    drop(bob);
}
