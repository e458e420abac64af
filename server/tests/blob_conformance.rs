//! The blob store conformance suite, run against each backend.

use chat_server::blob::conformance::BlobFactory;
use std::time::Duration;

use chat_server::blob::scylla::ScyllaBlobStore;
use chat_server::blob::{Backend, Blobs};
use chat_server::store::conformance::TestKeyspaces;
use ring::aead::LessSafeKey;
use std::sync::Arc;

/// Filesystem stores as `chatd` opens them ([`Blobs::open`] with the
/// default `[blobs]` section: `data_dir/blobs`), each in a temporary data
/// directory of its own; so the suite also runs through the [`Blobs`] dispatch.
#[derive(Default)]
struct FsFactory {
    dirs: Vec<tempfile::TempDir>,
}

fn fs_root(store: &Blobs) -> &std::path::Path {
    match store.backend() {
        Backend::Fs(s) => s.root(),
        _ => panic!("the default blobs.backend is the filesystem"),
    }
}

fn open_in(data_dir: &std::path::Path) -> Blobs {
    let cfg = chat_server::Config { data_dir: data_dir.to_owned(), ..chat_server::Config::default() };
    Blobs::open(&cfg).expect("open blob store")
}

impl BlobFactory for FsFactory {
    type Store = Blobs;

    async fn fresh(&mut self) -> Blobs {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_in(dir.path());
        assert_eq!(fs_root(&store), dir.path().join("blobs"));
        self.dirs.push(dir);
        store
    }

    async fn reopen(&mut self, store: Blobs) -> Blobs {
        let data_dir = fs_root(&store).parent().expect("data dir").to_owned();
        drop(store);
        open_in(&data_dir)
    }

    async fn leftovers(&mut self, store: &Blobs) -> usize {
        std::fs::read_dir(fs_root(store).join("tmp")).expect("tmp dir").count()
    }
}

mod filesystem {
    chat_server::blob_conformance_tests!(super::FsFactory::default());
}

/// ScyllaDB blob stores against the node(s) in `CHAT_SCYLLA_NODES`, each in
/// a fresh keyspace ([`TestKeyspaces`]) made as `chatd migrate` makes it
/// (the message store's tables, then the blob tables), dropped afterwards.
/// Reopening sweeps every upload in progress (no age: nothing else writes
/// there). Without the variable every case says "skipped" and passes.
struct ScyllaFactory(TestKeyspaces);

impl BlobFactory for ScyllaFactory {
    type Store = ScyllaBlobStore;

    fn skip(&self) -> Option<String> {
        self.0.skip()
    }

    async fn fresh(&mut self) -> ScyllaBlobStore {
        let settings = self.0.fresh();
        chat_server::store::scylla::migrate_with(&settings).await.expect("migrate the store");
        let report = chat_server::blob::scylla::migrate_with(&settings).await.expect("migrate the blob tables");
        assert!(report.iter().any(|l| l.contains("recorded")), "{report:?}");
        ScyllaBlobStore::connect(&settings, Duration::from_secs(3600)).await.expect("open blob store")
    }

    async fn reopen(&mut self, store: ScyllaBlobStore) -> ScyllaBlobStore {
        let settings = TestKeyspaces::settings(store.keyspace());
        drop(store);
        ScyllaBlobStore::connect(&settings, Duration::ZERO).await.expect("reopen blob store")
    }

    async fn leftovers(&mut self, store: &ScyllaBlobStore) -> usize {
        store.uncommitted_pieces().await.expect("scan the blob tables")
    }

    async fn cleanup(&mut self) {
        self.0.drop_all().await;
    }
}

mod scylla_cluster {
    chat_server::blob_conformance_tests!(super::ScyllaFactory(super::TestKeyspaces::from_env()));
}

/// A key-encryption key for the sealed factories, kept across a reopen.
fn kek() -> Arc<LessSafeKey> {
    Arc::new(chat_server::store::at_rest::seal::new_key().1)
}

/// The filesystem stores sealed at rest (encryption on): the whole suite
/// through the sealing layer.
struct SealedFsFactory(FsFactory, Arc<LessSafeKey>);

impl BlobFactory for SealedFsFactory {
    type Store = Blobs;

    async fn fresh(&mut self) -> Blobs {
        self.0.fresh().await.sealed_with(Some(self.1.clone()))
    }

    async fn reopen(&mut self, store: Blobs) -> Blobs {
        self.0.reopen(store).await.sealed_with(Some(self.1.clone()))
    }

    async fn leftovers(&mut self, store: &Blobs) -> usize {
        self.0.leftovers(store).await
    }
}

mod filesystem_sealed {
    chat_server::blob_conformance_tests!(super::SealedFsFactory(super::FsFactory::default(), super::kek()));
}

/// The ScyllaDB stores sealed at rest.
struct SealedScyllaFactory(ScyllaFactory, Arc<LessSafeKey>);

fn scylla_of(store: &Blobs) -> &ScyllaBlobStore {
    match store.backend() {
        Backend::Scylla(s) => s,
        Backend::Fs(_) => panic!("a ScyllaDB factory's store"),
    }
}

