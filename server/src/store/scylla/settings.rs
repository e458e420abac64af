//! The backend's settings: [`ScyllaSettings`], the driver's view of a
//! `[store.scylla]` section (consistency levels, replication as CQL, timeouts),
//! and the checks of what a server reports about a keyspace. It does not
//! connect or run statements.

use std::collections::HashMap;
use std::time::Duration;

use scylla::statement::{Consistency, SerialConsistency};
use tokio::sync::Semaphore;

use crate::config::{ReplicationConfig, ScyllaConfig};

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
            replication: crate::config::ReplicationConfig {
                class: "SimpleStrategy".into(),
                factor: 1,
                tablets: std::env::var("CHAT_SCYLLA_TABLETS").ok().map(|t| t == "true"),
                ..crate::config::ReplicationConfig::default()
            },
            consistency: "quorum".into(),
            serial_consistency: "serial".into(),
            ..ScyllaConfig::default()
        };
        Some(Self::from_config(&cfg).expect("CHAT_SCYLLA_NODES: host:port[,host:port...]"))
    }

    /// Checks a configuration; the error names the key and what is wrong.
    pub fn from_config(c: &ScyllaConfig) -> Result<Self, String> {
        if c.nodes.is_empty() {
            return Err("nodes is empty: give at least one contact point, host:port".into());
        }
        for node in &c.nodes {
            check_node(node)?;
        }
        check_identifier("keyspace", &c.keyspace)?;
        if let Some(dc) = &c.local_dc {
            check_name("local_dc", dc)?;
        }
        let credentials = match (&c.username, &c.password) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u.clone(), p.clone())),
            (None, None) => None,
            _ => return Err("username and password go together (and the user name is not empty)".into()),
        };
        if c.request_timeout_ms == 0 || c.connect_timeout_ms == 0 {
            return Err("request_timeout_ms and connect_timeout_ms must be at least 1".into());
        }
        if c.driver_threads == 0 || c.max_in_flight == 0 {
            return Err("driver_threads and max_in_flight must be at least 1".into());
        }
        let serial_consistency = parse_serial_consistency(&c.serial_consistency)?;
        check_serial_for_datacenters(serial_consistency, c.replication.datacenters.keys())?;
        Ok(Self {
            nodes: c.nodes.clone(),
            keyspace: c.keyspace.clone(),
            replication: replication_cql(&c.replication)?,
            tablets: c.replication.tablets,
            consistency: parse_consistency(&c.consistency)?,
            serial_consistency,
            local_dc: c.local_dc.clone(),
            credentials,
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

/// A consistency level by its CQL name, any case. `any` and the serial levels are refused.
pub fn parse_consistency(s: &str) -> Result<Consistency, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        _ => {
            return Err(format!(
                "consistency {s:?} is not one of one, two, three, quorum, all, local_quorum, each_quorum, \
                 local_one (any would acknowledge writes no replica holds)"
            ));
        }
    })
}

/// A serial consistency by its CQL name, any case.
pub fn parse_serial_consistency(s: &str) -> Result<SerialConsistency, String> {
    match s.to_ascii_lowercase().as_str() {
        "serial" => Ok(SerialConsistency::Serial),
        "local_serial" => Ok(SerialConsistency::LocalSerial),
        _ => Err(format!("serial_consistency {s:?} is not serial or local_serial")),
    }
}

/// Refuses `local_serial` for a keyspace replicated to several datacenters:
/// each datacenter would run its own Paxos, so two nodes in two datacenters
/// could both store a message at the same seq (the seq fence would not hold).
pub fn check_serial_for_datacenters<'a>(
    serial: SerialConsistency,
    datacenters: impl IntoIterator<Item = &'a String>,
) -> Result<(), String> {
    let dcs: Vec<&String> = datacenters.into_iter().collect();
    if serial == SerialConsistency::LocalSerial && dcs.len() > 1 {
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

/// The replication map as CQL, e.g. `{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}`.
pub fn replication_cql(r: &ReplicationConfig) -> Result<String, String> {
    match r.class.as_str() {
        "SimpleStrategy" | "NetworkTopologyStrategy" => {}
        other => return Err(format!("replication class {other:?} is not SimpleStrategy or NetworkTopologyStrategy")),
    }
    if r.datacenters.is_empty() {
        if r.factor == 0 {
            return Err("replication factor must be at least 1".into());
        }
        return Ok(format!("{{'class': '{}', 'replication_factor': {}}}", r.class, r.factor));
    }
    if r.class != "NetworkTopologyStrategy" {
        return Err("replication datacenters need class NetworkTopologyStrategy".into());
    }
    let mut out = String::from("{'class': 'NetworkTopologyStrategy'");
    for (dc, n) in &r.datacenters {
        check_name("replication datacenter", dc)?;
        if *n == 0 {
            return Err(format!("replication factor of datacenter {dc:?} must be at least 1"));
        }
        out.push_str(&format!(", '{dc}': {n}"));
    }
    out.push('}');
    Ok(out)
}
