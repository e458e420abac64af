//! `chatd keys generate` and `chatd keys rotate`: the command-line edges of
//! encryption at rest (`chat_server::store::at_rest`). A rotation is asked of
//! the running chatd over its control socket, so it needs no downtime (the
//! node re-wraps while it serves and records it on its audit trail); when
//! none runs, it opens the store itself. Each prints what it did and what the
//! operator does next.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chat_server::config::Config;
use chat_server::node::control::{self, Reply, Request};
use chat_server::store::at_rest::master::{KeyWrap, LocalMasterKey};

/// `chatd keys generate --to FILE`: a new random master key in a new file
/// (0600, 64 hex digits); prints its id.
pub fn generate(to: &Path) -> anyhow::Result<()> {
    let (key, text) = LocalMasterKey::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("creating {} (an existing key file is never overwritten)", to.display()))?;
    file.write_all(format!("{text}\n").as_bytes()).and_then(|()| file.sync_all())?;
    println!("master key {} written to {} (keep a copy apart from the data and its backups)", key.id(), to.display());
    Ok(())
}

/// `chatd keys rotate --new-key-file FILE`: every data key re-wrapped under
/// the key in FILE.
pub fn rotate(cfg: &Config, new_key_file: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        cfg.encryption.enabled(),
        "encryption at rest is off (no encryption.master_key_file or CHAT_ENCRYPTION__MASTER_KEY): nothing to rotate"
    );
    let new_key_file = std::path::absolute(new_key_file)?;
    let key = LocalMasterKey::from_file(&new_key_file)?;
    let req = Request::KeysRotate { new_key_file: new_key_file.clone() };
    let asked = control::request(&cfg.data_dir, &req)
        .with_context(|| format!("asking the chatd on {}", cfg.data_dir.display()))?;
    let r = match asked {
        Some(Reply::KeysRotate(r)) => r,
        Some(Reply::Error(e)) => anyhow::bail!("rotating to {}: {e}", new_key_file.display()),
        Some(other) => anyhow::bail!("the chatd on {} answered {other:?}", cfg.data_dir.display()),
        None => {
            let store = chat_server::store::Store::open(cfg)
                .with_context(|| format!("opening the store (is a chatd starting on {}?)", cfg.data_dir.display()))?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let r = rt.block_on(store.rotate_master_key(Arc::new(key)));
            store.close();
            r?
        }
    };
    println!(
        "re-wrapped {} data keys under master key {} ({} were already). Now set encryption.master_key_file = {} \
         for every node; keep the old key in encryption.previous_master_key_files until each runs with the new one",
        r.rewrapped,
        r.master_key,
        r.already,
        new_key_file.display()
    );
    Ok(())
}
