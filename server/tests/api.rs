//! The server API end to end: a real chatd, service accounts made over its
//! control socket, a real HTTP client, and people on the Rust SDK who see
//! what the case-management system does (conversations, members, system
//! messages) as it happens.

mod common;

use chat_client::{Event, Transport};
use chat_protocol::v1::{self, ConversationKind, MembershipChange, MessageKind};
use chat_server::api::accounts::{Done, Op};
use chat_server::store::service_accounts::Scope;
use common::api::{accounts, call, create_account, raw};
use common::server::{Server, next_where};
use serde_json::{Value, json};
use std::time::Duration;

const ALL: &[Scope] = &[Scope::Read, Scope::Write, Scope::Admin];

fn id_of(v: &Value) -> u64 {
    v["id"].as_str().expect("a string id").parse().expect("decimal")
}

/// Provisioning, a case conversation's lifecycle with its team kept in step,
/// system messages seen live by the SDK, history and listing by case, and
/// every call on the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_conversation_follows_the_case_management_system() {
    let s = Server::start();
    let web = s.h().web_addr().unwrap();
    let cms = create_account(&s.cfg.data_dir, "cms", ALL).await;
    let api = |m: &'static str, p: String, b: Option<Value>| {
        let cms = cms.clone();
        async move { call(web, Some(&cms), m, &p, b).await }
    };

    // A new colleague is provisioned before their first sign-in.
    let r =
        api("POST", "/users".into(), Some(json!({"id": "zoe", "display_name": "Zoë Adler", "role": "advocate"}))).await;
    assert_eq!(
        (r.status, r.json["id"].as_str(), r.json["role"].as_str()),
        (200, Some("zoe"), Some("advocate")),
        "{}",
        r.json
    );

    let (alice, mut alice_ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, mut bob_ev) = s.connect("bob", "client", Transport::Quic).await;

    let body = json!({"title": "Matter 17: team", "members": ["alice", "bob"]});
    let r = api("POST", "/cases/M%2F17/conversations".into(), Some(body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let conv = id_of(&r.json["conversation"]);
    assert_eq!(r.json["conversation"]["case_id"], "M/17");
    assert_eq!(r.json["conversation"]["kind"], "case");
    let again = api("POST", "/cases/M%2F17/conversations".into(), Some(body)).await;
    assert_eq!((again.status, again.json["existing"].as_bool()), (200, Some(true)), "a retry answers the first");
    assert_eq!(id_of(&again.json["conversation"]), conv);

    // A system message reaches the members live, marked as such.
    let posted = json!({"client_msg_id": "hearing-1", "text": "Hearing moved to 14 May"});
    let r = api("POST", format!("/conversations/{conv}/messages"), Some(posted.clone())).await;
    assert_eq!(r.status, 201, "{}", r.json);
    let seq = r.json["seq"].as_u64().unwrap();
    let m = next_where(&mut alice_ev, |e| match e {
        Event::Message(m) if m.conversation_id == conv && m.seq == seq => Some(m),
        _ => None,
    })
    .await;
    assert_eq!((m.kind, m.sender_id.as_str()), (MessageKind::System as i32, "svc:cms"));
    assert_eq!(common::text(&m), "Hearing moved to 14 May");
    let retry = api("POST", format!("/conversations/{conv}/messages"), Some(posted)).await;
    assert_eq!(
        (retry.status, retry.json["seq"].as_u64(), retry.json["duplicate"].as_bool()),
        (200, Some(seq), Some(true))
    );
    let h = bob.history(conv, 0, 0, 50).await.unwrap();
    assert!(h.messages.iter().any(|m| m.seq == seq && m.kind == MessageKind::System as i32), "in the history too");

    // People's messages are read back through the API with the clients' paging.
    alice.send_text(conv, "Draft filed").await.unwrap();
    let r = api("GET", format!("/conversations/{conv}/messages?after=0&limit=10"), None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let msgs = r.json["messages"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> =
        msgs.iter().map(|m| (m["kind"].as_str().unwrap(), m["text"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("system", "Hearing moved to 14 May"), ("user", "Draft filed")]);
    let r = api("GET", format!("/conversations/{conv}/messages?after={seq}"), None).await;
    assert_eq!(r.json["messages"].as_array().unwrap().len(), 1, "after the system message: one");

    // The case team changes: bob leaves it, zoe joins; bob loses access at once.
    let r = api("PUT", "/cases/M%2F17/members".into(), Some(json!({"members": ["alice", "zoe"]}))).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["conversations"][0]["added"], json!(["zoe"]));
    assert_eq!(r.json["conversations"][0]["removed"], json!(["bob"]));
    // His live session is told (the conversation as he may no longer see it).
    next_where(&mut bob_ev, |e| match e {
        Event::Conversation(c) if c.conversation.as_ref().is_some_and(|c| c.id == conv) && c.my_role == 0 => Some(()),
        _ => None,
    })
    .await;
    next_where(&mut alice_ev, |e| match e {
        Event::Membership(m) if m.user_id == "bob" && m.change == MembershipChange::Removed as i32 => Some(()),
        _ => None,
    })
    .await;
    let e = bob.history(conv, 0, 0, 10).await.unwrap_err();
    assert_eq!(common::server::code(e), Some(v1::ErrorCode::NotFound));
    let r = api("PUT", "/cases/M%2F17/members".into(), Some(json!({"members": ["zoe", "alice", "zoe"]}))).await;
    assert_eq!(r.json["conversations"][0], json!({"id": conv.to_string(), "added": [], "removed": []}), "idempotent");

    let r = api("GET", format!("/conversations/{conv}"), None).await;
    let mut members: Vec<&str> =
        r.json["members"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    members.sort();
    assert_eq!(members, ["alice", "svc:cms", "zoe"]);
    let r = api("GET", "/cases/M%2F17/conversations".into(), None).await;
    assert_eq!(r.json["conversations"].as_array().unwrap().len(), 1, "{}", r.json);
    assert_eq!(r.json["conversations"][0]["member_count"], 3);
    let other = api("GET", "/cases/M-18/conversations".into(), None).await;
    assert_eq!((other.status, other.json["conversations"].as_array().map(Vec::len)), (200, Some(0)));

    // The matter closes: archived, nothing more can be posted.
    let r = api("POST", "/cases/M%2F17/archive".into(), None).await;
    assert_eq!((r.status, r.json["archived"].clone()), (200, json!([conv.to_string()])));
    let r = api("POST", format!("/conversations/{conv}/messages"), Some(json!({"client_msg_id": "late", "text": "x"})))
        .await;
    r.assert_problem(409, "ERROR_CODE_ARCHIVED");
    let r = api("GET", "/cases/M%2F17/conversations?include_archived=true".into(), None).await;
    assert_eq!(r.json["conversations"][0]["archived"], true);

    // Deactivation closes the user's sessions; every call is on the audit trail.
    let r = api("POST", "/users/bob/deactivate".into(), Some(json!({"reason": "left the firm"}))).await;
    assert_eq!((r.status, r.json["disabled"].as_bool()), (200, Some(true)), "{}", r.json);
    let (admin, _ev) = s.connect("ida", "admin", Transport::Quic).await;
    let read = v1::ReadAudit { user: "svc:cms".into(), kinds: vec!["api.call".into()], ..Default::default() };
    let mut calls = Vec::new();
    for _ in 0..50 {
        calls = admin.read_audit_all(read.clone()).await.unwrap();
        if calls.len() >= 14 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(calls.len() >= 14, "every call audited: {}", calls.len());
    let archived: Value =
        serde_json::from_str(&calls.iter().find(|c| c.details.contains("archive")).unwrap().details).unwrap();
    assert_eq!((archived["method"].as_str(), archived["status"].as_u64()), (Some("POST"), Some(200)));
    drop(alice);
}

/// Each kind of bad call gets its precise problem, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_problem_details() {
    let s = Server::start_with(|c| c.api.max_body_bytes = 2048);
    let web = s.h().web_addr().unwrap();
    let dir = &s.cfg.data_dir;
    let cms = create_account(dir, "cms", ALL).await;
    let reader = create_account(dir, "reader", &[Scope::Read]).await;
    let r =
        call(web, Some(&cms), "POST", "/cases/C-1/conversations", Some(json!({"title": "t", "members": ["alice"]})))
            .await;
    let conv = id_of(&r.json["conversation"]);

    // Credentials: none, malformed, wrong secret, too few scopes.
    let r = call(web, None, "GET", "/cases/C-1/conversations", None).await;
    r.assert_problem(401, "ERROR_CODE_UNAUTHENTICATED");
    assert!(r.headers.get("www-authenticate").is_some());
    call(web, Some("not-a-credential"), "GET", "/cases/C-1/conversations", None)
        .await
        .assert_problem(401, "ERROR_CODE_UNAUTHENTICATED");
    let wrong = format!("{}0", &cms[..cms.len() - 1]).replace("0", "1");
    call(web, Some(&wrong), "GET", "/cases/C-1/conversations", None)
        .await
        .assert_problem(401, "ERROR_CODE_UNAUTHENTICATED");
    let r = call(
        web,
        Some(&reader),
        "POST",
        &format!("/conversations/{conv}/messages"),
        Some(json!({"client_msg_id": "a", "text": "x"})),
    )
    .await;
    r.assert_problem(403, "ERROR_CODE_FORBIDDEN");
    assert!(r.json["detail"].as_str().unwrap().contains("write"), "{}", r.json);
    call(web, Some(&reader), "POST", "/users", Some(json!({"id": "x", "display_name": "x", "role": "client"})))
        .await
        .assert_problem(403, "ERROR_CODE_FORBIDDEN");

    // Bodies: malformed, unknown fields, oversize, bad values.
    let msgs = format!("/conversations/{conv}/messages");
    raw(web, Some(&cms), "POST", &msgs, "{\"client_msg_id\": ".into())
        .await
        .assert_problem(400, "ERROR_CODE_MALFORMED");
    call(web, Some(&cms), "POST", &msgs, Some(json!({"client_msg_id": "a", "text": "x", "html": "<b>"})))
        .await
        .assert_problem(400, "ERROR_CODE_MALFORMED");
    let big = json!({"client_msg_id": "big", "text": "x".repeat(4096)});
    call(web, Some(&cms), "POST", &msgs, Some(big)).await.assert_problem(413, "ERROR_CODE_FRAME_TOO_LARGE");
    call(web, Some(&cms), "POST", &msgs, Some(json!({"client_msg_id": "", "text": "x"})))
        .await
        .assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");
    call(web, Some(&cms), "POST", "/users", Some(json!({"id": "x", "display_name": "x", "role": "service"})))
        .await
        .assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");
    call(web, Some(&cms), "GET", &format!("{msgs}?limit=lots"), None)
        .await
        .assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");

    // Unknown things: case, user, conversation, path, method.
    let r = call(web, Some(&cms), "PUT", "/cases/NOPE/members", Some(json!({"members": ["alice"]}))).await;
    r.assert_problem(404, "ERROR_CODE_NOT_FOUND");
    let r =
        call(web, Some(&cms), "PUT", "/cases/C-1/members", Some(json!({"members": ["alice", "nobody-here"]}))).await;
    r.assert_problem(422, "ERROR_CODE_UNKNOWN_USER");
    assert!(r.json["detail"].as_str().unwrap().contains("nobody-here"));
    call(web, Some(&cms), "PUT", "/cases/C-1/members", Some(json!({"members": ["a:b"]})))
        .await
        .assert_problem(400, "ERROR_CODE_INVALID_ARGUMENT");
    call(web, Some(&cms), "POST", "/users/nobody-here/deactivate", Some(json!({"reason": "r"})))
        .await
        .assert_problem(404, "ERROR_CODE_NOT_FOUND");
    call(web, Some(&cms), "GET", "/conversations/12345", None).await.assert_problem(404, "ERROR_CODE_NOT_FOUND");
    call(web, Some(&cms), "GET", "/nothing", None).await.assert_problem(404, "ERROR_CODE_NOT_FOUND");
    let r = call(web, Some(&cms), "DELETE", &msgs, None).await;
    assert_eq!((r.status, r.headers.get("allow").and_then(|v| v.to_str().ok())), (405, Some("GET, POST")));
    // A conversation the service account was not given is not in its scope.
    let (alice, _ev) = s.connect("alice", "advocate", Transport::Quic).await;
    let private =
        alice.create_conversation(ConversationKind::Group, "mine", "", vec!["bob".to_string()]).await.unwrap();
    let private = private.summary.unwrap().conversation.unwrap().id;
    call(web, Some(&cms), "GET", &format!("/conversations/{private}/messages"), None)
        .await
        .assert_problem(404, "ERROR_CODE_NOT_FOUND");

    // Nothing above changed the conversation: the members are as created.
    let r = call(web, Some(&reader), "GET", &format!("/conversations/{conv}"), None).await;
    assert_eq!(r.status, 404, "the reader was never given it");
    let r = call(web, Some(&cms), "GET", &format!("/conversations/{conv}"), None).await;
    assert_eq!(r.json["member_count"], 2, "{}", r.json);
    assert_eq!(r.json["last_seq"], 0, "nothing was posted");

    // Rotation and revocation hold at once.
    let rotated = match accounts(dir, Op::Rotate { id: "cms".into() }).await.unwrap() {
        Done::Credential { credential, .. } => credential,
        other => panic!("{other:?}"),
    };
    call(web, Some(&cms), "GET", "/cases/C-1/conversations", None)
        .await
        .assert_problem(401, "ERROR_CODE_UNAUTHENTICATED");
    assert_eq!(call(web, Some(&rotated), "GET", "/cases/C-1/conversations", None).await.status, 200);
    accounts(dir, Op::Revoke { id: "cms".into() }).await.unwrap();
    let r = call(web, Some(&rotated), "GET", "/cases/C-1/conversations", None).await;
    r.assert_problem(401, "ERROR_CODE_UNAUTHENTICATED");
    assert!(r.json["detail"].as_str().unwrap().contains("revoked"));
    let again =
        accounts(dir, Op::Create { id: "cms".into(), display_name: "x".into(), scopes: vec![Scope::Read] }).await;
    assert!(again.unwrap_err().contains("exists"), "an id is never reused");
    let bad =
        accounts(dir, Op::Create { id: "Bad_Id".into(), display_name: "x".into(), scopes: vec![Scope::Read] }).await;
    assert!(bad.unwrap_err().contains("a-z"));
}

/// Past `api.requests_per_minute` a credential is refused with 429 and
/// Retry-After; another credential is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_credential_has_its_own_rate() {
    let s = Server::start_with(|c| c.api.requests_per_minute = 3);
    let web = s.h().web_addr().unwrap();
    let a = create_account(&s.cfg.data_dir, "a", &[Scope::Read]).await;
    let b = create_account(&s.cfg.data_dir, "b", &[Scope::Read]).await;
    for _ in 0..3 {
        assert_eq!(call(web, Some(&a), "GET", "/cases/C/conversations", None).await.status, 200);
    }
    let r = call(web, Some(&a), "GET", "/cases/C/conversations", None).await;
    r.assert_problem(429, "ERROR_CODE_RATE_LIMITED");
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(r.json["limit"], "requests_per_minute");
    assert_eq!(call(web, Some(&b), "GET", "/cases/C/conversations", None).await.status, 200);
}

/// The OpenAPI document is served and lists exactly the routes the server has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_routes() {
    let s = Server::start();
    let r = call(s.h().web_addr().unwrap(), None, "GET", "/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["openapi"], "3.1.0");
    let paths = r.json["paths"].as_object().unwrap();
    let documented: Vec<(String, Vec<String>)> =
        paths.iter().map(|(p, ops)| (p.clone(), ops.as_object().unwrap().keys().cloned().collect())).collect();
    let mut served: Vec<(String, Vec<String>)> = chat_server::api::route::PATHS
        .iter()
        .map(|(p, ms)| (p.to_string(), ms.iter().map(|m| m.to_string()).collect()))
        .collect();
    served.sort();
    let mut documented = documented;
    documented.iter_mut().for_each(|(_, ms)| ms.sort());
    documented.sort();
    assert_eq!(documented, served);
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let scoped = op.get("x-scope").is_some();
            assert_eq!(scoped, path != "/openapi.json", "{method} {path} names its scope");
        }
    }
}

/// System admins manage service accounts from the apps (the same operations
/// as `chatd service-accounts`); others are refused, bad asks precisely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_service_accounts_from_the_apps() {
    use chat_protocol::v1::{command::Body, reply};
    let s = Server::start();
    let web = s.h().web_addr().unwrap();
    let (admin, _a) = s.connect("ida", "admin", Transport::Quic).await;
    let (alice, _b) = s.connect("alice", "advocate", Transport::Quic).await;
    let create = |id: &str, scopes: &[&str]| {
        Body::CreateServiceAccount(v1::CreateServiceAccount {
            id: id.into(),
            display_name: "Case system".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        })
    };
    let e = alice.request(create("cms", &["read"])).await.unwrap_err();
    assert_eq!(common::server::code(e), Some(v1::ErrorCode::Forbidden));
    let made = match admin.request(create("cms", &["read", "write"])).await.unwrap() {
        reply::Result::ServiceAccountCredential(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(made.account.as_ref().unwrap().scopes, ["read", "write"]);
    assert_eq!(call(web, Some(&made.credential), "GET", "/cases/C/conversations", None).await.status, 200);
    let e = admin.request(create("cms", &["read"])).await.unwrap_err();
    assert_eq!(common::server::code(e), Some(v1::ErrorCode::Conflict));
    let e = admin.request(create("dms", &["root"])).await.unwrap_err();
    assert_eq!(common::server::code(e), Some(v1::ErrorCode::InvalidArgument));
    let rotated = match admin.request(Body::RotateServiceAccount(v1::RotateServiceAccount { id: "cms".into() })).await {
        Ok(reply::Result::ServiceAccountCredential(c)) => c.credential,
        other => panic!("{other:?}"),
    };
    call(web, Some(&made.credential), "GET", "/cases/C/conversations", None)
        .await
        .assert_problem(401, "ERROR_CODE_UNAUTHENTICATED");
    assert_eq!(call(web, Some(&rotated), "GET", "/cases/C/conversations", None).await.status, 200);
    match admin.request(Body::RevokeServiceAccount(v1::RevokeServiceAccount { id: "cms".into() })).await.unwrap() {
        reply::Result::ServiceAccounts(l) => {
            assert!(l.accounts[0].revoked_at_ms > 0 && l.accounts[0].revoked_by == "ida")
        }
        other => panic!("{other:?}"),
    }
    call(web, Some(&rotated), "GET", "/cases/C/conversations", None)
        .await
        .assert_problem(401, "ERROR_CODE_UNAUTHENTICATED");
    let e =
        admin.request(Body::RotateServiceAccount(v1::RotateServiceAccount { id: "nobody".into() })).await.unwrap_err();
    assert_eq!(common::server::code(e), Some(v1::ErrorCode::NotFound));
    match admin.request(Body::ListServiceAccounts(v1::ListServiceAccounts {})).await.unwrap() {
        reply::Result::ServiceAccounts(l) => assert_eq!((l.accounts.len(), l.accounts[0].id.as_str()), (1, "cms")),
        other => panic!("{other:?}"),
    }
}
