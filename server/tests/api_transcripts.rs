//! Transcripts and files through the API: a case conversation with edits, a
//! deletion, a file and a system message, exported as PDF (read back to
//! text with poppler's `pdftotext`) and as JSON, in the firm's time zone,
//! with the audit chain's head; each export on the audit trail with the
//! document's SHA-256. A case's export holds each of its conversations.

mod common;

use chat_client::Transport;
use chat_protocol::v1;
use chat_server::store::service_accounts::Scope;
use common::api::{call, create_account};
use common::server::Server;
use serde_json::{Value, json};
use std::time::Duration;

/// The PDF's text, as `pdftotext -layout` reads it.
fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn raw_get(web: std::net::SocketAddr, cred: &str, path: &str) -> (u16, hyper::HeaderMap, Vec<u8>) {
    use http_body_util::{BodyExt, Full};
    let tcp = tokio::net::TcpStream::connect(web).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("/api/v1{path}"))
        .header("host", web.to_string())
        .header("authorization", format!("Bearer {cred}"))
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status.as_u16(), parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_are_court_ready_and_audited() {
    let s = Server::start_with(|c| c.api.time_zone = "Europe/Berlin".into());
    let web = s.h().web_addr().unwrap();
    let cms = create_account(&s.cfg.data_dir, "cms", &[Scope::Read, Scope::Write]).await;
    let make = |title: &'static str| {
        let cms = cms.clone();
        async move {
            let r = call(
                web,
                Some(&cms),
                "POST",
                "/cases/2024-CV-7/conversations",
                Some(json!({"title": title, "members": ["alice", "bob"]})),
            )
            .await;
            r.json["conversation"]["id"].as_str().unwrap().parse::<u64>().unwrap()
        }
    };
    let conv = make("Adler v. Brandt").await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let first = alice.send_text(conv, "Please review the draft settlement").await.unwrap();
    alice.edit(conv, first.seq, "Please review the revised settlement").await.unwrap();
    let regret = bob.send_text(conv, "I would rather not say this in writing").await.unwrap();
    bob.delete(conv, regret.seq).await.unwrap();
    let att = alice.upload_bytes(conv, "brief.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n").await.unwrap();
    alice.send_with_attachments(conv, "The brief is attached", vec![att.attachment_id.clone()]).await.unwrap();
    let sys = json!({"client_msg_id": "h1", "text": "Hearing moved to 14 May"});
    assert_eq!(call(web, Some(&cms), "POST", &format!("/conversations/{conv}/messages"), Some(sys)).await.status, 201);
    // Long enough for more than one page.
    for i in 0..60 {
        bob.send_text(conv, format!("Line {i} of a long exchange about the terms, which the transcript wraps where it must so that nothing runs off the page")).await.unwrap();
    }

    let (status, headers, pdf) = raw_get(web, &cms, &format!("/conversations/{conv}/transcript")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(headers.get("content-type").unwrap(), "application/pdf");
    assert!(headers.get("content-disposition").unwrap().to_str().unwrap().contains(&format!("transcript-{conv}.pdf")));
    assert!(pdf.starts_with(b"%PDF-"));
    // TRANSCRIPT_OUT=file.pdf keeps it, to look at.
    if let Ok(keep) = std::env::var("TRANSCRIPT_OUT") {
        std::fs::write(keep, &pdf).unwrap();
    }
    let text = pdf_text(&pdf);
    for want in [
        "Transcript",
        "Adler v. Brandt",
        "Case 2024-CV-7",
        "alice name (alice) — advocate, member of the conversation",
        "bob name (bob) — client, member of the conversation",
        "cms system (svc:cms) — service, admin of the conversation",
        "Please review the revised settlement",
        "(edited ",
        "[message deleted by bob]",
        "Attachment: brief.pdf (15 bytes, application/pdf) SHA-256",
        "Hearing moved to 14 May",
        "system message",
        "Line 59 of a long exchange",
        "Page 1 of ",
        "times in Europe/Berlin",
        "Audit chain ",
    ] {
        assert!(text.contains(want), "the transcript lacks {want:?}:\n{text}");
    }
    assert!(text.contains(&att.sha256[..40]), "the file's SHA-256");
    assert!(!text.contains("rather not say"), "a deleted message's text is not shown");
    assert!(!text.contains("draft settlement"), "the edited text shows its last version");
    assert!(text.contains(" CET") || text.contains(" CEST"), "times in the firm's zone:\n{text}");
    let pages = text.matches("Page ").count();
    assert!(pages >= 2 && text.contains(&format!("Page {pages} of {pages}")), "numbered pages: {pages}");
    assert!(!text.contains("Line 5 of a long exchange about the terms, which the transcript wraps where it must so that nothing runs off the page"), "long lines are wrapped");

    // The export is on the audit trail with the document's SHA-256.
    let (admin, _ev) = s.connect("ida", "admin", Transport::Quic).await;
    let read = v1::ReadAudit { kinds: vec!["transcript.exported".into()], ..Default::default() };
    let mut entries = Vec::new();
    for _ in 0..50 {
        entries = admin.read_audit_all(read.clone()).await.unwrap();
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let details: Value = serde_json::from_str(&entries[0].details).unwrap();
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &pdf));
    assert_eq!((details["sha256"].as_str(), details["format"].as_str()), (Some(sha.as_str()), Some("pdf")));
    assert_eq!(entries[0].actor, "svc:cms");
    assert!(text.contains(&format!("at entry {}", details["audit_head_seq"])), "the header names the chain head");

    // JSON, and a case with two conversations.
    let (status, _, body) = raw_get(web, &cms, &format!("/conversations/{conv}/transcript?format=json")).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let entries = doc["conversations"][0]["entries"].as_array().unwrap();
    let deleted = entries.iter().find(|e| e["seq"] == regret.seq).unwrap();
    assert_eq!((deleted["text"].clone(), deleted["deleted_by"].as_str()), (Value::Null, Some("bob")));
    assert_eq!(doc["header"]["time_zone"], "Europe/Berlin");
    let second = make("Adler v. Brandt: client").await;
    alice.send_text(second, "Only for the client").await.unwrap();
    let (status, _, pdf) = raw_get(web, &cms, "/cases/2024-CV-7/transcript").await;
    assert_eq!(status, 200);
    let text = pdf_text(&pdf);
    assert!(text.contains("Only for the client") && text.contains("Please review the revised settlement"), "{text}");
    assert!(
        text.find("Adler v. Brandt\n").unwrap_or(0) < text.find("Adler v. Brandt: client").unwrap(),
        "oldest first"
    );

    // The bundle: both documents, the files, and the manifest last, streamed.
    let (status, headers, tar) = raw_get(web, &cms, &format!("/conversations/{conv}/transcript?format=bundle")).await;
    assert_eq!((status, headers.get("content-type").unwrap().to_str().unwrap()), (200, "application/x-tar"));
    let members = common::archive::untar(&tar);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    let file = format!("files/{conv}/{}-brief.pdf", att.attachment_id);
    assert_eq!(names, ["transcript.pdf", "transcript.json", file.as_str(), "manifest.json"]);
    assert_eq!(members[2].1, b"%PDF-1.4\n%%EOF\n", "the file's bytes");
    assert!(pdf_text(&members[0].1).contains("Hearing moved to 14 May"));
    let manifest: Value = serde_json::from_slice(&members[3].1).unwrap();
    for (i, listed) in manifest["files"].as_array().unwrap().iter().enumerate() {
        let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &members[i].1));
        assert_eq!((listed["path"].as_str(), listed["sha256"].as_str()), (Some(names[i]), Some(sha.as_str())));
    }

    // The file itself, and bad asks.
    let (status, headers, file) =
        raw_get(web, &cms, &format!("/conversations/{conv}/attachments/{}", att.attachment_id)).await;
    assert_eq!((status, file.as_slice()), (200, b"%PDF-1.4\n%%EOF\n".as_slice()));
    assert!(headers.get("content-disposition").unwrap().to_str().unwrap().contains("brief.pdf"));
    let r = call(web, Some(&cms), "GET", &format!("/conversations/{conv}/transcript?format=doc"), None).await;
    r.assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");
    call(web, Some(&cms), "GET", "/conversations/999/transcript", None)
        .await
        .assert_problem(404, "ERROR_CODE_NOT_FOUND");
    call(web, Some(&cms), "GET", "/cases/NONE/transcript", None).await.assert_problem(404, "ERROR_CODE_NOT_FOUND");
    call(web, Some(&cms), "GET", &format!("/conversations/{conv}/attachments/nope"), None)
        .await
        .assert_problem(404, "ERROR_CODE_UNKNOWN_ATTACHMENT");
}
