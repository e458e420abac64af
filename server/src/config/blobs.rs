//! The `[blobs]` section: where attachments are stored ([`BlobBackend`])
//! and the limits of one upload and its thumbnail, checked before anything
//! opens. It does not open a blob store (the `blob` module does).

use serde::{Deserialize, Serialize};

/// Attachment storage and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobsConfig {
    /// Backend: "filesystem" (default, files under `data_dir/blobs`, one
    /// node's own) or "scylla" (256 KiB chunks in the keyspace of
    /// `[store.scylla]`, which a cluster shares; needs `store.backend =
    /// "scylla"`; its tables are made by `chatd migrate`).
    pub backend: BlobBackend,
    /// Largest file one upload may be, bytes; a larger one is refused while
    /// it streams and nothing of it is kept. Default 52428800 (50 MiB).
    pub max_file_bytes: u64,
    /// Longest side of a server-made image thumbnail, pixels. Default 320.
    pub thumbnail_max_px: u32,
    /// Images wider or taller than this are not decoded for a thumbnail
    /// (they are stored, without one). Default 16384.
    pub thumbnail_max_source_px: u32,
    /// Most memory one thumbnail's decoding may take, bytes (a decompression
    /// bomb is refused before it allocates). Default 268435456 (256 MiB).
    pub thumbnail_max_decode_bytes: u64,
    /// Uploads one user may make per hour (a sliding hour); past it an
    /// upload is refused with UPLOAD_RATE_EXCEEDED and when to retry. Default 10.
    pub uploads_per_hour: u32,
    /// Transfers (uploads and downloads) one connection may run at once;
    /// more are refused with OVERLOADED. Default 4.
    pub transfers_per_connection: usize,
    /// An upload or download that makes no progress for this long (no bytes
    /// arrive, or the client reads none) is ended with TIMEOUT, frees its
    /// transfer slot and keeps nothing, ms. Default 30000 (30 s).
    pub transfer_idle_timeout_ms: u64,
    /// File bytes the node moves per second, uploads and downloads together
    /// (one budget, so that however many users transfer at once, chat keeps
    /// the CPU it needs); a transfer past it waits. 0: unlimited. Default
    /// 8388608 (8 MiB/s).
    pub transfer_bytes_per_sec: u64,
    /// An upload must be sent in a message within this many seconds, else
    /// it is refused (UNKNOWN_ATTACHMENT) and its record expires with the
    /// conversation's retention like a message's. At least 60. Default
    /// 86400 (a day).
    pub send_within_secs: u64,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        Self {
            backend: BlobBackend::Filesystem,
            max_file_bytes: 50 * 1024 * 1024,
            thumbnail_max_px: 320,
            thumbnail_max_source_px: 16_384,
            thumbnail_max_decode_bytes: 256 * 1024 * 1024,
            uploads_per_hour: 10,
            transfers_per_connection: 4,
            transfer_idle_timeout_ms: 30_000,
            transfer_bytes_per_sec: 8 * 1024 * 1024,
            send_within_secs: 86_400,
        }
    }
}

impl BlobsConfig {
    /// Checks the limits, that blobs in ScyllaDB have its keyspace
    /// (`store_shared`: the message store is ScyllaDB) and that a cluster
    /// (`clustered`) keeps them where every node reads them; the error names
    /// the key (below `blobs`).
    pub fn check(&self, store_shared: bool, clustered: bool) -> Result<(), String> {
        if clustered && self.backend == BlobBackend::Filesystem {
            return Err("backend = \"filesystem\" keeps files on one node, but this is a cluster: set backend = \"scylla\" so every node reads every attachment".into());
        }
        if self.uploads_per_hour == 0 {
            return Err("uploads_per_hour must be at least 1".into());
        }
        if self.transfers_per_connection == 0 {
            return Err("transfers_per_connection must be at least 1".into());
        }
        if self.transfer_idle_timeout_ms < 100 {
            return Err("transfer_idle_timeout_ms must be at least 100".into());
        }
        if self.backend == BlobBackend::Scylla && !store_shared {
            return Err("backend = \"scylla\" keeps blobs in the keyspace of [store.scylla]: set store.backend = \"scylla\" too".into());
        }
        if self.send_within_secs < 60 {
            return Err("send_within_secs must be at least 60".into());
        }
        if self.max_file_bytes == 0 {
            return Err("max_file_bytes must be at least 1".into());
        }
        if !(16..=2048).contains(&self.thumbnail_max_px) {
            return Err(format!("thumbnail_max_px = {} must be between 16 and 2048", self.thumbnail_max_px));
        }
        if self.thumbnail_max_source_px < self.thumbnail_max_px {
            return Err("thumbnail_max_source_px must be at least thumbnail_max_px".into());
        }
        if self.thumbnail_max_decode_bytes < 1024 * 1024 {
            return Err("thumbnail_max_decode_bytes must be at least 1048576 (1 MiB)".into());
        }
        Ok(())
    }
}

