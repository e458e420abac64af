//! The store conformance suite, run against each backend.

use chat_server::store::conformance::ConformanceFactory;
use chat_server::store::embedded::{EmbeddedConfig, EmbeddedStore};
use chat_server::store::scylla::{self, ScyllaSettings, ScyllaStore};

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

/// ScyllaDB stores against the node(s) in `CHAT_SCYLLA_NODES` (`host:port`,
/// comma-separated), each in a fresh keyspace `chat_test_<random>` with
/// SimpleStrategy replication factor 1, made as `chatd migrate` makes it.
/// Without the variable every case says "skipped" on stderr and passes.
/// `CHAT_SCYLLA_TABLETS=true|false` sets the keyspaces' tablets option
/// (unset: as `chatd migrate` does, off on a ScyllaDB that has tablets).
struct ScyllaFactory {
    nodes: Option<String>,
}

impl ScyllaFactory {
    fn from_env() -> Self {
        Self { nodes: std::env::var("CHAT_SCYLLA_NODES").ok().filter(|n| !n.trim().is_empty()) }
    }

    fn settings(&self, keyspace: &str) -> ScyllaSettings {
        ScyllaSettings::for_tests(keyspace).expect("CHAT_SCYLLA_NODES is set")
    }
}

impl ConformanceFactory for ScyllaFactory {
    type Store = ScyllaStore;

    fn skip(&self) -> Option<String> {
        self.nodes.is_none().then(|| "CHAT_SCYLLA_NODES not set".to_string())
    }

    async fn fresh(&mut self) -> ScyllaStore {
        let keyspace = format!("chat_test_{:016x}", rand::random::<u64>());
        let settings = self.settings(&keyspace);
        let report = scylla::migrate_with(&settings).await.expect("migrate");
        assert!(report.iter().any(|l| l.contains("recorded")), "a new schema: {report:?}");
        ScyllaStore::connect(&settings).await.expect("open store")
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
