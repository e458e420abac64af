//! `chatd gdpr export`, `chatd gdpr erase` and `chatd conversations erase`:
//! the command-line edges of `chat_server::retention::export` and of the
//! `EraseUser` and `EraseConversation` commands. All ask the running chatd
//! over its control socket (which records them on its audit trail). When
//! no chatd runs on the data directory an export opens the store and the
//! blob store itself and records the export there; an erasure is refused,
//! naming why (it needs the owners and live sessions). Each prints its
//! summary.

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
        Some(other) => anyhow::bail!("the chatd on {} answered {other:?}", cfg.data_dir.display()),
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

/// `chatd gdpr erase --user ID --reason TEXT`: the erasure by the running
/// chatd; prints what it erased and what legal holds kept.
pub fn erase(cfg: &Config, user: &str, reason: &str) -> anyhow::Result<()> {
    let req = Request::GdprErase { user: user.into(), reason: reason.into() };
    let asked = control::request(&cfg.data_dir, &req)
        .with_context(|| format!("asking the chatd on {}", cfg.data_dir.display()))?;
    let e = match asked {
        Some(Reply::GdprErase(e)) => e,
        Some(Reply::Error(e)) => anyhow::bail!("erasing {user}: {e}"),
        Some(other) => anyhow::bail!("the chatd on {} answered {other:?}", cfg.data_dir.display()),
        None => anyhow::bail!(
            "erasing {user}: no chatd serves {}; an erasure goes through the conversations' owners and closes \
             live sessions, so start `chatd serve` there first (or erase from an admin client or the web app's \
             Compliance screen)",
            cfg.data_dir.display()
        ),
    };
    println!(
        "erased {user} (now \"{}\"): {} messages, {} attachment records; {} tombstones failed{}",
        e.pseudonym,
        e.messages_erased,
        e.attachments_erased,
        e.messages_failed,
        if e.messages_failed > 0 { " (run it again once the cause is gone)" } else { "" }
    );
    for (conv, scope, target, messages) in &e.kept {
        println!("kept conversation {conv}: {messages} of their messages, under the legal hold {scope} {target}");
    }
    Ok(())
}

/// `chatd conversations erase --id N --reason TEXT`: the erasure of a whole
/// conversation by the running chatd; prints what it removed.
pub fn erase_conversation(cfg: &Config, id: u64, reason: &str) -> anyhow::Result<()> {
    let req = Request::EraseConversation { conversation_id: id, reason: reason.into() };
    let asked = control::request(&cfg.data_dir, &req)
        .with_context(|| format!("asking the chatd on {}", cfg.data_dir.display()))?;
    match asked {
        Some(Reply::EraseConversation { messages, attachments, key_destroyed }) => {
            let key = if key_destroyed { "; its data key is destroyed" } else { "" };
            println!("erased conversation {id}: {messages} messages, {attachments} attachment records{key}");
            Ok(())
        }
        Some(Reply::Error(e)) => anyhow::bail!("erasing conversation {id}: {e}"),
        Some(other) => anyhow::bail!("the chatd on {} answered {other:?}", cfg.data_dir.display()),
        None => anyhow::bail!(
            "erasing conversation {id}: no chatd serves {}; an erasure goes through the conversation's owner, so \
             start `chatd serve` there first (or erase from an admin client or the web app's Compliance screen)",
            cfg.data_dir.display()
        ),
    }
}

/// No chatd answers: the export from the store and blob store opened here.
fn export_directly(cfg: &Config, user: &str, to: &Path) -> anyhow::Result<ExportManifest> {
    let store = chat_server::store::Store::open(cfg)
        .with_context(|| format!("opening the store in {} (is a chatd starting there?)", cfg.data_dir.display()))?;
    let store = Arc::new(store);
    let blob_key = store.blob_key_blocking().context("the attachments' key (encryption at rest)")?;
    let blobs = chat_server::blob::Blobs::open(cfg).context("opening the attachment store")?.sealed_with(blob_key);
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