/// The attachment storage backend, `blobs.backend`: `"filesystem"` or `"scylla"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum BlobBackend {
    /// Files under `data_dir/blobs` (one node only).
    #[default]
    Filesystem,
    /// Chunks in the ScyllaDB keyspace of `[store.scylla]`.
    Scylla,
}

impl BlobBackend {
    /// The name, as in `blobs.backend`.
    pub fn name(self) -> &'static str {
        match self {
            BlobBackend::Filesystem => "filesystem",
            BlobBackend::Scylla => "scylla",
        }
    }
}

impl TryFrom<String> for BlobBackend {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "filesystem" => Ok(BlobBackend::Filesystem),
            "scylla" => Ok(BlobBackend::Scylla),
            other => Err(format!("blobs.backend = {other:?}: use \"filesystem\" or \"scylla\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn blobs_section_loads_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chatd.toml");
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Config::load(Some(&f)).map_err(|e| e.to_string())
        };
        let cfg = load("").unwrap();
        assert_eq!(cfg.blobs.max_file_bytes, 50 * 1024 * 1024, "50 MiB by default");
        assert_eq!(cfg.blobs.backend.name(), "filesystem");
        let cfg = load("[blobs]\nmax_file_bytes = 1000\nthumbnail_max_px = 200\n").unwrap();
        assert_eq!((cfg.blobs.max_file_bytes, cfg.blobs.thumbnail_max_px), (1000, 200));
        let refused = |text: &str, what: &str| {
            let e = load(&format!("[blobs]\n{text}\n")).unwrap_err();
            assert!(e.contains(what), "{text}: {e}");
        };
        refused("backend = \"s3\"", "blobs.backend = \"s3\": use \"filesystem\" or \"scylla\"");
        refused("backend = \"scylla\"", "set store.backend = \"scylla\" too");
        let cfg = load("[store]\nbackend = \"scylla\"\n[blobs]\nbackend = \"scylla\"\n").unwrap();
        assert_eq!(cfg.blobs.backend.name(), "scylla");
        refused("max_file_bytes = 0", "blobs: max_file_bytes must be at least 1");
        refused("thumbnail_max_px = 5000", "thumbnail_max_px = 5000");
        refused("thumbnail_max_source_px = 100", "thumbnail_max_source_px");
        refused("thumbnail_max_decode_bytes = 10", "thumbnail_max_decode_bytes");
        refused("max_bytes = 10", "max_bytes");
        refused("uploads_per_hour = 0", "blobs: uploads_per_hour must be at least 1");
        refused("transfers_per_connection = 0", "blobs: transfers_per_connection must be at least 1");
        refused("transfer_idle_timeout_ms = 5", "blobs: transfer_idle_timeout_ms must be at least 100");
        assert_eq!(load("").unwrap().blobs.transfer_idle_timeout_ms, 30_000, "30 s by default");
        let cfg = load("[blobs]\nuploads_per_hour = 3\ntransfers_per_connection = 2\ntransfer_idle_timeout_ms = 500\n")
            .unwrap();
        assert_eq!((cfg.blobs.uploads_per_hour, cfg.blobs.transfers_per_connection), (3, 2));
        assert_eq!(cfg.blobs.transfer_idle_timeout_ms, 500);
        assert_eq!(load("").unwrap().blobs.transfer_bytes_per_sec, 8 << 20, "8 MiB/s by default");
        let unlimited = load("[blobs]\ntransfer_bytes_per_sec = 0\n").unwrap();
        assert_eq!(unlimited.blobs.transfer_bytes_per_sec, 0);
    }

    #[test]
    fn a_cluster_refuses_blobs_on_one_nodes_disk() {
        let mut cfg = Config::default();
        cfg.blobs.backend = super::BlobBackend::Filesystem;
        assert_eq!(cfg.blobs.check(true, false), Ok(()), "one node: its own disk is fine");
        let e = cfg.blobs.check(true, true).unwrap_err();
        assert!(e.contains("this is a cluster: set backend = \"scylla\""), "{e}");
        cfg.blobs.backend = super::BlobBackend::Scylla;
        assert_eq!(cfg.blobs.check(true, true), Ok(()));
    }
}
