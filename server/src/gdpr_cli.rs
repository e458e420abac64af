//! `chatd gdpr export`: the command-line edge of
//! `chat_server::retention::export`. It asks the running chatd over its
//! control socket (which records the export on its audit trail); when no
//! chatd runs on the data directory it opens the store and the blob store
//! itself and records the export there. It prints the summary.

use anyhow::Context;
use chat_server::audit::Audit;
use chat_server::config::Config;
use chat_server::node::control::{self, Reply, Request};
use chat_server::retention::export::{self, ExportManifest};
use std::path::Path;
use std::sync::Arc;

/// `chatd gdpr export --user ID --to DIR`: everything of the user into DIR,
/// then a `gdpr.exported` entry on the audit trail.
pub fn export(cfg: &Config, user: &str, to: &Path) -> anyhow::Result<()> {
    let to = std::path::absolute(to).with_context(|| format!("export directory {}", to.display()))?;
    let req = Request::GdprExport { user: user.into(), to: to.clone() };
    let asked = control::request(&cfg.data_dir, &req)
        .with_context(|| format!("asking the chatd on {}", cfg.data_dir.display()))?;
    let m = match asked {
        Some(Reply::GdprExport(m)) => *m,
        Some(Reply::Error(e)) => anyhow::bail!("exporting {user} into {}: {e}", to.display()),
        Some(Reply::Backup(_)) => anyhow::bail!("the chatd on {} answered with a backup", cfg.data_dir.display()),
        None => export_directly(cfg, user, &to)
            .with_context(|| format!("exporting {user} into {}: incomplete (no manifest.json)", to.display()))?,
    };
    println!(
        "exported {user} into {}: {} conversations, {} messages, {} files, {} audit entries ({} files in manifest.json)",
        to.display(),
        m.conversations,
        m.messages,
        m.attachments,
        m.audit_entries,
        m.files.len()
    );
    Ok(())
}

/// No chatd answers: the export from the store and blob store opened here.
fn export_directly(cfg: &Config, user: &str, to: &Path) -> anyhow::Result<ExportManifest> {
    let store = chat_server::store::Store::open(cfg)
        .with_context(|| format!("opening the store in {} (is a chatd starting there?)", cfg.data_dir.display()))?;
    let store = Arc::new(store);
    let blobs = chat_server::blob::Blobs::open(cfg).context("opening the attachment store")?;
    let audit = Audit::start(cfg, store.clone(), chat_server::metrics::AuditMetrics::noop())?;
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let done = rt.block_on(async {
        let m = export::export_user(&store, &blobs, user, to, now_ms).await?;
        audit.record(export::exported_event(&m, "chatd", &to.display().to_string(), "chatd gdpr export")).await?;
        audit.flush().await?;
        anyhow::Ok(m)
    });
    audit.close();
    store.close();
    done
}
