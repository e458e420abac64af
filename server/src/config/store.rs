//! The `[store]` section: which backend ([`StoreBackend`]), the embedded
//! store's fsync, and the ScyllaDB settings ([`ScyllaConfig`]) with their
//! checks, so that a configuration is refused before anything connects. It
//! does not open a store (the store module does) nor know the database driver.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which store, and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Backend: "embedded" (default, a local database under `data_dir/store`)
    /// or "scylla" (a ScyllaDB or Cassandra cluster, see [`ScyllaConfig`]).
    pub backend: StoreBackend,
    /// Embedded only: fsync every commit (default true). false is for
    /// benchmarks only: an acknowledged message may then be lost in a power
    /// cut, and after such a crash seqs may be handed out again under the same
    /// epoch (clients are not told to resync in that case; not handled yet).
    pub fsync: bool,
    /// ScyllaDB settings (used when `backend = "scylla"`).
    pub scylla: ScyllaConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { backend: StoreBackend::Embedded, fsync: true, scylla: ScyllaConfig::default() }
    }
}

/// The storage backend, `store.backend`: `"embedded"` or `"scylla"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum StoreBackend {
    /// The local fjall database under `data_dir/store` (one node only).
    #[default]
    Embedded,
    /// A ScyllaDB or Cassandra cluster that several nodes share.
    Scylla,
}

impl StoreBackend {
    /// The name, as in `store.backend`.
    pub fn name(self) -> &'static str {
        match self {
            StoreBackend::Embedded => "embedded",
            StoreBackend::Scylla => "scylla",
        }
    }

    /// Whether several nodes can share the store.
    pub fn is_shared(self) -> bool {
        self == StoreBackend::Scylla
    }
}

impl TryFrom<String> for StoreBackend {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "embedded" => Ok(StoreBackend::Embedded),
            "scylla" => Ok(StoreBackend::Scylla),
            other => Err(format!("store.backend = {other:?}: use \"embedded\" or \"scylla\"")),
        }
    }
}

/// The ScyllaDB (or Cassandra) backend's settings, `[store.scylla]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`; a list, or one string of comma-separated
    /// entries (handy in `CHAT_STORE__SCYLLA__NODES`). Default `["127.0.0.1:9042"]`.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub nodes: Vec<String>,
    /// Keyspace holding the tables. Default "chat".
    pub keyspace: String,
    /// Replication of the keyspace, used by `chatd migrate` when it creates it.
    pub replication: ReplicationConfig,
    /// Consistency of reads and writes: one, two, three, quorum, all,
    /// local_quorum, each_quorum, local_one. Default "local_quorum".
    pub consistency: String,
    /// Consistency of the Paxos phase of lightweight transactions (the
    /// `IF NOT EXISTS` appends): serial or local_serial. Default "local_serial".
    /// A keyspace replicated to several datacenters needs "serial" (with
    /// local_serial each datacenter would fence seqs on its own): local_serial
    /// is refused then, here and when the server reports such a keyspace.
    pub serial_consistency: String,
    /// Datacenter to prefer (token-aware within it). Default: none (all nodes alike).
    pub local_dc: Option<String>,
    /// User name for password authentication (with `password`).
    pub username: Option<String>,
    /// Password for password authentication (with `username`).
    pub password: Option<String>,
    /// Client-side timeout of one statement, milliseconds. Default 5000.
    pub request_timeout_ms: u64,
    /// Timeout of opening a connection, milliseconds. Default 5000.
    pub connect_timeout_ms: u64,
    /// Threads of the driver's own runtime. Default 2.
    pub driver_threads: usize,
    /// Store calls in flight at once; more wait for a slot. Default 4096.
    pub max_in_flight: usize,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".into()],
            keyspace: "chat".into(),
            replication: ReplicationConfig::default(),
            consistency: "local_quorum".into(),
            serial_consistency: "local_serial".into(),
            local_dc: None,
            username: None,
            password: None,
            request_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            driver_threads: 2,
            max_in_flight: 4096,
        }
    }
}

/// A keyspace's replication, `[store.scylla.replication]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// "NetworkTopologyStrategy" (default; production) or "SimpleStrategy" (one datacenter, tests).
    pub class: String,
    /// Replicas per datacenter (NetworkTopologyStrategy without `datacenters`)
    /// or in all (SimpleStrategy). Default 3.
    pub factor: u32,
    /// NetworkTopologyStrategy only: replicas per named datacenter, e.g.
    /// `{ dc1 = 3, dc2 = 3 }`; when set, `factor` is not used.
    pub datacenters: BTreeMap<String, u32>,
    /// ScyllaDB only: `AND tablets = {'enabled': ...}` on `CREATE KEYSPACE`.
    /// Default: `false` when the server has tablets (ScyllaDB 6.0 and later:
    /// up to 2025.3 its tablets keyspaces refuse the lightweight transactions
    /// every append uses), not said otherwise (Cassandra and older ScyllaDB do
    /// not know the option). Set true only on a ScyllaDB that runs LWTs on tablets.
    pub tablets: Option<bool>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self { class: "NetworkTopologyStrategy".into(), factor: 3, datacenters: Default::default(), tablets: None }
    }
}

/// A list of strings, or one string of comma-separated entries.
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Nodes {
        List(Vec<String>),
        One(String),
    }
    Ok(match Nodes::deserialize(d)? {
        Nodes::List(list) => list,
        Nodes::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
    })
}

