//! The store conformance suite, run against each backend.

use chat_server::store::conformance::ConformanceFactory;
use chat_server::store::embedded::{EmbeddedConfig, EmbeddedStore};

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
