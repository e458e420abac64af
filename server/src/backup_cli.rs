//! `chatd backup` and `chatd restore`: the command-line edges of
//! `chat_server::backup` (which server to ask, what to print, what to warn).

use anyhow::Context;
use chat_server::config::Config;
use chat_server::node::control::{self, Reply, Request};
use std::path::Path;

/// `chatd backup --to DIR`: asks the running server, else opens the store itself.
pub fn backup(cfg: &Config, to: &Path, bytes_per_sec: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        cfg.store.backend == chat_server::config::StoreBackend::Embedded,
        "store.backend is ScyllaDB: back it up with nodetool snapshot (deploy/BACKUP.md), not chatd backup"
    );
    let to = std::path::absolute(to).with_context(|| format!("backup directory {}", to.display()))?;
    let req = Request::Backup { to: to.clone(), bytes_per_sec };
    let manifest = match control::request(&cfg.data_dir, &req)
        .with_context(|| format!("asking the chatd on {}", cfg.data_dir.display()))?
    {
        Some(Reply::Backup(m)) => *m,
        Some(Reply::Error(e)) => anyhow::bail!("backup refused or failed: {e}"),
        Some(other) => anyhow::bail!("the chatd on {} answered {other:?}", cfg.data_dir.display()),
        None => {
            eprintln!("no chatd answers on {}: taking the backup from the store directly", cfg.data_dir.display());
            let store = chat_server::store::Store::open(cfg).with_context(|| {
                format!("opening the store in {} (is a chatd starting there?)", cfg.data_dir.display())
            })?;
            let chat_server::store::Backend::Embedded(s) = store.backend() else { unreachable!("checked above") };
            let stop = std::sync::atomic::AtomicBool::new(false);
            let taken = chat_server::backup::take::take(s, &cfg.data_dir, &to, bytes_per_sec, &stop);
            store.close();
            taken?
        }
    };
    let records: u64 = manifest.partitions.iter().map(|p| p.records).sum();
    println!(
        "backup complete in {}: {records} records in {} partitions, {} files, snapshot at {} ms (epoch {})",
        to.display(),
        manifest.partitions.len(),
        manifest.files.len(),
        manifest.snapshot_ms,
        manifest.epoch
    );
    Ok(())
}

/// `chatd restore --from DIR --data-dir D`: verifies, fills D, warns about keys.
pub fn restore(cfg: &Config, from: &Path) -> anyhow::Result<()> {
    let done = chat_server::backup::restore::restore(from, &cfg.data_dir).with_context(|| {
        format!("restoring {} into {}: nothing usable written", from.display(), cfg.data_dir.display())
    })?;
    println!(
        "restored {} records and {} files into {} (snapshot at {} ms); new store epoch {}: clients resync",
        done.records,
        done.files,
        cfg.data_dir.display(),
        done.snapshot_ms,
        done.epoch
    );
    let key = chat_server::audit::keys::key_path(cfg);
    if !key.exists() {
        eprintln!(
            "warning: the audit signing key {} is not there (keys are never in a backup). Copy it back from \
             your key backup before `chatd serve`: otherwise chatd makes a new key, and `chatd audit verify` \
             (which checks this node's chain against this node's key) refuses the restored checkpoints",
            key.display()
        );
    }
    if cfg.search.enabled {
        eprintln!("note: the search index is not in a backup; run `chatd reindex` before `chatd serve`");
    }
    Ok(())
}
