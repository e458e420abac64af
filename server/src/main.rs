//! `chatd`: the chat server binary. `chatd serve` runs it; `chatd migrate`
//! makes or upgrades the store's schema (ScyllaDB); `chatd token` mints a
//! development token (and, on stderr, a sign-in link to the web app with the
//! token in the fragment); `chatd config` prints the effective configuration;
//! `chatd audit verify|export` checks and exports the audit trail; `chatd
//! backup|restore` take an online backup of the embedded store and restore it
//! (`backup_cli`).

mod accounts_cli;
mod backup_cli;
mod gdpr_cli;
mod keys_cli;

use anyhow::Context;
use chat_server::api::accounts::Op;
use chat_server::config::Config;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// jemalloc, not glibc's malloc: glibc kept the 2 MiB answers of connections
/// that do not read in its arenas after they were freed (its mmap threshold
/// rises to the largest block freed), so chatd's RSS grew with every wave of
/// such connections; jemalloc's background threads give freed memory back to
/// the kernel (bench/RESULTS.md, the `hoard` runs). mimalloc did that too but
/// held 12-44% more per idle connection.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "chatd", version, about = "Real-time chat server (QUIC + WebTransport)")]
struct Cli {
    /// TOML configuration file (values there are overridden by CHAT_* variables and flags).
    #[arg(long, short, global = true, env = "CHAT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        /// UDP address for both transports.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Number of shards (0: one per core).
        #[arg(long)]
        shards: Option<usize>,
        /// Data directory (store, dev certificate).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TCP address of the web endpoint (browser app, WebSocket).
        #[arg(long)]
        web_listen: Option<std::net::SocketAddr>,
    },
    /// Mint a development token (HS256 with the configured secret).
    Token {
        /// User id.
        #[arg(long)]
        user: String,
        /// advocate, client or admin.
        #[arg(long, default_value = "advocate")]
        role: String,
        /// Display name (default: the user id).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 24)]
        hours: u64,
    },
    /// Create or upgrade the store's schema (ScyllaDB: keyspace, tables, version); idempotent.
    Migrate,
    /// Print the effective configuration as TOML.
    Config,
    /// Rebuild this node's search index (`data_dir/search`) from the store.
    /// Run it with the node stopped (the index has one writer).
    Reindex,
    /// The tamper-evident audit trail: verify it, export it.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Take a consistent backup of the embedded store, attachments and audit
    /// trail into DIR (empty or absent), while the server serves: asked of the
    /// running chatd over `data_dir/control.sock`; when no chatd runs on the
    /// data directory, taken by opening the store directly. Keys are not
    /// included (README, "Backup and restore").
    Backup {
        /// The backup directory (empty or absent).
        #[arg(long)]
        to: PathBuf,
        /// Data directory of the server to back up.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Pace of the backup's reads and writes, MiB/s (0: no limit).
        #[arg(long, default_value_t = 64)]
        max_mib_per_sec: u64,
    },
    /// Restore a backup into an empty data directory: every checksum and the
    /// manifest are verified before anything is written; the store gets a new
    /// epoch (connected clients resync). Copy the keys back separately.
    Restore {
        /// The backup directory (holding manifest.json).
        #[arg(long)]
        from: PathBuf,
        /// The data directory to fill (empty or absent).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The user directory.
    Users {
        #[command(subcommand)]
        cmd: UsersCmd,
    },
    /// GDPR requests about one user.
    Gdpr {
        #[command(subcommand)]
        cmd: GdprCmd,
    },
    /// Whole conversations: records management by the firm.
    Conversations {
        #[command(subcommand)]
        cmd: ConversationsCmd,
    },
    /// Master keys of encryption at rest (README, "Encryption at rest").
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Service accounts of the server API (README, "Integrate").
    ServiceAccounts {
        #[command(subcommand)]
        cmd: AccountsCmd,
    },
}

