//! The command line: `loadgen run <scenario> [overrides]`.

use crate::scenario::Name;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about = "Load generator for chatd: the scenarios of WORKLOADS.md")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run one scenario and report.
    Run(RunArgs),
}

/// Which transport the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// Raw QUIC (ALPN chat/1), shared client endpoints.
    Quic,
    /// WebTransport: one UDP socket per connection (mind `ulimit -n`).
    Webtransport,
}

/// `loadgen run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The scenario (see WORKLOADS.md).
    #[arg(value_enum)]
    pub scenario: Name,
    /// Users (one connection each).
    #[arg(long)]
    pub users: Option<usize>,
    /// Conversations (spec, ceiling, reconnect: 3/4 private, 1/4 groups of 8).
    #[arg(long)]
    pub conversations: Option<usize>,
    /// Offered messages per second in all (ceiling: the first step; fanout: into the big room).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to send, e.g. 5s, 2m, 500ms (ceiling: per step).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Shards of the spawned server (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub shards: usize,
    /// spec: every conversation end-to-end encrypted with MLS (in-memory
    /// devices; senders encrypt, receivers decrypt before checking).
    #[arg(long)]
    pub e2e: bool,
    /// Transport of the clients.
    #[arg(long, value_enum, default_value = "quic")]
    pub transport: TransportArg,
    /// Use servers already running instead of starting one: one address, or
    /// the nodes of a cluster comma-separated (users are spread over them in
    /// turn, and the report gives per-node figures).
    #[arg(long, requires = "cert_hash", value_delimiter = ',')]
    pub server: Vec<SocketAddr>,
    /// HS256 secret of that server (default: chatd's dev secret).
    #[arg(long, env = "LOADGEN_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// SHA-256 of the servers' certificates (hex), as `chatd serve` prints it:
    /// one for every node, or one per `--server` address in the same order.
    #[arg(long, value_delimiter = ',')]
    pub cert_hash: Vec<String>,
    /// Where the started chatd's data directory goes [default: the temporary
    /// directory; hoard: /dev/shm when present].
    #[arg(long)]
    pub data_in: Option<PathBuf>,
    /// The chatd binary to start (default: next to this executable).
    #[arg(long)]
    pub chatd: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the latency plot (SVG) here [default: loadgen-<scenario>.svg].
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Fail only on lost, duplicated or reordered messages, never on latency (CI smoke).
    #[arg(long)]
    pub check_correctness_only: bool,
    /// attachments: how many users upload 10 MiB files in a loop [default: 20].
    #[arg(long)]
    pub uploaders: Option<usize>,
    /// Seed of the conversation layout.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// crash, storm, cluster --disrupt: when the fault comes, from the start of
    /// sending, e.g. 14s [default: 40% of --duration].
    #[arg(long, value_parser = parse_duration)]
    pub disrupt_at: Option<Duration>,
    /// hoard: connections the hoarding user tries, WebSocket and QUIC in turn
    /// [default: limits.max_connections_per_user + 10]; 0: no attack, both
    /// phases alike (the machine's own noise between two equal phases).
    #[arg(long)]
    pub hoarders: Option<usize>,
    /// cluster: a fault in the middle of the run (at --disrupt-at): a node
    /// killed for good, or Redis restarted empty.
    #[arg(long, value_enum)]
    pub disrupt: Option<ClusterFault>,
    /// cluster: the store the in-process nodes share.
    #[arg(long, value_enum, default_value = "embedded")]
    pub store: StoreArg,
    /// cluster --store scylla: the CQL nodes, host:port comma-separated [env: CHAT_SCYLLA_NODES].
    #[arg(long, env = "CHAT_SCYLLA_NODES")]
    pub scylla_nodes: Option<String>,
}

/// A fault `cluster` can inject (`--disrupt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterFault {
    /// A node is killed (no goodbye) and not restarted; its clients move to the others.
    NodeLoss,
    /// Redis is killed and started again empty 1 s later.
    RedisRestart,
}

/// The store of `cluster`'s in-process nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreArg {
    /// One embedded store shared in the process.
    Embedded,
    /// ScyllaDB (or Cassandra) at --scylla-nodes, in a fresh keyspace dropped at the end.
    Scylla,
}

/// Parses `500ms`, `5s`, `2m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 5s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m, h)")),
    };
    if !(secs > 0.0 && secs < 7.0 * 86400.0) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c =
            Cli::try_parse_from(["loadgen", "run", "spec", "--duration", "5s", "--check-correctness-only"]).unwrap();
        let Cmd::Run(a) = c.cmd;
        assert_eq!(a.scenario, Name::Spec);
        assert!(a.check_correctness_only);
        let c = Cli::try_parse_from(["loadgen", "run", "crash", "--disrupt-at", "14s"]).unwrap();
        let Cmd::Run(a) = c.cmd;
        assert_eq!((a.scenario, a.disrupt_at), (Name::Crash, Some(Duration::from_secs(14))));
        let c = Cli::try_parse_from(["loadgen", "run", "attachments", "--uploaders", "3"]).unwrap();
        let Cmd::Run(a) = c.cmd;
        assert_eq!((a.scenario, a.uploaders), (Name::Attachments, Some(3)));
        let c = Cli::try_parse_from(["loadgen", "run", "hoard", "--hoarders", "0"]).unwrap();
        let Cmd::Run(a) = c.cmd;
        assert_eq!((a.scenario, a.hoarders), (Name::Hoard, Some(0)));
        assert!(
            Cli::try_parse_from(["loadgen", "run", "spec", "--server", "127.0.0.1:1"]).is_err(),
            "needs --cert-hash"
        );
        let c = Cli::try_parse_from([
            "loadgen",
            "run",
            "cluster",
            "--server",
            "127.0.0.1:1,127.0.0.1:2,[::1]:3",
            "--cert-hash",
            "ab",
        ])
        .unwrap();
        let Cmd::Run(a) = c.cmd;
        assert_eq!(a.server.len(), 3);
        assert_eq!(a.cert_hash, vec!["ab".to_string()]);
    }
}
