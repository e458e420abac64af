//! The user directory and session control, end to end: the real server
//! (2 shards) on loopback over real QUIC and WebTransport, through the real
//! Rust SDK. Users exist before they can be addressed; admins provision,
//! disable, enable and revoke; everyone searches people by name.

mod common;
use chat_client::{Client, ClientError, Event, Events, Transport};
use chat_protocol::v1::{self, ConversationKind, ErrorCode, Role};
use common::server::*;

/// The error a client's connection ended with, and whether it retries.
async fn disconnected(ev: &mut Events) -> (Option<i32>, bool) {
    next_where(ev, |e| match e {
        Event::Disconnected { error, will_retry, .. } => Some((error.map(|e| e.code), will_retry)),
        _ => None,
    })
    .await
}

/// The code a refused connection attempt got.
async fn refused(s: &Server, user: &str, role: &str) -> Option<ErrorCode> {
    match Client::connect(s.client_config(user, role, Transport::Quic)).await {
        Ok(_) => panic!("{user} was let in"),
        Err(e) => code(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_id_is_refused_precisely() {
    let s = Server::start_empty_directory();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (_bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    // A typo is not a conversation with a stranger.
    let e = alice.create_conversation(ConversationKind::Private, "", "", vec!["bobb".into()]).await.unwrap_err();
    let ClientError::Server(w) = e else { panic!("{e:?}") };
    assert_eq!(w.code(), Some(ErrorCode::UnknownUser));
    assert!(w.message.contains("bobb"), "names the id: {}", w.message);
    let e = alice
        .create_conversation(ConversationKind::Group, "team", "", vec!["bob".into(), "ghost".into(), "nobody".into()])
        .await
        .unwrap_err();
    let ClientError::Server(w) = e else { panic!("{e:?}") };
    assert_eq!(w.code(), Some(ErrorCode::UnknownUser));
    assert!(w.message.contains("ghost, nobody") && !w.message.contains("bob,"), "{}", w.message);
    let list = alice.list_conversations(Default::default()).await.unwrap();
    assert!(list.conversations.is_empty(), "nothing was created: {list:?}");
    // Adding an unknown member is refused the same way; a known one is added.
    let conv = create(&alice, ConversationKind::Group, "team", "", &["bob"]).await;
    let e = alice.add_members(conv, vec!["zed".into()]).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::UnknownUser));
    let members = alice.get_members(conv).await.unwrap();
    assert_eq!(members.members.len(), 2, "nobody was added: {members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_user_is_added_before_first_sign_in_with_the_directorys_name_and_role() {
    let s = Server::start();
    let (admin, _ad) = s.connect("root", "admin", Transport::Quic).await;
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let dana = admin.put_user("dana", "Dana Partner", Role::Advocate).await.unwrap();
    assert!(dana.provisioned && !dana.disabled, "{dana:?}");
    let conv = create(&alice, ConversationKind::Group, "matter", "", &["dana"]).await;
    let members = alice.get_members(conv).await.unwrap();
    let d = members.members.iter().find(|m| m.user_id == "dana").expect("dana is a member");
    assert_eq!(d.display_name, "Dana Partner");
    // Dana signs in with a token that claims another name and the client
    // role: the directory's advocate may create a group, which a client may not.
    let (dana, _d) = s.connect("dana", "client", Transport::WebTransport).await;
    create(&dana, ConversationKind::Group, "own", "", &["alice"]).await;
    let found = alice.search_users("dana", 0, "").await.unwrap();
    assert_eq!(found.users[0].display_name, "Dana Partner", "the claims did not overwrite the directory");
    // Bad input is refused precisely, and nothing is written.
    let e = admin.put_user("a b", "X", Role::Client).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
    let e = admin.put_user("evelyn", "Evelyn", Role::Unspecified).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
    let e = alice.create_conversation(ConversationKind::Private, "", "", vec!["evelyn".into()]).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::UnknownUser));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_search_finds_by_name_and_id_paged() {
    let s = Server::start_empty_directory();
    let (admin, _ad) = s.connect("root", "admin", Transport::Quic).await;
    for (id, name) in [
        ("u-alice", "Alice Advocate"),
        ("u-alan", "Alan Smith"),
        ("u-natalia", "Natalia Kowalska"),
        ("u-bob", "Bob Client"),
        ("carl", "Carl Alvarez"),
    ] {
        admin.put_user(id, name, Role::Client).await.unwrap();
    }
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let names = |l: &v1::UserList| l.users.iter().map(|u| u.display_name.clone()).collect::<Vec<_>>();
    // Prefix matches (of any word of the name, or of the id) first, then substrings.
    let page = bob.search_users("al", 0, "").await.unwrap();
    assert_eq!(names(&page), ["Alan Smith", "Alice Advocate", "Carl Alvarez", "Natalia Kowalska"]);
    assert!(page.next.is_empty());
    // Every word must match; case does not matter.
    let page = bob.search_users("ALICE adv", 0, "").await.unwrap();
    assert_eq!(names(&page), ["Alice Advocate"]);
    // By id.
    let page = bob.search_users("u-nat", 0, "").await.unwrap();
    assert_eq!(names(&page), ["Natalia Kowalska"]);
    // Paged: one at a time, each once.
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = bob.search_users("al", 1, cursor.clone()).await.unwrap();
        all.extend(names(&page));
        if page.next.is_empty() {
            break;
        }
        cursor = page.next;
    }
    all.sort();
    assert_eq!(all, ["Alan Smith", "Alice Advocate", "Carl Alvarez", "Natalia Kowalska"]);
    // A disabled user is not offered.
    admin.disable_user("u-alan", "left the firm").await.unwrap();
    let page = bob.search_users("alan", 0, "").await.unwrap();
    assert!(page.users.is_empty(), "{page:?}");
    // Bad input: precise errors.
    let e = bob.search_users("al", 51, "").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
    let e = bob.search_users("al", 0, "not-a-cursor").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
    let e = bob.search_users("x".repeat(201), 0, "").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::InvalidArgument));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_users_session_is_closed_and_a_new_one_refused_until_enabled() {
    let s = Server::start();
    let (admin, _ad) = s.connect("root", "admin", Transport::Quic).await;
    let (_bob, mut b_ev) = s.connect("bob", "client", Transport::WebTransport).await;
    let u = admin.disable_user("bob", "offboarding").await.unwrap();
    assert!(u.disabled);
    let (code_, retry) = disconnected(&mut b_ev).await;
    assert_eq!(code_, Some(ErrorCode::UserDisabled as i32));
    assert!(!retry, "a disabled user's SDK does not come back by itself");
    assert_eq!(refused(&s, "bob", "client").await, Some(ErrorCode::UserDisabled));
    // Unknown users cannot be disabled; enabling lets bob in again.
    let e = admin.disable_user("nobody", "").await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::NotFound));
    admin.enable_user("bob", "back").await.unwrap();
    let (_bob, _b) = s.connect("bob", "client", Transport::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_closes_every_session_of_the_user_and_they_sign_in_again() {
    let s = Server::start();
    let (admin, _ad) = s.connect("root", "admin", Transport::Quic).await;
    let (_phone, mut p_ev) = s.connect("bob", "client", Transport::Quic).await;
    let (_laptop, mut l_ev) = s.connect("bob", "client", Transport::WebTransport).await;
    let (carol, mut c_ev) = s.connect("carol", "client", Transport::Quic).await;
    admin.revoke_sessions("bob", "lost phone").await.unwrap();
    for ev in [&mut p_ev, &mut l_ev] {
        let (code_, retry) = disconnected(ev).await;
        assert_eq!(code_, Some(ErrorCode::SessionRevoked as i32));
        assert!(!retry);
    }
    // Nobody else's session is touched.
    carol.ping().await.unwrap();
    assert!(c_ev.try_next().is_none_or(|e| !matches!(e, Event::Disconnected { .. })));
    // Revoking does not disable: bob signs in again.
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    bob.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admin_is_refused_every_admin_command() {
    let s = Server::start();
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    let (bob, _b) = s.connect("bob", "client", Transport::Quic).await;
    let forbidden = |r: Result<(), ClientError>| assert_eq!(code(r.unwrap_err()), Some(ErrorCode::Forbidden));
    forbidden(alice.put_user("x", "X", Role::Admin).await.map(|_| ()));
    forbidden(alice.disable_user("bob", "").await.map(|_| ()));
    forbidden(alice.enable_user("bob", "").await.map(|_| ()));
    forbidden(alice.revoke_sessions("bob", "").await);
    // Nothing happened to bob.
    bob.ping().await.unwrap();
    let page = bob.search_users("x", 0, "").await.unwrap();
    assert!(page.users.is_empty(), "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatd_users_import_provisions_a_csv_or_json_file_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let import = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"))
            .args(["users", "import"])
            .arg(&file)
            .env("CHAT_DATA_DIR", dir.path().join("data"))
            .env_remove("CHAT_CONFIG")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let (ok, said) = import("firm.csv", "id,display_name,role\nann,\"Smith, Ann\",advocate\nben,Ben Client,client\n");
    assert!(ok && said.contains("imported 2 users"), "{said}");
    let (ok, said) = import("firm.json", r#"[{"id":"cy","display_name":"Cy Clerk","role":"admin"}]"#);
    assert!(ok && said.contains("imported 1 users"), "{said}");
    // A bad line refuses the whole file: "dee" on the line before it is not imported.
    let (ok, said) = import("bad.csv", "id,display_name,role\ndee,Dee,client\nfay,Fay,king\n");
    assert!(!ok && said.contains("line 3") && said.contains("king"), "{said}");

    let mut cfg = config(&dir.path().join("data"));
    cfg.data_dir = dir.path().join("data");
    let handle = chat_server::start(cfg.clone()).unwrap();
    let s = Server { handle: Some(handle), cfg, _dir: None };
    let (alice, _a) = s.connect("alice", "advocate", Transport::Quic).await;
    create(&alice, ConversationKind::Group, "imported", "", &["ann", "ben", "cy"]).await;
    let e = alice.create_conversation(ConversationKind::Private, "", "", vec!["dee".into()]).await.unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::UnknownUser));
    let page = alice.search_users("smith", 0, "").await.unwrap();
    assert_eq!(page.users.len(), 1);
    assert_eq!((page.users[0].id.as_str(), page.users[0].role), ("ann", Role::Advocate as i32));
}
