//! Templates and quick replies end to end: the real server on loopback (port
//! 0, fresh data directory), real QUIC and WebTransport, the real Rust SDK.

mod common;
use chat_client::Transport;
use chat_protocol::v1::{self, ConversationKind, ErrorCode, TemplateScope};
use common::server::*;

fn today() -> String {
    let secs = chat_protocol::unix_ms(std::time::SystemTime::now()) / 1000;
    time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap().date().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advocate_renders_a_personal_template_in_a_case_conversation() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::WebTransport).await;
    let (carol, _c) = s.connect("carol", "advocate", Transport::Quic).await;
    let case = create(&alice, ConversationKind::Case, "Smith v. Jones", "CASE-42", &["bob", "carol"]).await;
    let body = "Dear {client_name}, about {case_id} ({conversation_title}) on {date}. Regards, {my_name}";
    let t = alice.create_template(TemplateScope::Personal, "update", body).await.expect("create");
    assert_eq!((t.owner.as_str(), t.scope, t.updated_by.as_str()), ("alice", TemplateScope::Personal as i32, "alice"));
    assert!(t.id != 0 && t.updated_at_ms > 0);

    let r = alice.render_template(t.id, case).await.expect("render");
    let want = format!("Dear bob name, about CASE-42 (Smith v. Jones) on {}. Regards, alice name", today());
    assert_eq!(r.text, want);
    assert!(r.missing.is_empty(), "{:?}", r.missing);

    // In a group without a case id or a client, those placeholders stay as written and are named.
    let group = create(&alice, ConversationKind::Group, "", "", &["carol"]).await;
    let r = alice.render_template(t.id, group).await.expect("render in a group");
    assert!(r.text.starts_with("Dear {client_name}, about {case_id} ({conversation_title}) on 20"), "{}", r.text);
    assert_eq!(r.missing, ["client_name", "case_id", "conversation_title"]);

    // Another user neither lists nor renders it: it is alice's own.
    assert!(carol.list_templates().await.expect("list").is_empty());
    let e = server_error(carol.render_template(t.id, case).await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    let _ = bob;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_create_a_firm_template() {
    let s = Server::start();
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    for c in [&bob, &alice] {
        let e = server_error(c.create_template(TemplateScope::Firm, "hello", "Hello").await.unwrap_err());
        assert_eq!(e.code(), Some(ErrorCode::Forbidden));
        assert_eq!(e.message, "only admins create, update or delete firm templates");
    }
    assert!(bob.list_templates().await.expect("list").is_empty(), "nothing was saved");
    // The client's own personal template is fine.
    bob.create_template(TemplateScope::Personal, "thanks", "Thank you, {my_name}").await.expect("personal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_firm_template_is_listed_for_everyone() {
    let s = Server::start();
    let (admin, _s) = s.connect("sam", "admin", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::WebTransport).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let firm = admin.create_template(TemplateScope::Firm, "intake", "Welcome to the firm, {client_name}.").await;
    let firm = firm.expect("firm template");
    assert_eq!((firm.owner.as_str(), firm.scope), ("", TemplateScope::Firm as i32));
    let mine = alice.create_template(TemplateScope::Personal, "sig", "-- {my_name}").await.expect("personal");
    let names = |v: Vec<v1::Template>| v.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(names(alice.list_templates().await.unwrap()), ["sig", "intake"], "personal first, then the firm's");
    assert_eq!(names(bob.list_templates().await.unwrap()), ["intake"]);
    assert_eq!(names(admin.list_templates().await.unwrap()), ["intake"]);

    // Only admins change it; an update is optimistic.
    let change = v1::PutTemplate {
        id: firm.id,
        scope: TemplateScope::Firm as i32,
        name: "intake".into(),
        body: "Welcome, {client_name}.".into(),
        expected_updated_at_ms: firm.updated_at_ms,
    };
    let e = server_error(alice.put_template(change.clone()).await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = server_error(alice.delete_template(firm.id).await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let updated = admin.put_template(change.clone()).await.expect("update");
    assert!(updated.updated_at_ms > firm.updated_at_ms);
    let e = server_error(admin.put_template(change).await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::Conflict), "a second update over the old version: {e:?}");
    let listed = bob.list_templates().await.unwrap();
    assert_eq!(listed, [updated]);

    // Bad input gets a precise error.
    let e = server_error(admin.create_template(TemplateScope::Firm, "x", "Hi {client}").await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument));
    assert!(e.message.contains("unknown placeholder {client}") && e.message.contains("{case_id}"), "{}", e.message);
    let e = server_error(admin.create_template(TemplateScope::Firm, "intake", "again").await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::Conflict));
    let e = server_error(admin.create_template(TemplateScope::Firm, "Bad Name", "x").await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument));

    admin.delete_template(firm.id).await.expect("delete");
    assert!(bob.list_templates().await.unwrap().is_empty());
    alice.delete_template(mine.id).await.expect("own delete");
    let e = server_error(alice.delete_template(mine.id).await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_members_render_is_refused() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (mallory, _m) = s.connect("mallory", "advocate", Transport::WebTransport).await;
    let case = create(&alice, ConversationKind::Case, "Secret matter", "CASE-9", &["bob"]).await;
    let t = mallory.create_template(TemplateScope::Personal, "probe", "{case_id} {client_name}").await.unwrap();
    let e = server_error(mallory.render_template(t.id, case).await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    assert_eq!(e.message, format!("conversation {case} does not exist or you are not a member"));
    // The same answer as for a conversation that does not exist.
    let e = server_error(mallory.render_template(t.id, case ^ 1).await.unwrap_err());
    assert_eq!(e.message, format!("conversation {} does not exist or you are not a member", case ^ 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_limits_are_configurable_and_named() {
    let s = Server::start_with(|c| {
        c.limits.templates_per_user = 1;
        c.limits.template_name_bytes = 4;
        c.limits.max_text_bytes = 2048;
    });
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let e = server_error(alice.create_template(TemplateScope::Personal, "abcde", "x").await.unwrap_err());
    assert_eq!((e.code(), e.limit.as_deref()), (Some(ErrorCode::InvalidArgument), Some("template_name_bytes")));
    let e = server_error(alice.create_template(TemplateScope::Personal, "a", "x".repeat(2049)).await.unwrap_err());
    assert_eq!((e.code(), e.limit.as_deref()), (Some(ErrorCode::TextTooLong), Some("max_text_bytes")));
    alice.create_template(TemplateScope::Personal, "a", "x").await.expect("the first");
    let e = server_error(alice.create_template(TemplateScope::Personal, "b", "x").await.unwrap_err());
    assert_eq!((e.code(), e.limit.as_deref()), (Some(ErrorCode::InvalidArgument), Some("templates_per_user")));
    let e = server_error(alice.render_template(0, 1).await.unwrap_err());
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument));
    alice.ping().await.expect("the connection stays usable");
}
