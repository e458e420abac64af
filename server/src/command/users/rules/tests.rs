//! The directory's rules, unit by unit.

use super::*;

fn ident(id: &str, name: &str, role: Role) -> Identity {
    Identity { user_id: id.into(), display_name: name.into(), role, expires_at: 0 }
}

fn user(id: &str, name: &str) -> UserRecord {
    UserRecord { id: id.into(), display_name: name.into(), role: Role::Client as i32, ..UserRecord::default() }
}

#[test]
fn first_sign_in_creates_from_claims() {
    let s = sign_in(None, &ident("bob", "Bob B.", Role::Client)).unwrap();
    assert!(s.write);
    assert_eq!(s.user, user("bob", "Bob B."));
}

#[test]
fn claims_update_a_user_made_from_claims_but_not_a_provisioned_one() {
    let seen = user("bob", "Bob");
    let s = sign_in(Some(seen.clone()), &ident("bob", "Bob", Role::Client)).unwrap();
    assert!(!s.write, "nothing changed, nothing written");
    let s = sign_in(Some(seen), &ident("bob", "Robert", Role::Advocate)).unwrap();
    assert!(s.write);
    assert_eq!((s.user.display_name.as_str(), s.user.role), ("Robert", Role::Advocate as i32));
    let provisioned = UserRecord { provisioned: true, ..user("bob", "Bob Directory") };
    let s = sign_in(Some(provisioned.clone()), &ident("bob", "Claims", Role::Admin)).unwrap();
    assert!(!s.write);
    assert_eq!(s.user, provisioned, "the directory's name and role win");
}

#[test]
fn a_disabled_user_is_refused() {
    let off = UserRecord { disabled: true, ..user("bob", "Bob") };
    let e = sign_in(Some(off), &ident("bob", "Bob", Role::Client)).unwrap_err();
    assert_eq!(e.code, ErrorCode::UserDisabled);
}

#[test]
fn unknown_ids_are_named_once_in_order() {
    let asked: Vec<String> = ["carol", "bob", "zed", "carol"].iter().map(|s| s.to_string()).collect();
    let unknown = unknown_ids(&asked, &[user("bob", "Bob")]);
    assert_eq!(unknown, ["carol", "zed"]);
    let e = unknown_users_error(&unknown);
    assert_eq!(e.code, ErrorCode::UnknownUser);
    assert!(e.message.contains("carol, zed"), "{}", e.message);
    let many: Vec<String> = (0..25).map(|i| format!("u{i}")).collect();
    assert!(unknown_users_error(&many).message.contains("and 5 more"));
}

#[test]
fn search_matches_prefixes_first_then_substrings() {
    let words = query_words("  Ali ").unwrap();
    assert_eq!(rank(&words, &user("alice", "Alice Advocate")), Some(0));
    assert_eq!(rank(&words, &user("x1", "Natalia")), Some(1));
    assert_eq!(rank(&words, &user("bob", "Bob")), None);
    assert_eq!(rank(&words, &UserRecord { disabled: true, ..user("alice", "Alice") }), None);
    // Every word must match, the id or the name.
    let words = query_words("smith adv").unwrap();
    assert_eq!(rank(&words, &user("asmith", "Alice Advocate")), Some(1));
    assert_eq!(rank(&words, &user("asmith", "Alice")), None);
    assert_eq!(rank(&[], &user("bob", "Bob")), Some(0), "an empty query lists everyone");
    assert!(query_words(&"x".repeat(MAX_QUERY + 1)).is_err());
    let mut page = vec![(1, user("b", "Zed")), (0, user("c", "beth")), (0, user("a", "Anna"))];
    order(&mut page);
    let ids: Vec<&str> = page.iter().map(|(_, u)| u.id.as_str()).collect();
    assert_eq!(ids, ["a", "c", "b"]);
}

#[test]
fn cursors_round_trip_and_bad_ones_are_refused() {
    assert_eq!(cursor("").unwrap(), None);
    assert_eq!(cursor(&next_cursor("bob")).unwrap(), Some("bob".into()));
    assert_eq!(cursor("bob").unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(cursor("u.a b").unwrap_err().code, ErrorCode::InvalidArgument);
}

#[test]
fn put_is_checked() {
    let ok = v1::PutUser { id: "bob".into(), display_name: "Bob".into(), role: Role::Client as i32 };
    let rec = check_put(&ok).unwrap();
    assert!(rec.provisioned && !rec.disabled);
    let no_role = v1::PutUser { role: 0, ..ok.clone() };
    assert_eq!(check_put(&no_role).unwrap_err().code, ErrorCode::InvalidArgument);
    let bad_id = v1::PutUser { id: "a b".into(), ..ok.clone() };
    assert_eq!(check_put(&bad_id).unwrap_err().code, ErrorCode::InvalidArgument);
    let long = v1::PutUser { display_name: "x".repeat(MAX_DISPLAY_NAME + 1), ..ok.clone() };
    assert_eq!(check_put(&long).unwrap_err().code, ErrorCode::InvalidArgument);
    let control = v1::PutUser { display_name: "a\nb".into(), ..ok };
    assert_eq!(check_put(&control).unwrap_err().code, ErrorCode::InvalidArgument);
    assert!(check_admin_target("bob", &"r".repeat(MAX_REASON + 1)).is_err());
}

#[test]
fn csv_import_with_quotes() {
    let text = "id,display_name,role\r\nalice,\"Smith, Alice\",advocate\n\nbob,\"Bob \"\"B\"\"\",client\n";
    let users = parse_import(text).unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].display_name, "Smith, Alice");
    assert_eq!(users[1].display_name, "Bob \"B\"");
    assert!(users.iter().all(|u| u.provisioned));
}

#[test]
fn json_import() {
    let text = r#"[{"id":"alice","display_name":"Alice","role":"admin"},{"id":"bob","role":"client"}]"#;
    let users = parse_import(text).unwrap();
    assert_eq!(users[0].role, Role::Admin as i32);
    assert_eq!(users[1].display_name, "");
}

#[test]
fn a_bad_import_names_its_line_and_imports_nothing() {
    let e = parse_import("id,name\nalice,Alice").unwrap_err();
    assert_eq!(e.line, 1);
    let e = parse_import("id,display_name,role\nalice,Alice,advocate\nbob,Bob,king\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.why.contains("king"), "{e}");
    let e = parse_import("id,display_name,role\nalice,Alice\n").unwrap_err();
    assert_eq!((e.line, e.why.as_str()), (2, "3 fields expected, got 2"));
    let e = parse_import("id,display_name,role\nalice,\"Alice,advocate\n").unwrap_err();
    assert_eq!(e.line, 2);
    let e = parse_import("id,display_name,role\na,A,client\na,B,client\n").unwrap_err();
    assert_eq!(e.line, 3);
    let e = parse_import(r#"[{"id":"alice","role":"client","extra":1}]"#).unwrap_err();
    assert!(e.why.contains("extra"), "{e}");
    assert!(parse_import("[1,2").is_err());
    assert_eq!(parse_import("").unwrap_err().line, 1);
}
