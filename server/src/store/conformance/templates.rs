//! Conformance cases of templates: create-if-absent, updates only over the
//! version the caller saw, deletes, partitions by scope and owner, a race of
//! updates with one winner, and everything kept across a reopen.

use futures_util::future::join_all;

use super::harness::ConformanceFactory;
use crate::store::templates::{TemplateRecord, TemplateStore};

const PERSONAL: i32 = 1;
const FIRM: i32 = 2;

fn template(scope: i32, owner: &str, id: u64, name: &str, at: u64) -> TemplateRecord {
    TemplateRecord {
        id,
        scope,
        owner: owner.into(),
        name: name.into(),
        body: format!("Dear {{client_name}}, about {name} ({at}) \u{e9}\u{1f4c4}"),
        updated_at_ms: at,
        updated_by: owner.into(),
    }
}

/// A create never overwrites; an update applies only over the stored
/// `updated_at_ms` it names; a delete says whether there was one.
pub async fn templates_put_is_compare_and_set<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: TemplateStore,
{
    let store = factory.fresh().await;
    let first = template(PERSONAL, "alice", 7, "greet", 1_000);
    assert!(store.put_template(&first, None).await.expect("create"), "a new template is written");
    let other = template(PERSONAL, "alice", 7, "other", 1_001);
    assert!(!store.put_template(&other, None).await.expect("create again"), "a second create applies nothing");
    assert_eq!(store.get_template(PERSONAL, "alice", 7).await.expect("get"), Some(first.clone()));

    let update = TemplateRecord { body: "new body".into(), updated_at_ms: 2_000, ..first.clone() };
    assert!(!store.put_template(&update, Some(999)).await.expect("stale update"), "stale update refused");
    assert!(!store.put_template(&template(PERSONAL, "alice", 8, "x", 5), Some(1)).await.expect("update absent"));
    assert_eq!(store.get_template(PERSONAL, "alice", 8).await.expect("get"), None, "an update never creates");
    assert_eq!(store.get_template(PERSONAL, "alice", 7).await.expect("get"), Some(first));
    assert!(store.put_template(&update, Some(1_000)).await.expect("update"), "update over the version seen");
    assert_eq!(store.get_template(PERSONAL, "alice", 7).await.expect("get"), Some(update));

    assert!(store.delete_template(PERSONAL, "alice", 7).await.expect("delete"));
    assert!(!store.delete_template(PERSONAL, "alice", 7).await.expect("delete again"));
    assert_eq!(store.get_template(PERSONAL, "alice", 7).await.expect("get"), None);
    assert_eq!(store.templates(PERSONAL, "alice").await.expect("list"), vec![]);
}

/// Each `(scope, owner)` lists only its own templates, by id, and a reopen
/// keeps them all.
pub async fn templates_list_by_scope_and_owner<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: TemplateStore,
{
    let store = factory.fresh().await;
    let alice = [template(PERSONAL, "alice", 30, "b", 1), template(PERSONAL, "alice", 2, "a", 2)];
    let bob = template(PERSONAL, "bob", 2, "a", 3);
    let firm = [template(FIRM, "", u64::MAX, "z", 4), template(FIRM, "", 1, "y", u64::MAX / 2)];
    for t in alice.iter().chain([&bob]).chain(firm.iter()) {
        assert!(store.put_template(t, None).await.expect("create"));
    }
    let by_id = |mut v: Vec<TemplateRecord>| {
        v.sort_by_key(|t| t.id);
        v
    };
    assert_eq!(store.templates(PERSONAL, "alice").await.expect("list"), by_id(alice.to_vec()));
    assert_eq!(store.templates(PERSONAL, "bob").await.expect("list"), vec![bob.clone()]);
    assert_eq!(store.templates(FIRM, "").await.expect("list"), by_id(firm.to_vec()));
    assert_eq!(store.templates(PERSONAL, "carol").await.expect("list"), vec![]);
    assert_eq!(store.get_template(PERSONAL, "bob", 30).await.expect("get"), None, "not another owner's");
    assert_eq!(store.get_template(FIRM, "", 2).await.expect("get"), None, "not another scope's");

    let store = factory.reopen(store).await;
    assert_eq!(store.templates(PERSONAL, "alice").await.expect("list"), by_id(alice.to_vec()));
    assert_eq!(store.templates(FIRM, "").await.expect("list"), by_id(firm.to_vec()));
}

/// Concurrent updates over the same version: exactly one applies.
pub async fn concurrent_template_updates_one_wins<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: TemplateStore,
{
    let store = factory.fresh().await;
    let base = template(FIRM, "", 11, "race", 100);
    assert!(store.put_template(&base, None).await.expect("create"));
    let updates: Vec<TemplateRecord> = (0..8)
        .map(|i| TemplateRecord { body: format!("writer {i}"), updated_at_ms: 200 + i, ..base.clone() })
        .collect();
    let applied: Vec<bool> = join_all(updates.iter().map(|u| store.put_template(u, Some(100))))
        .await
        .into_iter()
        .map(|r| r.expect("update"))
        .collect();
    assert_eq!(applied.iter().filter(|a| **a).count(), 1, "one winner: {applied:?}");
    let winner = applied.iter().position(|a| *a).expect("a winner");
    assert_eq!(store.get_template(FIRM, "", 11).await.expect("get"), Some(updates[winner].clone()));
}
