//! `chatd gdpr export`: the command-line edge of
//! `chat_server::retention::export` (opening the store and the blob store,
//! recording the export on the audit trail, printing the summary).

use anyhow::Context;
use chat_server::audit::{Audit, AuditEvent, EventKind};
use chat_server::config::Config;
use std::path::Path;
use std::sync::Arc;

/// `chatd gdpr export --user ID --to DIR`: everything of the user into DIR,
/// then a `gdpr.exported` entry on this node's chain.
pub fn export(cfg: &Config, user: &str, to: &Path) -> anyhow::Result<()> {
    let store = chat_server::store::Store::open(cfg).with_context(|| {
        format!(
            "opening the store in {} (with the embedded store, stop chatd first: one process opens it)",
            cfg.data_dir.display()
        )
    })?;
    let store = Arc::new(store);
    let blobs = chat_server::blob::Blobs::open(cfg).context("opening the attachment store")?;
    let audit = Audit::start(cfg, store.clone(), chat_server::metrics::AuditMetrics::noop())?;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let done = rt.block_on(async {
        let m = chat_server::retention::export::export_user(&store, &blobs, user, to, now_ms).await?;
        let details = serde_json::json!({
            "via": "chatd gdpr export",
            "to": to.display().to_string(),
            "conversations": m.conversations,
            "messages": m.messages,
            "attachments": m.attachments,
            "audit_entries": m.audit_entries,
        });
        audit.record(AuditEvent::new(EventKind::UserExported, "chatd").target(user).details(details)).await?;
        audit.flush().await?;
        anyhow::Ok(m)
    });
    audit.close();
    store.close();
    let m = done.with_context(|| format!("exporting {user} into {}: incomplete (no manifest.json)", to.display()))?;
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
