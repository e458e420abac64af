//! The store conformance suite, run against each backend.

use chat_server::store::conformance::{ConformanceFactory, TestKeyspaces};
use chat_server::store::embedded::{EmbeddedConfig, EmbeddedStore};
use chat_server::store::scylla::{self, SCHEMA_VERSION, ScyllaSettings, ScyllaStore};

/// Embedded stores, each in a temporary directory of its own.
#[derive(Default)]
struct EmbeddedFactory {
    dirs: Vec<tempfile::TempDir>,
}

impl ConformanceFactory for EmbeddedFactory {
    type Store = EmbeddedStore;

    async fn fresh(&mut self) -> EmbeddedStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).expect("open store");
        self.dirs.push(dir);
        store
    }

    async fn reopen(&mut self, store: EmbeddedStore) -> EmbeddedStore {
        let dir = store.dir().to_owned();
        drop(store);
        EmbeddedStore::open(&dir, EmbeddedConfig::default()).expect("reopen store")
    }
}

mod embedded {
    chat_server::conformance_tests!(super::EmbeddedFactory::default());
}

/// ScyllaDB stores against the node(s) in `CHAT_SCYLLA_NODES`, each in a
/// fresh keyspace made as `chatd migrate` makes it ([`TestKeyspaces`]).
/// Without the variable every case says "skipped" on stderr and passes.
/// `CHAT_SCYLLA_TABLETS=true|false` sets the keyspaces' tablets option
/// (unset: as `chatd migrate` does, off on a ScyllaDB that has tablets).
struct ScyllaFactory(TestKeyspaces);

impl ScyllaFactory {
    fn from_env() -> Self {
        Self(TestKeyspaces::from_env())
    }

    /// The factory, or None (having said so) when the suite cannot run here.
    fn unless_skipped(test: &str) -> Option<Self> {
        let factory = Self::from_env();
        match factory.skip() {
            Some(why) => {
                chat_server::store::conformance::report_skip(test, &why);
                None
            }
            None => Some(factory),
        }
    }

    fn settings(&self, keyspace: &str) -> ScyllaSettings {
        TestKeyspaces::settings(keyspace)
    }
}

impl ConformanceFactory for ScyllaFactory {
    type Store = ScyllaStore;

    fn skip(&self) -> Option<String> {
        self.0.skip()
    }

    async fn fresh(&mut self) -> ScyllaStore {
        let settings = self.0.fresh();
        let report = scylla::migrate_with(&settings).await.expect("migrate");
        assert!(report.iter().any(|l| l.contains("recorded")), "a new schema: {report:?}");
        ScyllaStore::connect(&settings).await.expect("open store")
    }

    async fn cleanup(&mut self) {
        self.0.drop_all().await;
    }

    async fn reopen(&mut self, store: ScyllaStore) -> ScyllaStore {
        let settings = self.settings(store.keyspace());
        store.close();
        drop(store);
        ScyllaStore::connect(&settings).await.expect("reopen store")
    }
}

mod scylla_cluster {
    chat_server::conformance_tests!(super::ScyllaFactory::from_env());
}

/// `chatd migrate` from schema version 1 (before conversations had an
/// activity) makes each conversation's activity from its last message (its
/// creation if none) and every member's list, on the real CQL node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_migrate_from_version_1_makes_the_lists() {
    use chat_server::store::{ConversationRecord, MemberRecord, MessageStore, NewMessage};
    use prost::Message as _;
    let Some(mut factory) = ScyllaFactory::unless_skipped("scylla_migrate_from_version_1_makes_the_lists") else {
        return;
    };
    let store = factory.fresh().await;
    for (id, created) in [(1u64, 1_000u64), (2, 2_000), (3, 3_000)] {
        let rec = ConversationRecord { id, created_at_ms: created, kind: 2, ..Default::default() };
        let member = MemberRecord { conversation_id: id, user_id: "ann".into(), ..Default::default() };
        store.create_conversation(&rec, &[member]).await.unwrap();
    }
    let body = chat_protocol::v1::Message { conversation_id: 1, seq: 1, server_time_ms: 9_000, ..Default::default() };
    let msg = NewMessage {
        conversation_id: 1,
        seq: 1,
        sender_id: "ann".into(),
        client_msg_id: "c1".into(),
        encoded: body.encode_to_vec().into(),
        target: None,
    };
    store.append(vec![msg]).await.unwrap();
    // Back to version 1: no activities, no lists.
    let settings = make_older(
        &factory,
        store,
        &[
            "TRUNCATE {ks}.conversation_activity",
            "TRUNCATE {ks}.conversations_by_activity",
            "UPDATE {ks}.schema_version SET version = 1 WHERE component = 'chat'",
        ],
    )
    .await;
    let refused = ScyllaStore::connect(&settings).await.err().expect("version 1 is refused").to_string();
    assert!(refused.contains("run `chatd migrate`"), "{refused}");
    let report = scylla::migrate_with(&settings).await.expect("migrate");
    assert!(report.iter().any(|l| l.contains(&format!("schema version 1 -> {SCHEMA_VERSION}"))), "{report:?}");
    let store = ScyllaStore::connect(&settings).await.expect("open");
    let list = store.user_conversations_page("ann", None, 10).await.unwrap();
    assert_eq!(list, [(9_000, 1), (3_000, 3), (2_000, 2)]);
    store.close();
    factory.cleanup().await;
}