impl BlobFactory for SealedScyllaFactory {
    type Store = Blobs;

    fn skip(&self) -> Option<String> {
        self.0.skip()
    }

    async fn fresh(&mut self) -> Blobs {
        Blobs::from_backend(Backend::Scylla(self.0.fresh().await)).sealed_with(Some(self.1.clone()))
    }

    async fn reopen(&mut self, store: Blobs) -> Blobs {
        let settings = TestKeyspaces::settings(scylla_of(&store).keyspace());
        drop(store);
        let reopened = ScyllaBlobStore::connect(&settings, Duration::ZERO).await.expect("reopen blob store");
        Blobs::from_backend(Backend::Scylla(reopened)).sealed_with(Some(self.1.clone()))
    }

    async fn leftovers(&mut self, store: &Blobs) -> usize {
        scylla_of(store).uncommitted_pieces().await.expect("scan the blob tables")
    }

    async fn cleanup(&mut self) {
        self.0.cleanup().await;
    }
}

mod scylla_cluster_sealed {
    chat_server::blob_conformance_tests!(super::SealedScyllaFactory(
        super::ScyllaFactory(super::TestKeyspaces::from_env()),
        super::kek()
    ));
}

/// A deployment made by blob schema version 1 (no `blobs.touched_ms`):
/// `chatd migrate` adds the column, and its old rows age by the write time
/// of their size, so a sweep can remove them and a new upload still touches
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_blob_rows_are_migrated_and_age_by_write_time() {
    use chat_server::blob::{BlobHash, BlobStore, BlobWriter};
    let mut keyspaces = TestKeyspaces::from_env();
    if let Some(why) = keyspaces.skip() {
        chat_server::blob::conformance::report_skip("version_1_blob_rows_are_migrated", &why);
        return;
    }
    let settings = keyspaces.fresh();
    chat_server::store::scylla::migrate_with(&settings).await.expect("migrate the store");
    let session = chat_server::store::scylla::connect(&settings).await.expect("connect");
    let ks = &settings.keyspace;
    let now = || chat_protocol::unix_ms(std::time::SystemTime::now());
    // The tables as version 1 made them, with two committed blobs of one chunk each.
    let (old, again) = (BlobHash::of(b"old"), BlobHash::of(b"again"));
    let before = now();
    for cql in [
        format!("CREATE TABLE {ks}.blobs (hash blob PRIMARY KEY, size bigint, upload bigint, chunk_bytes int)"),
        format!("CREATE TABLE {ks}.blob_chunks (upload bigint, idx int, data blob, PRIMARY KEY ((upload, idx)))"),
        format!("INSERT INTO {ks}.schema_version (component, version) VALUES ('blobs', 1)"),
    ] {
        session.query_unpaged(cql, ()).await.expect("version 1 schema");
    }
    for (upload, hash, bytes) in [(7i64, old, b"old".as_slice()), (8, again, b"again")] {
        let insert = format!("INSERT INTO {ks}.blobs (hash, size, upload, chunk_bytes) VALUES (?, ?, ?, 262144)");
        session.query_unpaged(insert, (hash.0.as_slice(), bytes.len() as i64, upload)).await.expect("a row");
        let insert = format!("INSERT INTO {ks}.blob_chunks (upload, idx, data) VALUES (?, 0, ?)");
        session.query_unpaged(insert, (upload, bytes)).await.expect("its chunk");
    }

    let e = ScyllaBlobStore::connect(&settings, Duration::from_secs(3600)).await.err().expect("version 1 is refused");
    assert!(e.to_string().contains("chatd migrate"), "{e}");
    let report = chat_server::blob::scylla::migrate_with(&settings).await.expect("migrate");
    assert!(report.iter().any(|l| l.contains("touched_ms added")), "{report:?}");
    let twice = chat_server::blob::scylla::migrate_with(&settings).await.expect("migrate again");
    assert!(!twice.iter().any(|l| l.contains("touched_ms added")), "a second migration adds nothing: {twice:?}");

    let store = ScyllaBlobStore::connect(&settings, Duration::from_secs(3600)).await.expect("open");
    let listed = store.list_page(None, 10).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|l| l.touched_ms + 50 >= before), "aged by their write time: {listed:?} vs {before}");
    assert!(!store.delete_untouched(&old, before - 60_000).await.unwrap(), "younger than the cutoff");
    // Uploaded again: touched, so a sweep with a cutoff before that spares it.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let cutoff = now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut w = store.begin(5).await.unwrap();
    w.write(b"again").await.unwrap();
    w.commit().await.unwrap();
    assert!(!store.delete_untouched(&again, cutoff).await.unwrap(), "touched by the upload");
    assert!(store.delete_untouched(&old, cutoff).await.unwrap(), "never touched: removed");
    assert!(!store.exists(&old).await.unwrap());
    assert_eq!(&store.read_range(&again, 0, 10).await.unwrap()[..], b"again");
    assert_eq!(store.uncommitted_pieces().await.unwrap(), 0, "the removed blob's chunk went with it");
    drop(store);
    keyspaces.drop_all().await;
}
