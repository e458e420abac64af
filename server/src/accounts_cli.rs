//! `chatd service-accounts create|rotate|revoke|list` and `chatd
//! conversations transcript`: the command-line edges of the integrations
//! (`chat_server::api::accounts`, `chat_server::transcript`). Asked of the
//! running chatd over its control socket (which records them on its audit
//! trail); when none runs on the data directory, done on the store directly
//! (and recorded there). A new or rotated credential is printed once: it is
//! not stored anywhere.

use anyhow::Context;
use chat_server::api::accounts::{self, Done, Op};
use chat_server::audit::Audit;
use chat_server::config::Config;
use chat_server::node::control::{self, Reply, Request};
use chat_server::store::Store;
use chat_server::store::service_accounts::{Scope, ServiceAccountRecord};
use chat_server::transcript::{self, Format, Target};
use std::path::Path;
use std::sync::Arc;

/// The scopes named in `list` (`read,write,admin`).
pub fn parse_scopes(list: &str) -> anyhow::Result<Vec<Scope>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Scope::parse(s).with_context(|| format!("unknown scope {s:?}: read, write or admin")))
        .collect()
}

/// Runs `op` and prints what it did.
pub fn run(cfg: &Config, op: Op) -> anyhow::Result<()> {
    let asked = control::request(&cfg.data_dir, &Request::ServiceAccounts(op.clone()))
        .with_context(|| format!("asking the chatd on {}", cfg.data_dir.display()))?;
    let done = match asked {
        Some(Reply::ServiceAccounts(d)) => d,
        Some(Reply::Error(e)) => anyhow::bail!("{e}"),
        Some(other) => anyhow::bail!("the chatd on {} answered {other:?}", cfg.data_dir.display()),
        None => directly(cfg, op)?,
    };
    match done {
        Done::Credential { account, credential } => {
            println!("{}", line(&account));
            println!("credential (shown once; give it to the integration as `Authorization: Bearer ...`):");
            println!("{credential}");
        }
        Done::Revoked(a) => println!("revoked: {}", line(&a)),
        Done::Accounts(all) if all.is_empty() => println!("no service accounts"),
        Done::Accounts(all) => all.iter().for_each(|a| println!("{}", line(a))),
    }
    Ok(())
}

fn line(a: &ServiceAccountRecord) -> String {
    let scopes: Vec<&str> = a.scopes.iter().map(|s| s.name()).collect();
    let state =
        if a.active() { "active".to_string() } else { format!("revoked at {} by {}", a.revoked_at_ms, a.revoked_by) };
    format!(
        "{} ({:?}) scopes {} — {state}, created by {} at {}",
        a.id,
        a.display_name,
        scopes.join(","),
        a.created_by,
        a.created_at_ms
    )
}

/// No chatd answers: the operation on the store opened here.
fn directly(cfg: &Config, op: Op) -> anyhow::Result<Done> {
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    on_store(cfg, |store, audit| async move { Ok(accounts::apply(&store, &audit, "chatd", op, now_ms).await?) })
}

/// Runs `f` on the store and audit trail opened here (no chatd runs on them).
fn on_store<T, F>(cfg: &Config, f: impl FnOnce(Arc<Store>, Arc<Audit>) -> F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let store = Store::open(cfg)
        .with_context(|| format!("opening the store in {} (is a chatd starting there?)", cfg.data_dir.display()))?;
    let store = Arc::new(store);
    let audit = Arc::new(Audit::start(cfg, store.clone(), chat_server::metrics::AuditMetrics::noop())?);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let done = rt.block_on(async {
        let d = f(store.clone(), audit.clone()).await?;
        audit.flush().await?;
        anyhow::Ok(d)
    });
    audit.close();
    store.close();
    done
}

/// `chatd conversations transcript`: the transcript written into `to`.
pub fn transcript(cfg: &Config, id: u64, case: &str, format: &str, to: &Path) -> anyhow::Result<()> {
    let format = Format::parse(format).with_context(|| format!("format {format:?}: pdf or json"))?;
    let to = std::path::absolute(to).with_context(|| format!("{}", to.display()))?;
    let req = Request::Transcript { conversation_id: id, case_id: case.into(), format, to: to.clone() };
    let asked = control::request(&cfg.data_dir, &req)
        .with_context(|| format!("asking the chatd on {}", cfg.data_dir.display()))?;
    let (conversations, bytes) = match asked {
        Some(Reply::Transcript { conversations, bytes }) => (conversations, bytes),
        Some(Reply::Error(e)) => anyhow::bail!("{e}"),
        Some(other) => anyhow::bail!("the chatd on {} answered {other:?}", cfg.data_dir.display()),
        None => on_store(cfg, |store, audit| {
            let (api, to) = (cfg.api.clone(), to.clone());
            async move {
                let target = Target { conversation_id: id, case_id: case, format, to: &to };
                transcript::to_file(&store, &audit, &api, target).await.map_err(anyhow::Error::msg)
            }
        })?,
    };
    println!("wrote the transcript of {conversations} conversation(s) into {} ({bytes} bytes)", to.display());
    Ok(())
}
