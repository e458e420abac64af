//! The backend's settings: [`ScyllaSettings`], the driver's view of a
//! `[store.scylla]` section (consistency levels, replication as CQL, timeouts),
//! and the checks of what a server reports about a keyspace. It does not
//! connect or run statements.

use std::collections::HashMap;
use std::time::Duration;

use scylla::statement::{Consistency, SerialConsistency};
use tokio::sync::Semaphore;

use crate::config::{self, ConsistencyLevel, ReplicationConfig, ScyllaConfig, SerialLevel};

/// The validated form of a [`ScyllaConfig`].
#[derive(Debug, Clone)]
pub struct ScyllaSettings {
    /// Contact points.
    pub nodes: Vec<String>,
    /// Keyspace.
    pub keyspace: String,
    /// The replication map, as CQL (for `CREATE KEYSPACE`).
    pub replication: String,
    /// `AND tablets = {...}` as configured (`None`: `chatd migrate` decides, see `deploy/CLUSTER.md`).
    pub tablets: Option<bool>,
    /// Consistency of reads and writes.
    pub consistency: Consistency,
    /// Consistency of the Paxos phase of lightweight transactions.
    pub serial_consistency: SerialConsistency,
    /// Preferred datacenter.
    pub local_dc: Option<String>,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// Client-side timeout of one statement.
    pub request_timeout: Duration,
    /// Timeout of opening a connection.
    pub connect_timeout: Duration,
    /// Threads of the driver's runtime.
    pub driver_threads: usize,
    /// Calls in flight at most.
    pub max_in_flight: usize,
}

impl ScyllaSettings {
    /// What the test suites run on against a real node: the contact points of
    /// `CHAT_SCYLLA_NODES` (`host:port`, comma-separated; None when unset),
    /// `keyspace` with SimpleStrategy replication factor 1, quorum/serial, and
    /// tablets as `CHAT_SCYLLA_TABLETS` says (default: off where ScyllaDB has them).
    pub fn for_tests(keyspace: &str) -> Option<Self> {
        let nodes = std::env::var("CHAT_SCYLLA_NODES").ok().filter(|n| !n.trim().is_empty())?;
        let cfg = ScyllaConfig {
            nodes: nodes.split(',').map(|n| n.trim().to_string()).collect(),
            keyspace: keyspace.into(),
            replication: ReplicationConfig {
                class: "SimpleStrategy".into(),
                factor: 1,
                tablets: std::env::var("CHAT_SCYLLA_TABLETS").ok().map(|t| t == "true"),
                ..ReplicationConfig::default()
            },
            consistency: "quorum".into(),
            serial_consistency: "serial".into(),
            ..ScyllaConfig::default()
        };
        Some(Self::from_config(&cfg).expect("CHAT_SCYLLA_NODES: host:port[,host:port...]"))
    }

    /// The driver's settings for a section, which is checked first
    /// ([`ScyllaConfig::check`]); the error names the key and what is wrong.
    pub fn from_config(c: &ScyllaConfig) -> Result<Self, String> {
        c.check()?;
        Ok(Self {
            nodes: c.nodes.clone(),
            keyspace: c.keyspace.clone(),
            replication: replication_cql(&c.replication)?,
            tablets: c.replication.tablets,
            consistency: parse_consistency(&c.consistency)?,
            serial_consistency: parse_serial_consistency(&c.serial_consistency)?,
            local_dc: c.local_dc.clone(),
            credentials: c.credentials()?,
            request_timeout: Duration::from_millis(c.request_timeout_ms),
            connect_timeout: Duration::from_millis(c.connect_timeout_ms),
            driver_threads: c.driver_threads,
            max_in_flight: c.max_in_flight.min(Semaphore::MAX_PERMITS),
        })
    }

    /// "nodes/keyspace", for messages.
    pub fn target(&self) -> String {
        format!("scylla {}/{}", self.nodes.join(","), self.keyspace)
    }
}

/// A consistency level by its CQL name, any case. `any` and the serial levels are refused.
pub fn parse_consistency(s: &str) -> Result<Consistency, String> {
    Ok(match ConsistencyLevel::parse(s)? {
        ConsistencyLevel::One => Consistency::One,
        ConsistencyLevel::Two => Consistency::Two,
        ConsistencyLevel::Three => Consistency::Three,
        ConsistencyLevel::Quorum => Consistency::Quorum,
        ConsistencyLevel::All => Consistency::All,
        ConsistencyLevel::LocalQuorum => Consistency::LocalQuorum,
        ConsistencyLevel::EachQuorum => Consistency::EachQuorum,
        ConsistencyLevel::LocalOne => Consistency::LocalOne,
    })
}

/// A serial consistency by its CQL name, any case.
pub fn parse_serial_consistency(s: &str) -> Result<SerialConsistency, String> {
    Ok(match SerialLevel::parse(s)? {
        SerialLevel::Serial => SerialConsistency::Serial,
        SerialLevel::LocalSerial => SerialConsistency::LocalSerial,
    })
}

/// [`config::check_serial_for_datacenters`](crate::config::check_serial_for_datacenters)
/// for the driver's serial consistency: `local_serial` is refused for a
/// keyspace in several datacenters (each would run its own Paxos).
pub fn check_serial_for_datacenters<'a>(
    serial: SerialConsistency,
    datacenters: impl IntoIterator<Item = &'a String>,
) -> Result<(), String> {
    let level = match serial {
        SerialConsistency::Serial => SerialLevel::Serial,
        SerialConsistency::LocalSerial => SerialLevel::LocalSerial,
    };
    config::check_serial_for_datacenters(level, datacenters)
}

/// The datacenters of a keyspace's replication map as the server reports it
/// (`system_schema.keyspaces.replication`): every key but `class` and
/// `replication_factor` for NetworkTopologyStrategy, none otherwise.
pub fn replicated_datacenters(replication: &HashMap<String, String>) -> Vec<String> {
    let nts = replication.get("class").is_some_and(|c| c.ends_with("NetworkTopologyStrategy"));
    if !nts {
        return Vec::new();
    }
    let mut dcs: Vec<String> = replication
        .iter()
        .filter(|(k, v)| k.as_str() != "class" && k.as_str() != "replication_factor" && v.as_str() != "0")
        .map(|(k, _)| k.clone())
        .collect();
    dcs.sort_unstable();
    dcs
}

/// The replication map as CQL, e.g. `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`,
/// once [`ReplicationConfig::check`] has passed.
pub fn replication_cql(r: &ReplicationConfig) -> Result<String, String> {
    r.check()?;
    if r.datacenters.is_empty() {
        return Ok(format!("{{'class': '{}', 'replication_factor': {}}}", r.class, r.factor));
    }
    let mut out = String::from("{'class': 'NetworkTopologyStrategy'");
    for (dc, n) in &r.datacenters {
        out.push_str(&format!(", '{dc}': {n}"));
    }
    out.push('}');
    Ok(out)
}
