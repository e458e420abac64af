//! Conformance cases of service accounts: create-if-absent, updates only over
//! the version the caller saw (so a revocation is never undone unseen), the
//! list by id, and everything kept across a reopen.

use super::harness::ConformanceFactory;
use crate::store::service_accounts::{HookKind, Scope, ServiceAccountRecord, ServiceAccountStore, Webhook};

fn account(id: &str, at: u64) -> ServiceAccountRecord {
    ServiceAccountRecord {
        id: id.into(),
        display_name: format!("Case system \u{e9} {id}"),
        scopes: vec![Scope::Read, Scope::Write],
        secret_sha256: "ab".repeat(32),
        created_at_ms: at,
        created_by: "ida".into(),
        revoked_at_ms: 0,
        revoked_by: String::new(),
        updated_at_ms: at,
        webhooks: vec![Webhook {
            id: "0123456789abcdef".into(),
            url: "https://cms.example/hooks".into(),
            events: vec![HookKind::MessagePosted, HookKind::MemberRemoved],
            case_ids: vec!["M/17".into()],
            include_content: true,
            secret: "cd".repeat(32),
            created_at_ms: at,
        }],
    }
}

/// A create never overwrites; an update applies only over the stored
/// `updated_at_ms` it names, never creates; the list is by id; a reopen
/// keeps every account.
pub async fn service_accounts_put_is_compare_and_set<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: ServiceAccountStore,
{
    let store = factory.fresh().await;
    assert_eq!(store.service_accounts().await.expect("list"), vec![]);
    let cms = account("cms", 1_000);
    assert!(store.put_service_account(&cms, None).await.expect("create"), "a new account is written");
    assert!(!store.put_service_account(&account("cms", 1_001), None).await.expect("again"), "no overwrite");
    assert_eq!(store.get_service_account("cms").await.expect("get"), Some(cms.clone()));
    assert_eq!(store.get_service_account("nobody").await.expect("get"), None);

    let revoked =
        ServiceAccountRecord { revoked_at_ms: 2_000, revoked_by: "ida".into(), updated_at_ms: 2_000, ..cms.clone() };
    let rotated = ServiceAccountRecord { secret_sha256: "cd".repeat(32), updated_at_ms: 2_001, ..cms.clone() };
    assert!(store.put_service_account(&revoked, Some(1_000)).await.expect("revoke"), "over the version seen");
    assert!(!store.put_service_account(&rotated, Some(1_000)).await.expect("stale"), "a stale update is refused");
    assert!(!store.put_service_account(&account("ghost", 5), Some(5)).await.expect("absent"), "never creates");
    assert_eq!(store.get_service_account("ghost").await.expect("get"), None);

    let dms = account("dms-2", 3_000);
    assert!(store.put_service_account(&dms, None).await.expect("create"));
    let a = account("a", 4_000);
    assert!(store.put_service_account(&a, None).await.expect("create"));
    let all = vec![a, revoked.clone(), dms];
    assert_eq!(store.service_accounts().await.expect("list"), all, "by id, revoked ones included");
    assert!(!all[1].active());

    let store = factory.reopen(store).await;
    assert_eq!(store.service_accounts().await.expect("list after reopen"), all);
    assert_eq!(store.get_service_account("cms").await.expect("get"), Some(revoked));
}