#[derive(Subcommand)]
enum AccountsCmd {
    /// Make a service account; prints its credential once.
    Create {
        /// Its id: 1-32 of a-z, 0-9 and '-' (it acts as the user `svc:<id>`).
        #[arg(long)]
        id: String,
        /// The name shown with its system messages.
        #[arg(long)]
        name: String,
        /// What it may do, comma-separated: read, write, admin.
        #[arg(long, default_value = "read,write")]
        scopes: String,
    },
    /// Give a service account a new credential (the old one stops at once); prints it once.
    Rotate {
        /// The account.
        #[arg(long)]
        id: String,
    },
    /// Revoke a service account for good (its calls are refused at once).
    Revoke {
        /// The account.
        #[arg(long)]
        id: String,
    },
    /// List the service accounts, revoked ones included.
    List,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Write a new random master key (64 hex digits, mode 0600) to a new file.
    Generate {
        /// The file to create.
        #[arg(long)]
        to: PathBuf,
    },
    /// Make the key in FILE the master key and re-wrap every data key under
    /// it. Asked of the running chatd (no downtime); when none runs, done on
    /// the store directly. Then point encryption.master_key_file at FILE.
    Rotate {
        /// The new master key's file.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConversationsCmd {
    /// Erase one conversation (as the `EraseConversation` command of a
    /// system admin): archived for good, every message with its versions,
    /// search entries and attachment records removed, its data key for
    /// encryption at rest destroyed; refused while a legal hold covers it.
    /// Audited with the reason. Asked of the running chatd over
    /// `data_dir/control.sock`; idempotent, so run it again to finish one
    /// that was cut off.
    Erase {
        /// The conversation id.
        #[arg(long)]
        id: u64,
        /// Why (required, at most 500 bytes; on the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Write the court-ready transcript of one conversation (--id) or of
    /// every conversation of a case (--case) into a new file, as PDF or
    /// JSON, times in `api.time_zone`; recorded on the audit trail with the
    /// file's SHA-256. Asked of the running chatd; when none runs, made from
    /// the store directly.
    Transcript {
        /// The conversation id.
        #[arg(long, default_value_t = 0)]
        id: u64,
        /// The case id.
        #[arg(long, default_value = "")]
        case: String,
        /// pdf or json.
        #[arg(long, default_value = "pdf")]
        format: String,
        /// The file to write (never overwritten).
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum GdprCmd {
    /// Export everything of one user (profile, memberships with receipts,
    /// the entries they sent with earlier versions, the files they
    /// uploaded, the audit entries about them) into DIR (empty or absent),
    /// with a manifest of SHA-256s; the export is audited. Asked of the
    /// running chatd over `data_dir/control.sock`; when none runs there,
    /// taken from the store directly.
    Export {
        /// The user id.
        #[arg(long)]
        user: String,
        /// The export directory (empty or absent).
        #[arg(long)]
        to: PathBuf,
    },
    /// Erase one user (as the `EraseUser` command of a system admin): their
    /// messages become tombstones, their files' records go, their profile is
    /// pseudonymised and their sessions closed; what a legal hold covers is
    /// kept and listed. Audited with the reason. Asked of the running chatd
    /// over `data_dir/control.sock` (only it reaches the conversations'
    /// owners and live sessions); idempotent, so run it again to finish one
    /// that was cut off.
    Erase {
        /// The user id.
        #[arg(long)]
        user: String,
        /// Why (required, at most 500 bytes; on the audit trail).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Walk every chain in the store against its signed checkpoints: prints OK
    /// with counts, or the first entry altered, removed or reordered (exit 1).
    Verify,
    /// Write the entries that pass the filters as JSON lines or CSV (the
    /// export is itself audited). With the embedded store, run it with the node stopped.
    Export {
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// File to write (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Entries whose actor or target is this user.
        #[arg(long)]
        user: Option<String>,
        /// Entries about this conversation.
        #[arg(long)]
        conversation: Option<u64>,
        /// Event kinds (repeat, or comma-separated), e.g. message.edited.
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        /// At or after, ms since the Unix epoch.
        #[arg(long)]
        since_ms: Option<u64>,
        /// Before, ms since the Unix epoch.
        #[arg(long)]
        until_ms: Option<u64>,
    },
}

#[derive(Subcommand)]
enum UsersCmd {
    /// Provision users from a CSV (header `id,display_name,role`) or JSON
    /// (`[{"id", "display_name", "role"}]`) file; all or nothing. With the
    /// embedded store run it with the node stopped (one process opens the
    /// store); with ScyllaDB at any time. Disabling and revoking are
    /// commands of a running server (`DisableUser`, `RevokeSessions`): only
    /// the server can close its live sessions.
    Import {
        /// The file.
        file: PathBuf,
    },
}

/// Logs to stderr, filtered by `CHAT_LOG` (default `info,quinn=warn`): text,
/// coloured only on a terminal (a log file gets no escape codes), or one JSON
/// object per line with `CHAT_LOG_FORMAT=json`.
fn init_logs() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHAT_LOG").unwrap_or_else(|_| "info,quinn=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match std::env::var("CHAT_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Err(_) => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        Ok(other) => anyhow::bail!("CHAT_LOG_FORMAT is `text` or `json`, not `{other}`"),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // Everything chatd writes (store, keys, certificates) is its user's alone.
    chat_server::files::private_umask();
    let cli = Cli::parse();
    init_logs()?;
    let flags = |cfg: &mut Config| {
        if let Cmd::Serve { listen, shards, data_dir, web_listen } = &cli.cmd {
            if let Some(l) = listen {
                cfg.listen = *l;
            }
            if let Some(s) = shards {
                cfg.shards = *s;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d.clone();
            }
            if let Some(w) = web_listen {
                cfg.web.listen = *w;
            }
        }
        if let Cmd::Backup { data_dir: Some(d), .. } | Cmd::Restore { data_dir: Some(d), .. } = &cli.cmd {
            cfg.data_dir = d.clone();
        }
    };
    let mut cfg = Config::load_with(cli.config.as_deref(), flags)?;
    match cli.cmd {
        Cmd::Serve { .. } => serve(cfg),
        Cmd::Token { user, role, name, hours } => {
            // The data directory's own secret when none is configured (what `serve` uses).
            chat_server::auth::resolve_dev_secret(&mut cfg)?;
            chat_server::auth::parse_role(&role)
                .with_context(|| format!("role {role:?} is not advocate, client or admin"))?;
            chat_protocol::limits::check_user_id(&user)?;
            let max_hours = cfg.auth.max_token_lifetime_secs / 3600;
            anyhow::ensure!(
                hours <= max_hours,
                "--hours {hours} is over auth.max_token_lifetime_secs ({max_hours} hours): chatd would refuse the token"
            );
            let name = name.unwrap_or_else(|| user.clone());
            let token = chat_server::auth::mint_hs256(
                &cfg.auth.hs256_secret,
                &user,
                &name,
                &role,
                Duration::from_secs(hours * 3600),
            );
            // stdout is the token alone (for `$(chatd token ...)`); the link goes to stderr.
            // The fragment never leaves the browser, so the token reaches no server log.
            if let Some(url) = configured_web_url(&cfg) {
                eprintln!("sign in to the web app: {url}#token={token}");
            }
            println!("{token}");
            Ok(())
        }
        Cmd::Migrate => {
            for line in chat_server::store::migrate(&cfg)? {
                println!("{line}");
            }
            for line in chat_server::blob::migrate(&cfg)? {
                println!("{line}");
            }
            Ok(())
        }
        Cmd::Reindex => reindex(&cfg),
        Cmd::Audit { cmd: AuditCmd::Verify } => audit_verify(&cfg),
        Cmd::Audit { cmd: AuditCmd::Export { format, output, user, conversation, kind, since_ms, until_ms } } => {
            let filter = chat_server::audit::query::Filter {
                user: user.unwrap_or_default(),
                conversation_id: conversation.unwrap_or(0),
                kinds: kind,
                since_ms: since_ms.unwrap_or(0),
                until_ms: until_ms.unwrap_or(0),
            };
            audit_export(&cfg, filter, &format, output)
        }
        Cmd::Users { cmd: UsersCmd::Import { file } } => import_users(&cfg, &file),
        Cmd::Gdpr { cmd: GdprCmd::Export { user, to } } => gdpr_cli::export(&cfg, &user, &to),
        Cmd::Gdpr { cmd: GdprCmd::Erase { user, reason } } => gdpr_cli::erase(&cfg, &user, &reason),
        Cmd::Conversations { cmd: ConversationsCmd::Erase { id, reason } } => {
            gdpr_cli::erase_conversation(&cfg, id, &reason)
        }
        Cmd::Conversations { cmd: ConversationsCmd::Transcript { id, case, format, to } } => {
            accounts_cli::transcript(&cfg, id, &case, &format, &to)
        }
        Cmd::ServiceAccounts { cmd } => {
            let op = match cmd {
                AccountsCmd::Create { id, name, scopes } => {
                    Op::Create { id, display_name: name, scopes: accounts_cli::parse_scopes(&scopes)? }
                }
                AccountsCmd::Rotate { id } => Op::Rotate { id },
                AccountsCmd::Revoke { id } => Op::Revoke { id },
                AccountsCmd::List => Op::List,
            };
            accounts_cli::run(&cfg, op)
        }
        Cmd::Keys { cmd: KeysCmd::Generate { to } } => keys_cli::generate(&to),
        Cmd::Keys { cmd: KeysCmd::Rotate { new_key_file } } => keys_cli::rotate(&cfg, &new_key_file),
        Cmd::Backup { to, max_mib_per_sec, .. } => backup_cli::backup(&cfg, &to, max_mib_per_sec << 20),
        Cmd::Restore { from, .. } => backup_cli::restore(&cfg, &from),
        Cmd::Config => {
            // Secrets stay out of terminals, logs and support tickets.
            print!("{}", cfg.redacted().to_toml());
            Ok(())
        }
    }
}

/// `chatd reindex`: the node's search index rebuilt from the store.
fn reindex(cfg: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(cfg.search.enabled, "search.enabled is false: there is no index to rebuild");
    let dir = chat_server::node::search_dir(cfg);
    let store = chat_server::store::Store::open(cfg)?;
    let index = chat_server::search::tantivy::TantivyIndex::open(&dir)
        .with_context(|| format!("search index {} (is chatd running on this data directory?)", dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let done = rt.block_on(chat_server::search::rebuild::rebuild(&store, &index));
    store.close();
    let done = done?;
    println!("reindexed {} messages in {} conversations into {}", done.messages, done.conversations, dir.display());
    Ok(())
}

/// Opens the store for an audit subcommand, saying what to check when it cannot.
fn audit_store(cfg: &Config) -> anyhow::Result<std::sync::Arc<chat_server::store::Store>> {
    let store = chat_server::store::Store::open(cfg)
        .with_context(|| format!("opening the store (is chatd running on {}?)", cfg.data_dir.display()))?;
    Ok(std::sync::Arc::new(store))
}

/// `chatd audit verify`: every chain walked; exit 1 naming the first bad entry.
fn audit_verify(cfg: &Config) -> anyhow::Result<()> {
    use chat_server::audit::{keys, read};
    let store = audit_store(cfg)?;
    // This node's own chain must be signed by this node's key (when both are here to say).
    let key_path = keys::key_path(cfg);
    let own = match key_path.exists() {
        true => Some((keys::chain_id(cfg)?, keys::public_hex(&keys::signing_key(&key_path)?))),
        false => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let verdict = rt.block_on(read::verify(&*store, own.as_ref().map(|(c, k)| (c.as_str(), k.as_str()))));
    store.close();
    match verdict? {
        Ok(chains) => {
            let total: u64 = chains.iter().map(|c| c.entries).sum();
            println!("audit trail OK: {} chain(s), {total} entries", chains.len());
            for c in chains {
                println!(
                    "  chain {}: {} entries, {} signed checkpoint(s), {} entries after the last",
                    c.chain, c.entries, c.checkpoints, c.unsigned
                );
            }
            Ok(())
        }
        Err(fault) => {
            println!("audit trail FAILED: {fault}");
            std::process::exit(1);
        }
    }
}

/// `chatd audit export`: the filtered trail as JSON lines or CSV, then an
/// `audit.exported` entry on this node's chain.
fn audit_export(
    cfg: &Config,
    filter: chat_server::audit::query::Filter,
    format: &str,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    use chat_server::audit::{Audit, AuditEvent, EventKind, query::Format, read};
    let format = Format::parse(format)?;
    filter.check()?;
    let store = audit_store(cfg)?;
    let audit = Audit::start(cfg, store.clone(), chat_server::metrics::AuditMetrics::noop())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let written = rt.block_on(async {
        let count = match &output {
            Some(path) => {
                let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                let mut out = std::io::BufWriter::new(file);
                let n = read::export(&*store, &filter, format, &mut out).await?;
                out.flush()?;
                n
            }
            None => read::export(&*store, &filter, format, &mut std::io::stdout().lock()).await?,
        };
        let mut details = chat_server::command::audit::filter_details(&filter);
        details["format"] = format.name().into();
        details["count"] = count.into();
        details["via"] = "chatd audit export".into();
        details["output"] = output.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "stdout".into()).into();
        audit.record(AuditEvent::new(EventKind::AuditExported, "chatd").details(details)).await?;
        audit.flush().await?;
        anyhow::Ok(count)
    });
    audit.close();
    store.close();
    let count = written?;
    eprintln!("exported {count} audit entries");
    Ok(())
}

/// `chatd users import FILE`: the file's users provisioned in the directory.
fn import_users(cfg: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    use chat_server::command::users;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let list = users::rules::parse_import(&text)
        .with_context(|| format!("{} is refused, nothing imported", file.display()))?;
    let store = chat_server::store::Store::open(cfg)
        .context("cannot open the store (is chatd running on this data directory?)")?;
    let store = std::sync::Arc::new(store);
    let audit = chat_server::audit::Audit::start(cfg, store.clone(), chat_server::metrics::AuditMetrics::noop())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let done = rt.block_on(async {
        let n = users::import(&store, &audit, list, "chatd users import").await?;
        audit.flush().await?;
        anyhow::Ok(n)
    });
    audit.close();
    store.close();
    println!("imported {} users from {}", done?, file.display());
    Ok(())
}

/// The web app's URL as configured (`public_url`, else the listen address;
/// an unspecified address is reached on loopback). None if the endpoint is off.
fn configured_web_url(cfg: &Config) -> Option<String> {
    if !cfg.web.enabled {
        return None;
    }
    let public = cfg.web.public_url.trim_end_matches('/');
    if !public.is_empty() {
        return Some(format!("{public}/"));
    }
    let mut addr = cfg.web.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv6() {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        });
    }
    let scheme = if cfg.tls.cert.is_some() { "https" } else { "http" };
    Some(format!("{scheme}://{addr}/"))
}

fn serve(cfg: Config) -> anyhow::Result<()> {
    if cfg.auth.public_key.is_none() && cfg.auth.hs256_secret == chat_server::config::PUBLIC_DEV_SECRET {
        tracing::warn!("auth uses the public development secret (allowed on loopback only)");
    }
    let mut cfg = cfg;
    if let Some(file) = chat_server::auth::resolve_dev_secret(&mut cfg)? {
        tracing::warn!(
            "auth uses this data directory's development secret ({}); `chatd token` mints tokens with it. \
             Set auth.public_key (your identity provider) in production",
            file.display()
        );
    }
    let shards = cfg.shard_count();
    let data_dir = cfg.data_dir.clone();
    let store = (cfg.store.backend == chat_server::config::StoreBackend::Scylla)
        .then(|| format!("scylla keyspace {} on {}", cfg.store.scylla.keyspace, cfg.store.scylla.nodes.join(",")));
    let handle = chat_server::start(cfg)?;
    // Signals are caught before the banner goes out: whoever reads the banner
    // may send SIGTERM at once.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut term, mut int) = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        std::io::Result::Ok((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?))
    })?;
    let mut banner = format!(
        "chatd listening on {} (udp: QUIC ALPN chat/1 and WebTransport https://localhost:{}/chat), {shards} shards\n\
         certificate sha256: {}{}\n",
        handle.addr(),
        handle.addr().port(),
        handle.cert_sha256(),
        if handle.dev_cert() { " (dev certificate; pin it by this hash)" } else { "" }
    );
    if let Some(url) = handle.web_url() {
        banner.push_str(&format!("web app: {url}\n"));
    }
    if let Some(addr) = handle.metrics_addr() {
        banner.push_str(&format!("metrics: http://{addr}/metrics\n"));
    }
    banner.push_str(&match store {
        None => format!("data directory: {}  store epoch: {}\n", data_dir.display(), handle.epoch()),
        Some(store) => format!("store: {store}  store epoch: {}\n", handle.epoch()),
    });
    // One write; a closed or full stdout must not stop a running server.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    drop(out);
    rt.block_on(async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    });
    tracing::info!("shutting down: draining sessions and flushing the store");
    handle.shutdown();
    Ok(())
}
