//! The blob store conformance suite, run against each backend.

use chat_server::blob::conformance::BlobFactory;
use chat_server::blob::fs::FsBlobStore;

/// Filesystem stores, each in a temporary directory of its own.
#[derive(Default)]
struct FsFactory {
    dirs: Vec<tempfile::TempDir>,
}

impl BlobFactory for FsFactory {
    type Store = FsBlobStore;

    async fn fresh(&mut self) -> FsBlobStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsBlobStore::open(&dir.path().join("blobs")).expect("open blob store");
        self.dirs.push(dir);
        store
    }

    async fn reopen(&mut self, store: FsBlobStore) -> FsBlobStore {
        let root = store.root().to_owned();
        drop(store);
        FsBlobStore::open(&root).expect("reopen blob store")
    }

    async fn leftovers(&mut self, store: &FsBlobStore) -> usize {
        std::fs::read_dir(store.root().join("tmp")).expect("tmp dir").count()
    }
}

mod filesystem {
    chat_server::blob_conformance_tests!(super::FsFactory::default());
}