impl ScyllaConfig {
    /// Checks the section; the error names the key (below `store.scylla`) and
    /// what is wrong. What passes can be given to the driver as it is.
    pub fn check(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("nodes is empty: give at least one contact point, host:port".into());
        }
        for node in &self.nodes {
            check_node(node)?;
        }
        check_identifier("keyspace", &self.keyspace)?;
        if let Some(dc) = &self.local_dc {
            check_name("local_dc", dc)?;
        }
        self.credentials()?;
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err("request_timeout_ms and connect_timeout_ms must be at least 1".into());
        }
        if self.driver_threads == 0 || self.max_in_flight == 0 {
            return Err("driver_threads and max_in_flight must be at least 1".into());
        }
        let serial = SerialLevel::parse(&self.serial_consistency)?;
        check_serial_for_datacenters(serial, self.replication.datacenters.keys())?;
        self.replication.check()?;
        ConsistencyLevel::parse(&self.consistency)?;
        Ok(())
    }

    /// The user name and password, if set: both or neither, and a user name
    /// that is not empty.
    pub fn credentials(&self) -> Result<Option<(String, String)>, String> {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some((u.clone(), p.clone()))),
            (None, None) => Ok(None),
            _ => Err("username and password go together (and the user name is not empty)".into()),
        }
    }
}

impl ReplicationConfig {
    /// Checks the class, the factors and the datacenter names.
    pub fn check(&self) -> Result<(), String> {
        match self.class.as_str() {
            "SimpleStrategy" | "NetworkTopologyStrategy" => {}
            other => {
                return Err(format!("replication class {other:?} is not SimpleStrategy or NetworkTopologyStrategy"));
            }
        }
        if self.datacenters.is_empty() {
            if self.factor == 0 {
                return Err("replication factor must be at least 1".into());
            }
            return Ok(());
        }
        if self.class != "NetworkTopologyStrategy" {
            return Err("replication datacenters need class NetworkTopologyStrategy".into());
        }
        for (dc, n) in &self.datacenters {
            check_name("replication datacenter", dc)?;
            if *n == 0 {
                return Err(format!("replication factor of datacenter {dc:?} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// A consistency level of reads and writes, as `store.scylla.consistency` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsistencyLevel {
    /// `one`.
    One,
    /// `two`.
    Two,
    /// `three`.
    Three,
    /// `quorum`.
    Quorum,
    /// `all`.
    All,
    /// `local_quorum`.
    LocalQuorum,
    /// `each_quorum`.
    EachQuorum,
    /// `local_one`.
    LocalOne,
}

impl ConsistencyLevel {
    /// A level by its CQL name, any case. `any` and the serial levels are refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "one" => Self::One,
            "two" => Self::Two,
            "three" => Self::Three,
            "quorum" => Self::Quorum,
            "all" => Self::All,
            "local_quorum" => Self::LocalQuorum,
            "each_quorum" => Self::EachQuorum,
            "local_one" => Self::LocalOne,
            _ => {
                return Err(format!(
                    "consistency {s:?} is not one of one, two, three, quorum, all, local_quorum, each_quorum, \
                     local_one (any would acknowledge writes no replica holds)"
                ));
            }
        })
    }
}

/// The consistency of the Paxos phase of lightweight transactions, as
/// `store.scylla.serial_consistency` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialLevel {
    /// `serial`: one Paxos quorum across every datacenter.
    Serial,
    /// `local_serial`: a Paxos quorum within the coordinator's datacenter.
    LocalSerial,
}

impl SerialLevel {
    /// A serial level by its CQL name, any case.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "serial" => Ok(Self::Serial),
            "local_serial" => Ok(Self::LocalSerial),
            _ => Err(format!("serial_consistency {s:?} is not serial or local_serial")),
        }
    }
}

/// Refuses `local_serial` for a keyspace replicated to several datacenters:
/// each datacenter would run its own Paxos, so two nodes in two datacenters
/// could both store a message at the same seq (the seq fence would not hold).
pub fn check_serial_for_datacenters<'a>(
    serial: SerialLevel,
    datacenters: impl IntoIterator<Item = &'a String>,
) -> Result<(), String> {
    let dcs: Vec<&String> = datacenters.into_iter().collect();
    if serial == SerialLevel::LocalSerial && dcs.len() > 1 {
        let names: Vec<&str> = dcs.iter().map(|d| d.as_str()).collect();
        return Err(format!(
            "serial_consistency \"local_serial\" with replication in {} datacenters ({}): each datacenter would \
             run its own Paxos and two nodes could store different messages under one seq; set \
             serial_consistency = \"serial\" (a Paxos quorum across datacenters)",
            dcs.len(),
            names.join(", ")
        ));
    }
    Ok(())
}

/// `host:port` with a port number.
fn check_node(node: &str) -> Result<(), String> {
    match node.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!("node {node:?} is not host:port (for example 127.0.0.1:9042)")),
    }
}

/// An unquoted CQL identifier: a letter, then letters, digits or `_`, at most 48.
fn check_identifier(what: &str, s: &str) -> Result<(), String> {
    let ok = s.len() <= 48
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {s:?} must be a letter followed by letters, digits or _ (at most 48)"))
    }
}

/// A datacenter name: non-empty, no quotes or control characters.
fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().any(|c| c == '\'' || c == '"' || c.is_control()) {
        return Err(format!("{what} {s:?} must be non-empty, without quotes"));
    }
    Ok(())
}