/// `chatd migrate` from schema version 3 (before templates) makes the
/// `templates` table and keeps everything else, on the real CQL node; until
/// then `chatd serve` refuses the keyspace with what to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_migrate_from_version_3_makes_templates() {
    use chat_server::store::templates::{TemplateRecord, TemplateStore};
    use chat_server::store::{ConversationRecord, MessageStore};
    let Some(mut factory) = ScyllaFactory::unless_skipped("scylla_migrate_from_version_3_makes_templates") else {
        return;
    };
    let store = factory.fresh().await;
    let rec = ConversationRecord { id: 4, created_at_ms: 1_000, kind: 2, title: "kept".into(), ..Default::default() };
    store.create_conversation(&rec, &[]).await.unwrap();
    // Back to version 3: no templates table.
    let settings = make_older(
        &factory,
        store,
        &["DROP TABLE {ks}.templates", "UPDATE {ks}.schema_version SET version = 3 WHERE component = 'chat'"],
    )
    .await;
    let refused = ScyllaStore::connect(&settings).await.err().expect("version 3 is refused").to_string();
    assert!(refused.contains("schema version 3 is older") && refused.contains("run `chatd migrate`"), "{refused}");
    let report = scylla::migrate_with(&settings).await.expect("migrate");
    assert!(report.iter().any(|l| l.contains(&format!("schema version 3 -> {SCHEMA_VERSION}"))), "{report:?}");
    assert!(report.iter().any(|l| l.ends_with(".templates: present")), "{report:?}");
    let store = ScyllaStore::connect(&settings).await.expect("open");
    assert_eq!(store.get_conversation(4).await.unwrap(), Some(rec), "kept");
    let t = TemplateRecord { id: 1, scope: 2, name: "intake".into(), body: "Hi".into(), ..Default::default() };
    assert!(store.put_template(&t, None).await.unwrap());
    assert_eq!(store.templates(2, "").await.unwrap(), [t]);
    store.close();
    factory.cleanup().await;
}

/// `chatd migrate` from schema version 5 (before the audit trail) makes the
/// `audit_` tables, on the real CQL node; the trail is written and read then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_migrate_from_version_5_makes_the_audit_tables() {
    use chat_server::store::audit::{AuditRecord, AuditStore};
    let Some(mut factory) = ScyllaFactory::unless_skipped("scylla_migrate_from_version_5_makes_the_audit_tables")
    else {
        return;
    };
    let store = factory.fresh().await;
    let drops = [
        "DROP TABLE {ks}.audit_entries",
        "DROP TABLE {ks}.audit_chains",
        "DROP TABLE {ks}.audit_checkpoints",
        "UPDATE {ks}.schema_version SET version = 5 WHERE component = 'chat'",
    ];
    let settings = make_older(&factory, store, &drops).await;
    let refused = ScyllaStore::connect(&settings).await.err().expect("version 5 is refused").to_string();
    assert!(refused.contains("schema version 5 is older") && refused.contains("run `chatd migrate`"), "{refused}");
    let report = scylla::migrate_with(&settings).await.expect("migrate");
    assert!(report.iter().any(|l| l.contains(&format!("schema version 5 -> {SCHEMA_VERSION}"))), "{report:?}");
    let store = ScyllaStore::connect(&settings).await.expect("open");
    let e = AuditRecord { chain: "node-a".into(), seq: 1, details: "{}".into(), ..Default::default() };
    store.append_audit(std::slice::from_ref(&e), None).await.unwrap();
    assert_eq!(store.audit_entries("node-a", 0, 10).await.unwrap(), [e]);
    store.close();
    factory.cleanup().await;
}

/// Closes `store` and runs `statements` on its keyspace (`{ks}`) to give it
/// an older schema; returns the settings to open it again.
async fn make_older(factory: &ScyllaFactory, store: ScyllaStore, statements: &[&str]) -> ScyllaSettings {
    let keyspace = store.keyspace().to_string();
    let settings = factory.settings(&keyspace);
    store.close();
    drop(store);
    let session = ::scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(settings.nodes.clone())
        .build()
        .await
        .expect("session");
    for cql in statements.iter().map(|c| c.replace("{ks}", &keyspace)) {
        session.query_unpaged(cql.clone(), ()).await.unwrap_or_else(|e| panic!("{cql}: {e}"));
    }
    settings
}

/// `chatd migrate` from schema version 8 (before end-to-end encryption)
/// makes the `key_packages` table, on the real CQL node; KeyPackages are
/// kept then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_migrate_from_version_8_makes_key_packages() {
    use chat_server::store::key_packages::{KeyPackageStore, Published};
    let Some(mut factory) = ScyllaFactory::unless_skipped("scylla_migrate_from_version_8_makes_key_packages") else {
        return;
    };
    let store = factory.fresh().await;
    let drops = ["DROP TABLE {ks}.key_packages", "UPDATE {ks}.schema_version SET version = 8 WHERE component = 'chat'"];
    let settings = make_older(&factory, store, &drops).await;
    let refused = ScyllaStore::connect(&settings).await.err().expect("version 8 is refused").to_string();
    assert!(refused.contains("schema version 8 is older") && refused.contains("run `chatd migrate`"), "{refused}");
    let report = scylla::migrate_with(&settings).await.expect("migrate");
    assert!(report.iter().any(|l| l.contains("schema version 8 -> 9")), "{report:?}");
    let store = ScyllaStore::connect(&settings).await.expect("open");
    assert_eq!(store.publish_key_packages("ann", "phone", &[vec![1, 2, 3]]).await.unwrap(), Published::Held(1));
    assert_eq!(store.key_package_count("ann", "phone").await.unwrap(), 1);
    store.close();
    factory.cleanup().await;
}
