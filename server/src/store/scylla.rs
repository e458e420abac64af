//! The ScyllaDB backend (also runs on Apache Cassandra 4+): the same
//! [`MessageStore`] contract as the embedded store, on a cluster that several
//! `chatd` nodes share.
//!
//! **Status: not yet run against a real node.** No ScyllaDB or Cassandra
//! server can be installed where this was written; the statements, conditional
//! batches, serial reads and tablets detection are reasoned, and the pure parts
//! unit-tested. Run the conformance and cluster suites against a real node
//! (`CHAT_SCYLLA_NODES=host:port`, see the README) before relying on it.
//!
//! # What it owns
//!
//! One keyspace (`store.scylla.keyspace`, default `chat`) and its tables. The
//! keyspace and tables are made by `chatd migrate` ([`migrate`]), never by
//! `chatd serve`: a server checks the recorded schema version at start and
//! refuses to run on a missing, older or newer one ([`StoreError::Schema`]).
//!
//! # Schema (version [`SCHEMA_VERSION`])
//!
//! | table | primary key | holds |
//! | --- | --- | --- |
//! | `schema_version` | `(component)` | the version `chatd migrate` recorded |
//! | `meta` | `(name)` | the epoch |
//! | `messages` | `((conversation_id, bucket), seq)` | encoded message, sender, client id, writer tag |
//! | `message_buckets` | `((conversation_id), bucket DESC)` | the buckets a conversation has written |
//! | `idempotency` | `((conversation_id, sender_id, client_msg_id))` | seq |
//! | `conversations` | `(id)` | the conversation record, one column per field |
//! | `members_by_conversation` | `((conversation_id), user_id)` | role, joined, delivered and read watermarks |
//! | `conversations_by_user` | `((user_id), conversation_id)` | the reverse index |
//! | `support_queue` | `((queue), created_at_ms, conversation_id)` | WAITING support conversations, oldest first |
//! | `users` | `(id)` | display name, role |
//!
//! Numbers: CQL has no unsigned integers. Seqs (and the watermarks, which are
//! seqs) are stored as `bigint` with the sign bit flipped ([`seq_to_db`]), so
//! that CQL's signed order is the numeric order of the whole `u64` range (a
//! clustering order and the `IF delivered_seq < ?` comparisons depend on it);
//! in `cqlsh` seq 1 shows as -9223372036854775807. Ids, buckets and times are
//! stored as the same 64 bits (`as i64`): they are only compared for equality,
//! or (support queue times) are far below 2^63.
//!
//! # Buckets: why 4,096 messages per partition
//!
//! A message's partition is `(conversation_id, seq / BUCKET_SIZE)`. A
//! conversation's history is then a sequential read of one partition (two at a
//! bucket edge) instead of a scatter over the cluster, and no partition grows
//! without bound. [`BUCKET_SIZE`] = 4,096: the longest message is 10 KiB of text
//! plus its envelope (~10.3 KiB encoded), so the worst partition is ~42 MiB,
//! below the ~100 MiB where Cassandra and ScyllaDB start to suffer (compaction,
//! repair and the large-partition warnings); a typical line of ~200 bytes
//! gives ~1 MiB. Far smaller buckets would make a 50-message history page
//! cross partitions often and multiply the bucket index; far larger ones
//! would let one busy conversation outgrow the limit. `message_buckets` lists
//! the buckets that hold (or were about to hold) messages, so `last_seq` and
//! `read_range` visit only those, however sparse the seqs.
//!
//! # Appends, fencing and what "writes nothing" means here
//!
//! Uniqueness of `(conversation, seq)` is the fence between nodes that race on
//! one conversation, so messages are written with lightweight transactions:
//! `INSERT ... IF NOT EXISTS`, one conditional batch per `(conversation,
//! bucket)` partition (Cassandra allows conditional batches within one
//! partition only). A batch not applied is [`StoreError::SeqTaken`], naming
//! the first taken seq of the call (found by a `SERIAL` read). A call's messages
//! in one partition are all-or-nothing, and an owner's call never leaves one
//! partition: [`MessageStore::append_run_limit`] is the number of seqs left in
//! the bucket of the next seq, and the owner cuts its batch there (the rest is
//! its next commit), so a `SeqTaken` means that nothing of the call was
//! stored and the owner may sequence it all again. A call that does span
//! several partitions (several conversations, or a bucket edge; owners make
//! none) cannot be atomic in CQL: it is first checked against every partition
//! (a plain read), and only then are the partitions written in the order of
//! the call; a clash found by that check writes nothing, but one that appears
//! between the check and the writes (a racing node) leaves the earlier
//! partitions written and fails the call with `SeqTaken`.
//!
//! A partition is checked and read back by its seq range (`seq >= ? AND seq
//! <= ?`, an owner's seqs being contiguous), never by a `seq IN` list, which
//! ScyllaDB refuses beyond 100 clustering keys.
//!
//! When a conditional write's outcome is unknown (a timeout or a dropped
//! connection after sending), the rows are read back at serial consistency,
//! which settles any Paxos round in flight; each row carries a random `writer`
//! tag of the call, so "ours", "someone else's" and "not written" are told
//! apart.
//!
//! # Idempotency records come first
//!
//! The idempotency records (plain writes, every one run to its end before the
//! first error fails the call) are acknowledged at the configured consistency
//! *before* the messages' transaction: a stored message always has its
//! record, so a retry after a failed or unacknowledged append (a timeout, a
//! crash of the owner) finds it by client id, and so does an owner fenced by
//! another node that stored the same client message. A record may thus point
//! at a seq whose message never got stored (the transaction failed or lost
//! the seq to another node): `find_client_msg` reads the message row at that
//! seq (at serial consistency, which settles a transaction still in flight;
//! only done when a record exists, i.e. for retries) and answers its seq only
//! if that row is the sender's message with that client id (the `sender_id`
//! and `client_msg_id` columns of `messages`); otherwise the message is not
//! stored, and the owner sequences it again, which overwrites the record.
//! One window remains: two owners sequencing the *same* client message at two
//! different seqs at once (the client retried on another node while the first
//! still held it) write two records, the later one wins, and if its seq then
//! loses to a third message the lookup misses the stored copy. Owners overlap
//! for at most a heartbeat, and the client's retries are seconds apart.
//!
//! Then, once the messages are stored, the senders' watermarks (below) are
//! moved, side by side; they only move up and receipts move them too, so a
//! failure there is logged and never fails the append (the message is stored,
//! and an error would make the client send it again).
//!
//! One partition's messages of a call travel as one batch: an owner commits at
//! most 1,024 messages at once, ~10.5 MiB at the 10 KiB text limit, below the
//! 16 MiB mutation limit of a default commitlog (32 MiB segments).
//!
//! An append of one conversation's messages thus costs the idempotency writes,
//! then one transaction, then, per sender who is a member, a read and (unless
//! already there) one watermark transaction.
//!
//! # Keyspace options
//!
//! `chatd migrate` creates the keyspace with `tablets = {'enabled': false}` on
//! a ScyllaDB that has tablets (6.0 and later: it finds the `initial_tablets`
//! column of `system_schema.scylla_keyspaces`) unless
//! `store.scylla.replication.tablets` says otherwise: ScyllaDB 6.0 to 2025.3
//! refuse lightweight transactions in tablets keyspaces, and every append is
//! one. On Cassandra and older ScyllaDB the option is left out (unknown
//! there). An existing keyspace keeps its options; migrate says when it uses
//! tablets.
//!
//! `serial_consistency = "local_serial"` runs each Paxos round among the
//! replicas of one datacenter, so with a keyspace in several datacenters two
//! nodes in two datacenters could both win one seq. It is refused then: by
//! the configuration check when `replication.datacenters` names several, and
//! at open when the keyspace's replication (as the server reports it) does.

//! # Watermarks only move forward
//!
//! `advance_watermarks` reads the member row, then moves a watermark with a
//! lightweight transaction `UPDATE ... SET delivered_seq = ? IF delivered_seq < ?`
//! (both watermarks in one when both move). A watermark that is not applied
//! is re-read at serial consistency and retried while it is still behind, and
//! so is one whose outcome is unknown (moving up is idempotent), so concurrent
//! advances from any number of nodes end at the maximum, and an absent member
//! is never created (a condition on a missing row fails). A plain read that
//! already shows the target skips the transaction: watermarks never go back,
//! so a stale read can only show less.
//!
//! # Transactions and plain writes never share a table
//!
//! Cassandra orders Paxos writes by ballot and plain writes by timestamp, so a
//! plain write to a row that transactions also write may be ordered before or
//! after them by the clocks of the nodes. Hence every write to `messages`,
//! `conversations`, `members_by_conversation` and `meta` is a transaction
//! (`put_member` and `update_conversation` are "update if exists, else insert
//! if not exists", `remove_member` is `DELETE ... IF EXISTS`), and the other
//! tables only get plain writes, stamped with this process's monotonic clock so
//! that one owner's successive writes apply in order. The index tables
//! (`conversations_by_user`, `support_queue`) are written after the row they
//! index; a failure in between leaves them behind until the next write of that
//! row (an error is returned, and the owner's retry repairs it).
//!
//! # Runtime
//!
//! The driver needs a multi-threaded tokio runtime for its connection and
//! metadata tasks, and our shards run current-thread runtimes, so the store
//! owns a small runtime (`store.scylla.driver_threads` threads). Every call is
//! spawned onto it and its result comes back through the task's join handle,
//! so any shard can await the store. At most `store.scylla.max_in_flight`
//! calls run at once; more wait for a slot. Load balancing is the driver's
//! default policy: token-aware and shard-aware (each statement goes to a
//! replica of its partition, on the right ScyllaDB shard), preferring
//! `store.scylla.local_dc` when set. Every statement is prepared once, at open.
//!
//! # Errors
//!
//! Every failing statement comes back as [`StoreError::Backend`] (its `op` the
//! trait method) whose source is a [`CqlError`]: the statement's name (see
//! [`STATEMENTS`]), the consistency it ran at (`LocalQuorum/LocalSerial` for a
//! transaction), the node that answered last (when the driver got that far) and
//! the driver's error, which for a timeout or unavailability says how many
//! replicas answered of how many required. A missing, older or newer schema is
//! [`StoreError::Schema`]; an unreachable cluster is [`StoreError::Open`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chat_protocol::v1::SupportState;
use futures_util::TryStreamExt;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::observability::history::{AttemptId, HistoryListener, RequestId, SpeculativeId};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::bound::BoundStatement;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};
use tokio::sync::Semaphore;

use super::{
    ConversationRecord, Created, Direction, MemberRecord, MessageStore, NewMessage, Range, StoreError, StoreResult,
    UserRecord,
};
use crate::config::{ReplicationConfig, ScyllaConfig};

/// The schema version this binary writes and runs on.
pub const SCHEMA_VERSION: i32 = 1;

/// Messages per `(conversation_id, bucket)` partition (see the module docs).
pub const BUCKET_SIZE: u64 = 4096;

/// Rows fetched per page by every multi-row read.
const PAGE_SIZE: i32 = 1000;

/// The `schema_version` row of this store.
const COMPONENT: &str = "chat";

/// The `support_queue` partition of waiting conversations.
const WAITING: &str = "waiting";

/// `(conversation, bucket)` pairs this process has listed, remembered at most.
const MAX_LISTED: usize = 1 << 20;

/// Concurrent single-row reads of one call (`get_users`, idempotency writes).
const FAN_OUT: usize = 32;

/// Rounds (read, transaction) of a watermark advance before it gives up.
const WATERMARK_ROUNDS: usize = 8;

/// Rounds of the best-effort sender watermark advance of an append: enough
/// for a row nobody else moves, and short under contention with receipt
/// flushes on the same Paxos partition (receipts move it up anyway).
const APPEND_WATERMARK_ROUNDS: usize = 3;

/// Members written per conditional batch when a conversation is created.
const MEMBER_BATCH: usize = 64;

// ---------------------------------------------------------------- numbers

/// A seq as stored: the sign bit flipped, so CQL's signed order is `u64` order.
pub fn seq_to_db(seq: u64) -> i64 {
    (seq ^ (1 << 63)) as i64
}

/// The seq a stored `bigint` stands for (inverse of [`seq_to_db`]).
pub fn seq_from_db(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// An id or time as stored: the same 64 bits.
fn id_to_db(id: u64) -> i64 {
    id as i64
}

/// The id or time a stored `bigint` stands for.
fn id_from_db(v: i64) -> u64 {
    v as u64
}

/// The bucket (partition) of a seq.
pub fn bucket_of(seq: u64) -> u64 {
    seq / BUCKET_SIZE
}

/// The seqs from `next_seq` to the end of its bucket (at least 1): the most
/// messages one append of a conversation may carry and stay in one partition.
pub fn run_limit(next_seq: u64) -> usize {
    usize::try_from(BUCKET_SIZE - next_seq % BUCKET_SIZE).unwrap_or(usize::MAX)
}

/// The inclusive seq bounds a read covers, `None` when it covers nothing.
pub fn seq_bounds(range: &Range) -> Option<(u64, u64)> {
    if range.limit == 0 {
        return None;
    }
    let lo = range.after.checked_add(1)?;
    let hi = range.before.checked_sub(1)?;
    (lo <= hi).then_some((lo, hi))
}

/// The inclusive seq bounds of `bucket` clipped to `lo..=hi`.
pub fn bucket_bounds(bucket: u64, lo: u64, hi: u64) -> (u64, u64) {
    let first = bucket.saturating_mul(BUCKET_SIZE);
    let last = first.saturating_add(BUCKET_SIZE - 1);
    (lo.max(first), hi.min(last))
}

/// A call's messages grouped by partition, partitions in order of first
/// appearance, messages in call order.
pub fn partitions(msgs: &[NewMessage]) -> Vec<((u64, u64), Vec<&NewMessage>)> {
    let mut out: Vec<((u64, u64), Vec<&NewMessage>)> = Vec::new();
    let mut index = HashMap::new();
    for m in msgs {
        let key = (m.conversation_id, bucket_of(m.seq));
        let i = *index.entry(key).or_insert_with(|| {
            out.push((key, Vec::new()));
            out.len() - 1
        });
        out[i].1.push(m);
    }
    out
}

/// The lowest and highest seq of some messages, `None` for none.
pub fn seq_span(msgs: &[&NewMessage]) -> Option<(u64, u64)> {
    let lo = msgs.iter().map(|m| m.seq).min()?;
    let hi = msgs.iter().map(|m| m.seq).max()?;
    Some((lo, hi))
}

/// The highest seq of each `(conversation, sender)` among some messages.
fn sender_marks<'a>(msgs: &[&'a NewMessage]) -> Vec<((u64, &'a str), u64)> {
    let mut marks: HashMap<(u64, &str), u64> = HashMap::new();
    for m in msgs {
        let seq = marks.entry((m.conversation_id, m.sender_id.as_str())).or_insert(0);
        *seq = (*seq).max(m.seq);
    }
    let mut marks: Vec<_> = marks.into_iter().collect();
    marks.sort_unstable();
    marks
}

/// Whether a stored message's `(sender_id, client_msg_id)` columns are these.
fn holds_client_msg(stored: Option<(Option<String>, Option<String>)>, sender: &str, client_msg_id: &str) -> bool {
    matches!(stored, Some((Some(s), Some(c))) if s == sender && c == client_msg_id)
}

/// The first `(conversation, seq)` that occurs twice in a call.
fn first_duplicate(msgs: &[NewMessage]) -> Option<(u64, u64)> {
    let mut seen = HashSet::with_capacity(msgs.len());
    msgs.iter().map(|m| (m.conversation_id, m.seq)).find(|&key| !seen.insert(key))
}

// ---------------------------------------------------------------- settings

/// The validated form of a [`ScyllaConfig`].
#[derive(Debug, Clone)]
pub struct ScyllaSettings {
    /// Contact points.
    pub nodes: Vec<String>,
    /// Keyspace.
    pub keyspace: String,
    /// The replication map, as CQL (for `CREATE KEYSPACE`).
    pub replication: String,
    /// `AND tablets = {...}` as configured (`None`: `chatd migrate` decides, see the module docs).
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

// ---------------------------------------------------------------- schema

/// `CREATE KEYSPACE IF NOT EXISTS` with the configured replication.
pub fn keyspace_ddl(s: &ScyllaSettings) -> String {
    let tablets = s.tablets.map(|on| format!(" AND tablets = {{'enabled': {on}}}")).unwrap_or_default();
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {} AND durable_writes = true{tablets}",
        s.keyspace, s.replication
    )
}

/// The tables of schema version 1: `(table, CREATE TABLE IF NOT EXISTS ...)`.
pub fn schema_ddl(ks: &str) -> Vec<(&'static str, String)> {
    let tables: [(&str, &str); 10] = [
        ("schema_version", "(component text PRIMARY KEY, version int, migrated_at_ms bigint, migrated_by text)"),
        ("meta", "(name text PRIMARY KEY, value text)"),
        (
            "messages",
            "(conversation_id bigint, bucket bigint, seq bigint, body blob, sender_id text, client_msg_id text, \
             writer bigint, PRIMARY KEY ((conversation_id, bucket), seq)) WITH CLUSTERING ORDER BY (seq ASC)",
        ),
        (
            "message_buckets",
            "(conversation_id bigint, bucket bigint, PRIMARY KEY ((conversation_id), bucket)) \
             WITH CLUSTERING ORDER BY (bucket DESC)",
        ),
        (
            "idempotency",
            "(conversation_id bigint, sender_id text, client_msg_id text, seq bigint, \
             PRIMARY KEY ((conversation_id, sender_id, client_msg_id)))",
        ),
        (
            "conversations",
            "(id bigint PRIMARY KEY, kind int, title text, case_id text, created_by text, created_at_ms bigint, \
             archived_at_ms bigint, support_state int, e2e boolean, retention_days int, legal_hold boolean)",
        ),
        (
            "members_by_conversation",
            "(conversation_id bigint, user_id text, role int, joined_at_ms bigint, delivered_seq bigint, \
             read_seq bigint, PRIMARY KEY ((conversation_id), user_id))",
        ),
        ("conversations_by_user", "(user_id text, conversation_id bigint, PRIMARY KEY ((user_id), conversation_id))"),
        (
            "support_queue",
            "(queue text, created_at_ms bigint, conversation_id bigint, \
             PRIMARY KEY ((queue), created_at_ms, conversation_id))",
        ),
        ("users", "(id text PRIMARY KEY, display_name text, role int)"),
    ];
    tables.iter().map(|(t, cols)| (*t, format!("CREATE TABLE IF NOT EXISTS {ks}.{t} {cols}"))).collect()
}

/// Whether a recorded schema version lets this binary run; the error says what to do.
pub fn check_schema_version(keyspace: &str, recorded: Option<i32>) -> StoreResult<()> {
    let schema = |detail: String| Err(StoreError::Schema { keyspace: keyspace.to_owned(), detail });
    match recorded {
        None => schema("no schema version is recorded; run `chatd migrate`".into()),
        Some(v) if v < SCHEMA_VERSION => {
            schema(format!("schema version {v} is older than this binary's {SCHEMA_VERSION}; run `chatd migrate`"))
        }
        Some(v) if v > SCHEMA_VERSION => schema(format!(
            "schema version {v} is newer than this binary's {SCHEMA_VERSION}; run a chatd that knows it"
        )),
        Some(_) => Ok(()),
    }
}

// ---------------------------------------------------------------- errors

/// A statement that failed: which, at what consistency, on which node, why.
#[derive(Debug, thiserror::Error)]
#[error("statement {statement} at consistency {consistency}{}: {source}", node_suffix(.node))]
pub struct CqlError {
    /// The statement's name (see [`STATEMENTS`]).
    pub statement: &'static str,
    /// The consistency it ran at (and the serial consistency of a transaction).
    pub consistency: String,
    /// The node that answered (or failed to) last, when known.
    pub node: Option<SocketAddr>,
    /// The driver's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

fn node_suffix(node: &Option<SocketAddr>) -> String {
    node.map(|n| format!(" on node {n}")).unwrap_or_else(|| " (no node reached)".into())
}

/// An outcome the driver cannot tell (the store reads back to settle it).
#[derive(Debug, thiserror::Error)]
#[error("{0}; the outcome could not be settled: {1}")]
struct Unsettled(StoreError, StoreError);

/// Records the node of the latest attempt of one request.
#[derive(Debug, Default)]
struct LastNode(Mutex<Option<SocketAddr>>);

impl LastNode {
    fn get(&self) -> Option<SocketAddr> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HistoryListener for LastNode {
    fn log_request_start(&self) -> RequestId {
        RequestId(0)
    }
    fn log_request_success(&self, _: RequestId) {}
    fn log_request_error(&self, _: RequestId, _: &scylla::errors::RequestError) {}
    fn log_new_speculative_fiber(&self, _: RequestId) -> SpeculativeId {
        SpeculativeId(0)
    }
    fn log_attempt_start(&self, _: RequestId, _: Option<SpeculativeId>, node: SocketAddr) -> AttemptId {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(node);
        AttemptId(0)
    }
    fn log_attempt_success(&self, _: AttemptId) {}
    fn log_attempt_error(
        &self,
        _: AttemptId,
        _: &scylla::errors::RequestAttemptError,
        _: &scylla::policies::retry::RetryDecision,
    ) {
    }
}

// ---------------------------------------------------------------- statements

/// A prepared statement and its name.
struct Stmt {
    name: &'static str,
    ps: PreparedStatement,
    /// A lightweight transaction (`IF ...`), known from our own CQL: the
    /// server's LWT flag is a ScyllaDB extension that Cassandra does not send.
    lwt: bool,
}

macro_rules! statements {
    ($($name:ident: $cql:literal,)+) => {
        /// Every prepared statement, prepared once at open.
        struct Statements {
            $($name: Stmt,)+
        }

        /// Every statement's name and CQL (`{ks}` stands for the keyspace).
        pub const STATEMENTS: &[(&str, &str)] = &[$((stringify!($name), $cql),)+];

        impl Statements {
            async fn prepare(session: &Session, s: &ScyllaSettings) -> StoreResult<Self> {
                Ok(Self { $($name: prepare(session, s, stringify!($name), $cql).await?,)+ })
            }
        }
    };
}

statements! {
    insert_message: "INSERT INTO {ks}.messages (conversation_id, bucket, seq, body, sender_id, client_msg_id, writer) \
        VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    select_seqs_between: "SELECT seq, writer FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? \
        AND seq >= ? AND seq <= ?",
    select_message_sender: "SELECT sender_id, client_msg_id FROM {ks}.messages WHERE conversation_id = ? \
        AND bucket = ? AND seq = ?",
    insert_bucket: "INSERT INTO {ks}.message_buckets (conversation_id, bucket) VALUES (?, ?)",
    select_buckets_desc: "SELECT bucket FROM {ks}.message_buckets WHERE conversation_id = ? ORDER BY bucket DESC",
    select_buckets_between_asc: "SELECT bucket FROM {ks}.message_buckets WHERE conversation_id = ? \
        AND bucket >= ? AND bucket <= ? ORDER BY bucket ASC",
    select_buckets_between_desc: "SELECT bucket FROM {ks}.message_buckets WHERE conversation_id = ? \
        AND bucket >= ? AND bucket <= ? ORDER BY bucket DESC",
    select_last_seq: "SELECT seq FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? \
        ORDER BY seq DESC LIMIT 1",
    select_messages_asc: "SELECT seq, body FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? \
        AND seq >= ? AND seq <= ? ORDER BY seq ASC LIMIT ?",
    select_messages_desc: "SELECT seq, body FROM {ks}.messages WHERE conversation_id = ? AND bucket = ? \
        AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT ?",
    insert_idempotency: "INSERT INTO {ks}.idempotency (conversation_id, sender_id, client_msg_id, seq) \
        VALUES (?, ?, ?, ?)",
    select_idempotency: "SELECT seq FROM {ks}.idempotency WHERE conversation_id = ? AND sender_id = ? \
        AND client_msg_id = ?",
    insert_conversation_if_absent: "INSERT INTO {ks}.conversations (id, kind, title, case_id, created_by, \
        created_at_ms, archived_at_ms, support_state, e2e, retention_days, legal_hold) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    update_conversation_if_exists: "UPDATE {ks}.conversations SET kind = ?, title = ?, case_id = ?, \
        created_by = ?, created_at_ms = ?, archived_at_ms = ?, support_state = ?, e2e = ?, retention_days = ?, \
        legal_hold = ? WHERE id = ? IF EXISTS",
    select_conversation: "SELECT id, kind, title, case_id, created_by, created_at_ms, archived_at_ms, \
        support_state, e2e, retention_days, legal_hold FROM {ks}.conversations WHERE id = ?",
    insert_member_if_absent: "INSERT INTO {ks}.members_by_conversation (conversation_id, user_id, role, \
        joined_at_ms, delivered_seq, read_seq) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    update_member_if_exists: "UPDATE {ks}.members_by_conversation SET role = ?, joined_at_ms = ?, \
        delivered_seq = ?, read_seq = ? WHERE conversation_id = ? AND user_id = ? IF EXISTS",
    insert_user_conversation: "INSERT INTO {ks}.conversations_by_user (user_id, conversation_id) VALUES (?, ?)",
    delete_member_if_exists: "DELETE FROM {ks}.members_by_conversation WHERE conversation_id = ? AND user_id = ? \
        IF EXISTS",
    delete_user_conversation: "DELETE FROM {ks}.conversations_by_user WHERE user_id = ? AND conversation_id = ?",
    select_members: "SELECT user_id, role, joined_at_ms, delivered_seq, read_seq \
        FROM {ks}.members_by_conversation WHERE conversation_id = ?",
    select_member: "SELECT user_id, role, joined_at_ms, delivered_seq, read_seq \
        FROM {ks}.members_by_conversation WHERE conversation_id = ? AND user_id = ?",
    select_user_conversations: "SELECT conversation_id FROM {ks}.conversations_by_user WHERE user_id = ?",
    select_watermarks: "SELECT delivered_seq, read_seq FROM {ks}.members_by_conversation \
        WHERE conversation_id = ? AND user_id = ?",
    advance_both: "UPDATE {ks}.members_by_conversation SET delivered_seq = ?, read_seq = ? \
        WHERE conversation_id = ? AND user_id = ? IF delivered_seq < ? AND read_seq < ?",
    advance_delivered: "UPDATE {ks}.members_by_conversation SET delivered_seq = ? \
        WHERE conversation_id = ? AND user_id = ? IF delivered_seq < ?",
    advance_read: "UPDATE {ks}.members_by_conversation SET read_seq = ? \
        WHERE conversation_id = ? AND user_id = ? IF read_seq < ?",
    insert_queue: "INSERT INTO {ks}.support_queue (queue, created_at_ms, conversation_id) VALUES (?, ?, ?)",
    delete_queue: "DELETE FROM {ks}.support_queue WHERE queue = ? AND created_at_ms = ? AND conversation_id = ?",
    select_queue: "SELECT conversation_id FROM {ks}.support_queue WHERE queue = ?",
    upsert_user: "INSERT INTO {ks}.users (id, display_name, role) VALUES (?, ?, ?)",
    select_user: "SELECT id, display_name, role FROM {ks}.users WHERE id = ?",
    select_meta: "SELECT value FROM {ks}.meta WHERE name = ?",
    insert_meta_if_absent: "INSERT INTO {ks}.meta (name, value) VALUES (?, ?) IF NOT EXISTS",
}

/// Whether a statement of ours is a lightweight transaction.
fn is_transaction(cql: &str) -> bool {
    cql.contains(" IF ")
}

async fn prepare(session: &Session, s: &ScyllaSettings, name: &'static str, cql: &str) -> StoreResult<Stmt> {
    let cql = cql.replace("{ks}", &s.keyspace);
    let lwt = is_transaction(&cql);
    let mut ps = session.prepare(cql).await.map_err(|e| StoreError::Schema {
        keyspace: s.keyspace.clone(),
        detail: format!("cannot prepare statement {name} (is the schema there? run `chatd migrate`): {e}"),
    })?;
    ps.set_page_size(PAGE_SIZE);
    // Reads and plain upserts may be retried and sped up; a transaction may not
    // (a retried IF NOT EXISTS of our own write would come back "not applied").
    ps.set_is_idempotent(!lwt);
    Ok(Stmt { name, ps, lwt })
}

// ---------------------------------------------------------------- rows

/// `conversations` columns, in statement order.
type ConvRow = (i64, i32, String, String, String, i64, i64, i32, bool, i32, bool);
/// `members_by_conversation` columns, in statement order.
type MemberRow = (String, i32, i64, i64, i64);

fn conv_values(c: &ConversationRecord) -> ConvRow {
    (
        id_to_db(c.id),
        c.kind,
        c.title.clone(),
        c.case_id.clone(),
        c.created_by.clone(),
        id_to_db(c.created_at_ms),
        id_to_db(c.archived_at_ms),
        c.support_state,
        c.e2e,
        c.retention_days as i32,
        c.legal_hold,
    )
}

fn conv_from_row(r: ConvRow) -> ConversationRecord {
    ConversationRecord {
        id: id_from_db(r.0),
        kind: r.1,
        title: r.2,
        case_id: r.3,
        created_by: r.4,
        created_at_ms: id_from_db(r.5),
        archived_at_ms: id_from_db(r.6),
        support_state: r.7,
        e2e: r.8,
        retention_days: r.9 as u32,
        legal_hold: r.10,
    }
}

fn member_from_row(conversation_id: u64, r: MemberRow) -> MemberRecord {
    MemberRecord {
        conversation_id,
        user_id: r.0,
        role: r.1,
        joined_at_ms: id_from_db(r.2),
        delivered_seq: seq_from_db(r.3),
        read_seq: seq_from_db(r.4),
    }
}

fn member_values(m: &MemberRecord) -> Vec<CqlValue> {
    vec![
        CqlValue::BigInt(id_to_db(m.conversation_id)),
        CqlValue::Text(m.user_id.clone()),
        CqlValue::Int(m.role),
        CqlValue::BigInt(id_to_db(m.joined_at_ms)),
        CqlValue::BigInt(seq_to_db(m.delivered_seq)),
        CqlValue::BigInt(seq_to_db(m.read_seq)),
    ]
}

fn user_conv_values(user: &str, conv: u64) -> Vec<CqlValue> {
    vec![CqlValue::Text(user.to_owned()), CqlValue::BigInt(id_to_db(conv))]
}

fn queue_values(c: &ConversationRecord) -> Vec<CqlValue> {
    vec![CqlValue::Text(WAITING.into()), CqlValue::BigInt(id_to_db(c.created_at_ms)), CqlValue::BigInt(id_to_db(c.id))]
}

fn is_waiting(c: &ConversationRecord) -> bool {
    c.support_state == SupportState::Waiting as i32
}

/// The `[applied]` column of a lightweight transaction's result.
fn applied(result: QueryResult) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let rows = result.into_rows_result()?;
    let (i, _) = rows.column_specs().get_by_name("[applied]").ok_or("no [applied] column in the result")?;
    let first = rows.rows::<Row>()?.next().ok_or("empty result")??;
    match first.columns.get(i) {
        Some(Some(CqlValue::Boolean(b))) => Ok(*b),
        other => Err(format!("[applied] is {other:?}").into()),
    }
}

// ---------------------------------------------------------------- the store

/// The connection, the statements and the settings; shared by the calls.
struct Inner {
    session: Session,
    st: Statements,
    settings: ScyllaSettings,
    /// `(conversation, bucket)` pairs known to be in `message_buckets` (a cache:
    /// a listing is never removed, so a remembered one is always there).
    listed: Mutex<HashSet<(u64, u64)>>,
}

/// The ScyllaDB [`MessageStore`]: see the module docs.
pub struct ScyllaStore {
    inner: Arc<Inner>,
    epoch: String,
    handle: tokio::runtime::Handle,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    slots: Arc<Semaphore>,
    closed: AtomicBool,
}

fn driver_runtime(s: &ScyllaSettings) -> StoreResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.driver_threads)
        .thread_name("scylla-driver")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Open { path: s.target(), source: Box::new(e) })
}

async fn connect(s: &ScyllaSettings) -> StoreResult<Session> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &s.local_dc {
        policy = policy.prefer_datacenter(dc.clone());
    }
    let profile = ExecutionProfile::builder()
        .consistency(s.consistency)
        .serial_consistency(Some(s.serial_consistency))
        .request_timeout(Some(s.request_timeout))
        .load_balancing_policy(policy.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&s.nodes)
        // Plain writes carry this process's monotonic clock, so one owner's
        // successive writes to a row apply in order whichever node coordinates.
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
        .connection_timeout(s.connect_timeout)
        .default_execution_profile_handle(profile.into_handle());
    if let Some((user, password)) = &s.credentials {
        builder = builder.user(user, password);
    }
    builder.build().await.map_err(|e| StoreError::Open { path: s.target(), source: Box::new(e) })
}

/// Creates the keyspace and tables (idempotently) and records the schema
/// version and the epoch; returns what it did, one line each. Blocking: call
/// it outside an async context.
pub fn migrate(cfg: &ScyllaConfig) -> StoreResult<Vec<String>> {
    let s = ScyllaSettings::from_config(cfg)
        .map_err(|e| StoreError::Open { path: "scylla".into(), source: format!("store.scylla: {e}").into() })?;
    let rt = driver_runtime(&s)?;
    let out = block_on(&rt, migrate_with(&s));
    rt.shutdown_background();
    out
}

/// Runs `fut` to completion on `rt`, from a plain thread or (on a helper
/// thread, since a runtime cannot block inside another) from async code.
fn block_on<T: Send>(rt: &tokio::runtime::Runtime, fut: impl Future<Output = T> + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return rt.block_on(fut);
    }
    std::thread::scope(|scope| match scope.spawn(|| rt.block_on(fut)).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The schema version recorded in the keyspace (None: none recorded).
async fn recorded_version(session: &Session, s: &ScyllaSettings) -> StoreResult<Option<i32>> {
    let select = format!("SELECT version FROM {}.schema_version WHERE component = ?", s.keyspace);
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
        op: "schema_version",
        source: Box::new(CqlError {
            statement: "select_schema_version",
            consistency: s.consistency.to_string(),
            node: None,
            source: e,
        }),
    };
    let result = session.query_unpaged(select, (COMPONENT,)).await.map_err(|e| fail(e.into()))?;
    let row = result
        .into_rows_result()
        .map_err(|e| fail(e.into()))?
        .maybe_first_row::<(Option<i32>,)>()
        .map_err(|e| StoreError::Corrupt { table: "schema_version", detail: e.to_string() })?;
    Ok(row.and_then(|(v,)| v))
}

/// The `tablets` option `chatd migrate` gives `CREATE KEYSPACE`: the
/// configured one, else `false` on a server that has tablets (ScyllaDB 6.0+),
/// else none (Cassandra, older ScyllaDB: the option is unknown there).
pub fn effective_tablets(configured: Option<bool>, server_knows_tablets: bool) -> Option<bool> {
    configured.or(server_knows_tablets.then_some(false))
}

/// Whether an error is the server's "no such table or column" (`Invalid`).
fn is_invalid_request(e: &scylla::errors::ExecutionError) -> bool {
    use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
    matches!(e, ExecutionError::LastAttemptError(RequestAttemptError::DbError(DbError::Invalid, _)))
}

/// Whether the server has tablets: ScyllaDB's `system_schema.scylla_keyspaces`
/// with its `initial_tablets` column (what the driver itself looks at).
async fn server_knows_tablets(session: &Session) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    match session.query_unpaged("SELECT keyspace_name, initial_tablets FROM system_schema.scylla_keyspaces", ()).await {
        Ok(_) => Ok(true),
        Err(e) if is_invalid_request(&e) => Ok(false),
        Err(e) => Err(Box::new(e)),
    }
}

/// Whether a keyspace is tablets-based (`initial_tablets` is set); only asked
/// of a server that has tablets.
async fn keyspace_uses_tablets(session: &Session, ks: &str) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let r = session
        .query_unpaged("SELECT initial_tablets FROM system_schema.scylla_keyspaces WHERE keyspace_name = ?", (ks,))
        .await?;
    let row = r.into_rows_result()?.maybe_first_row::<(Option<i32>,)>()?;
    Ok(matches!(row, Some((Some(_),))))
}

/// [`migrate`] from within a runtime (the driver runs on the caller's).
pub async fn migrate_with(s: &ScyllaSettings) -> StoreResult<Vec<String>> {
    let session = connect(s).await?;
    let mut report = Vec::new();
    let ddl = |name: &'static str| {
        let consistency = s.consistency.to_string();
        move |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
            op: "migrate",
            source: Box::new(CqlError { statement: name, consistency, node: None, source: e }),
        }
    };
    // Tablets: unless configured, off on a ScyllaDB that has them (its tablets
    // keyspaces refuse lightweight transactions up to 2025.3), unsaid elsewhere.
    let knows_tablets = server_knows_tablets(&session).await.map_err(ddl("detect_tablets"))?;
    let with = ScyllaSettings { tablets: effective_tablets(s.tablets, knows_tablets), ..s.clone() };
    session.query_unpaged(keyspace_ddl(&with), ()).await.map_err(|e| ddl("create_keyspace")(e.into()))?;
    let tablets = match with.tablets {
        Some(on) => format!(" and tablets = {{'enabled': {on}}}"),
        None => String::new(),
    };
    report.push(format!(
        "keyspace {}: present (created with replication {}{tablets} if it was missing; an existing keyspace keeps \
         its own, change it with ALTER KEYSPACE)",
        s.keyspace, s.replication
    ));
    if knows_tablets && keyspace_uses_tablets(&session, &s.keyspace).await.map_err(ddl("detect_tablets"))? {
        report.push(format!(
            "keyspace {}: uses tablets; ScyllaDB 6.0 to 2025.3 refuse lightweight transactions there, which this \
             store needs for every append (make the keyspace again with tablets = {{'enabled': false}})",
            s.keyspace
        ));
    }
    let tables = schema_ddl(&s.keyspace);
    let (version_table, rest) = tables.split_first().expect("schema has tables");
    session.query_unpaged(version_table.1.clone(), ()).await.map_err(|e| ddl("create_table")(e.into()))?;
    let recorded = recorded_version(&session, s).await?;
    if let Some(v) = recorded
        && v > SCHEMA_VERSION
    {
        return check_schema_version(&s.keyspace, Some(v)).map(|_| report);
    }
    for (table, create) in rest {
        session.query_unpaged(create.clone(), ()).await.map_err(|e| ddl("create_table")(e.into()))?;
        report.push(format!("table {}.{table}: present", s.keyspace));
    }
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let by = format!("chatd {}", env!("CARGO_PKG_VERSION"));
    let insert = format!(
        "INSERT INTO {}.schema_version (component, version, migrated_at_ms, migrated_by) VALUES (?, ?, ?, ?)",
        s.keyspace
    );
    session
        .query_unpaged(insert, (COMPONENT, SCHEMA_VERSION, id_to_db(now_ms), by))
        .await
        .map_err(|e| ddl("insert_schema_version")(e.into()))?;
    match recorded {
        Some(v) if v == SCHEMA_VERSION => report.push(format!("schema version {v}: up to date")),
        Some(v) => report.push(format!("schema version {v} -> {SCHEMA_VERSION}")),
        None => report.push(format!("schema version {SCHEMA_VERSION} recorded (new schema)")),
    }
    let st = Statements::prepare(&session, s).await?;
    let inner = Inner { session, st, settings: s.clone(), listed: Mutex::new(HashSet::new()) };
    let epoch = inner.epoch().await?;
    report.push(format!("epoch: {epoch}"));
    Ok(report)
}

impl ScyllaStore {
    /// Connects, checks the schema version, prepares every statement and reads
    /// the epoch. Blocking: call it outside an async context (as `chatd serve`
    /// does); async callers use [`ScyllaStore::connect`].
    pub fn open(s: &ScyllaSettings) -> StoreResult<Self> {
        let rt = driver_runtime(s)?;
        let inner = block_on(&rt, Inner::open(s.clone()));
        Self::assemble(rt, inner)
    }

    /// [`ScyllaStore::open`] from any async context.
    pub async fn connect(s: &ScyllaSettings) -> StoreResult<Self> {
        let rt = driver_runtime(s)?;
        let inner = match rt.spawn(Inner::open(s.clone())).await {
            Ok(inner) => inner,
            Err(e) => Err(StoreError::Open { path: s.target(), source: Box::new(e) }),
        };
        Self::assemble(rt, inner)
    }

    fn assemble(rt: tokio::runtime::Runtime, inner: StoreResult<(Inner, String)>) -> StoreResult<Self> {
        let (inner, epoch) = match inner {
            Ok(v) => v,
            Err(e) => {
                rt.shutdown_background();
                return Err(e);
            }
        };
        Ok(Self {
            slots: Arc::new(Semaphore::new(inner.settings.max_in_flight)),
            inner: Arc::new(inner),
            epoch,
            handle: rt.handle().clone(),
            runtime: Mutex::new(Some(rt)),
            closed: AtomicBool::new(false),
        })
    }

    /// The keyspace in use.
    pub fn keyspace(&self) -> &str {
        &self.inner.settings.keyspace
    }

    /// Stops taking writes and waits (up to the request timeout and a second)
    /// for the calls in flight. Reads keep working until the store is dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let all = self.inner.settings.max_in_flight;
        let deadline = std::time::Instant::now() + self.inner.settings.request_timeout + Duration::from_secs(1);
        while self.slots.available_permits() < all && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs `f` on the driver's runtime and brings its result back.
    async fn call<T, Fut>(&self, op: &'static str, write: bool, f: impl FnOnce(Arc<Inner>) -> Fut) -> StoreResult<T>
    where
        T: Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        if write && self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let slot = self.slots.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let fut = f(self.inner.clone());
        let task = self.handle.spawn(async move {
            let out = fut.await;
            drop(slot);
            out
        });
        match task.await {
            Ok(out) => out,
            Err(e) if e.is_cancelled() => Err(StoreError::Closed),
            Err(e) => Err(StoreError::Backend { op, source: Box::new(e) }),
        }
    }
}

impl Drop for ScyllaStore {
    fn drop(&mut self) {
        let rt = self.runtime.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rt) = rt {
            // Not a blocking shutdown: the store may be dropped in async code.
            rt.shutdown_background();
        }
    }
}

impl Inner {
    async fn open(s: ScyllaSettings) -> StoreResult<(Inner, String)> {
        let session = connect(&s).await?;
        // A missing keyspace is a schema problem, not a failed statement.
        let ks = session
            .query_unpaged(
                "SELECT keyspace_name, replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
                (&s.keyspace,),
            )
            .await
            .map_err(|e| StoreError::Open { path: s.target(), source: Box::new(e) })?;
        let rows = ks.into_rows_result().ok();
        let Some(rows) = rows.filter(|r| r.rows_num() > 0) else {
            return Err(StoreError::Schema {
                keyspace: s.keyspace.clone(),
                detail: "the keyspace does not exist; run `chatd migrate`".into(),
            });
        };
        // The configuration may not name the datacenters (a replication_factor
        // on a multi-datacenter cluster): check what the keyspace really has.
        let replication = rows
            .maybe_first_row::<(String, Option<HashMap<String, String>>)>()
            .map_err(|e| StoreError::Corrupt { table: "system_schema.keyspaces", detail: e.to_string() })?
            .and_then(|(_, r)| r)
            .unwrap_or_default();
        let dcs = replicated_datacenters(&replication);
        check_serial_for_datacenters(s.serial_consistency, &dcs).map_err(|detail| StoreError::Schema {
            keyspace: s.keyspace.clone(),
            detail: format!("store.scylla.{detail}"),
        })?;
        let has_table = session
            .query_unpaged(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
                (&s.keyspace, "schema_version"),
            )
            .await
            .map_err(|e| StoreError::Open { path: s.target(), source: Box::new(e) })?
            .into_rows_result()
            .map(|r| r.rows_num() > 0)
            .unwrap_or(false);
        let recorded = if has_table { recorded_version(&session, &s).await? } else { None };
        check_schema_version(&s.keyspace, recorded)?;
        let st = Statements::prepare(&session, &s).await?;
        let inner = Inner { session, st, settings: s, listed: Mutex::new(HashSet::new()) };
        let epoch = inner.epoch().await?;
        Ok((inner, epoch))
    }

    /// The epoch, made (once, by whoever comes first) if missing.
    async fn epoch(&self) -> StoreResult<String> {
        let read = |c| self.one::<(Option<String>,)>("open", &self.st.select_meta, ("epoch",), c);
        if let Some((Some(epoch),)) = read(None).await? {
            return Ok(epoch);
        }
        let fresh = format!("{:032x}", rand::random::<u128>());
        let r = self.exec("open", &self.st.insert_meta_if_absent, ("epoch", &fresh), None).await?;
        if self.applied("open", &self.st.insert_meta_if_absent, r)? {
            return Ok(fresh);
        }
        match read(Some(self.serial())).await? {
            Some((Some(epoch),)) if !epoch.is_empty() => Ok(epoch),
            _ => Err(StoreError::Corrupt { table: "meta", detail: "the epoch is empty".into() }),
        }
    }

    /// The serial consistency, as a read consistency.
    fn serial(&self) -> Consistency {
        match self.settings.serial_consistency {
            SerialConsistency::Serial => Consistency::Serial,
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
        }
    }

    fn consistency_of(&self, stmt: &Stmt, consistency: Option<Consistency>) -> String {
        let c = consistency.unwrap_or(self.settings.consistency);
        if stmt.lwt { format!("{c}/{}", self.settings.serial_consistency) } else { c.to_string() }
    }

    fn error(
        &self,
        op: &'static str,
        statement: &'static str,
        consistency: String,
        node: Option<SocketAddr>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Backend { op, source: Box::new(CqlError { statement, consistency, node, source: source.into() }) }
    }

    /// Executes one statement, unpaged (writes, single-row reads).
    async fn exec(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
        consistency: Option<Consistency>,
    ) -> StoreResult<QueryResult> {
        let (bound, node) = self.bind(op, stmt, values, consistency)?;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
            self.error(op, stmt.name, self.consistency_of(stmt, consistency), node.get(), e)
        };
        self.session.execute_bound_unpaged(&bound).await.map_err(|e| fail(Box::new(e)))
    }

    /// Binds `values` to `stmt` at `consistency` (None: the statement's own),
    /// with a listener that records the node that answered (for errors).
    fn bind(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
        consistency: Option<Consistency>,
    ) -> StoreResult<(BoundStatement, Arc<LastNode>)> {
        let node = Arc::new(LastNode::default());
        let mut bound = stmt
            .ps
            .clone()
            .bind(&values)
            .map_err(|e| self.error(op, stmt.name, self.consistency_of(stmt, consistency), None, Box::new(e)))?;
        if let Some(c) = consistency {
            bound.set_consistency(c);
        }
        bound.set_history_listener(node.clone());
        Ok((bound, node))
    }

    /// Executes a batch of `stmts` (each with its row of `values`).
    async fn batch(
        &self,
        op: &'static str,
        name: &'static str,
        stmts: Vec<&Stmt>,
        values: Vec<Vec<CqlValue>>,
    ) -> StoreResult<QueryResult> {
        let node = Arc::new(LastNode::default());
        let mut batch = Batch::new(BatchType::Logged);
        let lwt = stmts.iter().any(|s| s.lwt);
        for s in stmts {
            batch.append_statement(s.ps.clone());
        }
        batch.set_history_listener(node.clone());
        let consistency = if lwt {
            format!("{}/{}", self.settings.consistency, self.settings.serial_consistency)
        } else {
            self.settings.consistency.to_string()
        };
        self.session.batch(&batch, values).await.map_err(|e| self.error(op, name, consistency, node.get(), e))
    }

    /// The `[applied]` flag of a transaction's result.
    fn applied(&self, op: &'static str, stmt: &Stmt, result: QueryResult) -> StoreResult<bool> {
        applied(result).map_err(|e| self.error(op, stmt.name, self.consistency_of(stmt, None), None, e))
    }

    /// Every row of a read, fetched page by page.
    async fn rows<R>(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
        consistency: Option<Consistency>,
    ) -> StoreResult<Vec<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let (bound, node) = self.bind(op, stmt, values, consistency)?;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
            self.error(op, stmt.name, self.consistency_of(stmt, consistency), node.get(), e)
        };
        let pager = self.session.execute_bound_iter(bound).await.map_err(|e| fail(Box::new(e)))?;
        let stream = pager.rows_stream::<R>().map_err(|e| fail(Box::new(e)))?;
        stream.try_collect().await.map_err(|e| fail(Box::new(e)))
    }

    /// The first row of a single-partition, single-row read.
    async fn one<R>(
        &self,
        op: &'static str,
        stmt: &Stmt,
        values: impl SerializeRow,
        consistency: Option<Consistency>,
    ) -> StoreResult<Option<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        let result = self.exec(op, stmt, values, consistency).await?;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| {
            self.error(op, stmt.name, self.consistency_of(stmt, consistency), None, e)
        };
        let rows = result.into_rows_result().map_err(|e| fail(Box::new(e)))?;
        rows.maybe_first_row::<R>().map_err(|e| fail(Box::new(e)))
    }

    // ------------------------------------------------------------ messages

    /// Lists `(conversation, bucket)` in `message_buckets` unless known to be there.
    async fn list_buckets(&self, keys: &[(u64, u64)]) -> StoreResult<()> {
        let missing: Vec<(u64, u64)> = {
            let listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter().copied().filter(|k| !listed.contains(k)).collect()
        };
        for (conv, bucket) in missing {
            self.exec("append", &self.st.insert_bucket, (id_to_db(conv), id_to_db(bucket)), None).await?;
            let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
            if listed.len() >= MAX_LISTED {
                listed.clear();
            }
            listed.insert((conv, bucket));
        }
        Ok(())
    }

    /// The stored `(seq, writer)` of `seqs` in one partition.
    async fn stored_seqs(
        &self,
        (conv, bucket): (u64, u64),
        seqs: &[&NewMessage],
        consistency: Option<Consistency>,
    ) -> StoreResult<HashMap<u64, i64>> {
        // A range, not `seq IN ?`: ScyllaDB refuses IN lists of more than 100
        // clustering keys (max_clustering_key_restrictions_per_query), and an
        // owner's seqs in one partition are contiguous, so the range reads
        // nothing else (anything else in it is kept out below all the same).
        let Some((lo, hi)) = seq_span(seqs) else { return Ok(HashMap::new()) };
        let values = (id_to_db(conv), id_to_db(bucket), seq_to_db(lo), seq_to_db(hi));
        let rows: Vec<(i64, Option<i64>)> =
            self.rows("append", &self.st.select_seqs_between, values, consistency).await?;
        let wanted: HashSet<u64> = seqs.iter().map(|m| m.seq).collect();
        Ok(rows
            .into_iter()
            .map(|(seq, writer)| (seq_from_db(seq), writer.unwrap_or(0)))
            .filter(|(seq, _)| wanted.contains(seq))
            .collect())
    }

    /// The first message of `msgs` (call order) found in `stored`.
    fn first_taken(msgs: &[&NewMessage], stored: &HashMap<u64, i64>) -> Option<StoreError> {
        msgs.iter()
            .find(|m| stored.contains_key(&m.seq))
            .map(|m| StoreError::SeqTaken { conversation_id: m.conversation_id, seq: m.seq })
    }

    /// Writes one partition's messages with one conditional statement or batch.
    async fn insert_partition(&self, key: (u64, u64), msgs: &[&NewMessage], writer: i64) -> StoreResult<()> {
        let row = |m: &NewMessage| {
            vec![
                CqlValue::BigInt(id_to_db(m.conversation_id)),
                CqlValue::BigInt(id_to_db(bucket_of(m.seq))),
                CqlValue::BigInt(seq_to_db(m.seq)),
                CqlValue::Blob(m.encoded.to_vec()),
                CqlValue::Text(m.sender_id.clone()),
                CqlValue::Text(m.client_msg_id.clone()),
                CqlValue::BigInt(writer),
            ]
        };
        let stmt = &self.st.insert_message;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match msgs {
                [one] => {
                    let m = *one;
                    let values = (
                        id_to_db(m.conversation_id),
                        id_to_db(bucket_of(m.seq)),
                        seq_to_db(m.seq),
                        &m.encoded,
                        &m.sender_id,
                        &m.client_msg_id,
                        writer,
                    );
                    self.exec("append", stmt, values, None).await
                }
                _ => {
                    let values = msgs.iter().map(|m| row(m)).collect();
                    self.batch("append", "insert_message_batch", vec![stmt; msgs.len()], values).await
                }
            };
            let error = match result.and_then(|r| self.applied("append", stmt, r)) {
                Ok(true) => return Ok(()),
                Ok(false) => None,
                // Sent but unanswered, or failed after the Paxos round began
                // (a timeout under contention): settled by the serial read below.
                Err(e) => Some(e),
            };
            let stored = match self.stored_seqs(key, msgs, Some(self.serial())).await {
                Ok(stored) => stored,
                Err(again) => {
                    return Err(match error {
                        Some(e) => StoreError::Backend { op: "append", source: Box::new(Unsettled(e, again)) },
                        None => again,
                    });
                }
            };
            if msgs.iter().all(|m| stored.get(&m.seq) == Some(&writer)) {
                if let Some(e) = error {
                    tracing::warn!(error = %e, "store: append outcome was unknown; read back: it was written");
                }
                return Ok(());
            }
            if let Some(m) = msgs.iter().find(|m| stored.get(&m.seq).is_some_and(|w| *w != writer)) {
                return Err(StoreError::SeqTaken { conversation_id: m.conversation_id, seq: m.seq });
            }
            match error {
                // Nothing of ours or anyone's is stored, and the serial read has
                // settled our attempt (it can no longer apply): try again.
                Some(e) if attempt < 3 => {
                    tracing::warn!(error = %e, attempt, "store: append not applied, nothing stored; retrying");
                }
                Some(e) => return Err(e),
                None => {
                    return Err(StoreError::Corrupt {
                        table: "messages",
                        detail: format!(
                            "conversation {} bucket {}: a conditional insert was not applied, yet none of its \
                             seqs reads back",
                            key.0, key.1
                        ),
                    });
                }
            }
        }
    }

    async fn append(&self, msgs: Vec<NewMessage>) -> StoreResult<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        if let Some((conversation_id, seq)) = first_duplicate(&msgs) {
            return Err(StoreError::SeqTaken { conversation_id, seq });
        }
        let parts = partitions(&msgs);
        let keys: Vec<(u64, u64)> = parts.iter().map(|(k, _)| *k).collect();
        self.list_buckets(&keys).await?;
        if parts.len() > 1 {
            // Not atomic across partitions: check them all before writing any.
            for (key, part) in &parts {
                let stored = self.stored_seqs(*key, part, None).await?;
                if let Some(taken) = Self::first_taken(part, &stored) {
                    return Err(taken);
                }
            }
        }
        // The idempotency records first, so that a stored message always has
        // one (a retry after a failure or crash finds it by client id, and so
        // does a fenced owner whose retry went to another node). A record whose
        // message then fails to store points at a seq that holds nothing or
        // another message, which `find_client_msg` checks.
        let users: Vec<&NewMessage> = msgs.iter().filter(|m| !m.client_msg_id.is_empty()).collect();
        for chunk in users.chunks(FAN_OUT) {
            let writes = chunk.iter().map(|m| {
                let values = (id_to_db(m.conversation_id), &m.sender_id, &m.client_msg_id, seq_to_db(m.seq));
                self.exec("append", &self.st.insert_idempotency, values, None)
            });
            // Every write runs to its end (none is dropped in flight), then the first error fails the call.
            for r in futures_util::future::join_all(writes).await {
                r?;
            }
        }
        let writer = rand::random::<i64>();
        for (key, part) in &parts {
            self.insert_partition(*key, part, writer).await?;
        }
        // The messages are stored: from here nothing fails the call. The
        // senders' watermarks are hints that only move up (receipts move them
        // too), so a failure is logged and left to the next advance.
        let marks = sender_marks(&users);
        for chunk in marks.chunks(FAN_OUT) {
            let moves = chunk.iter().map(|&((conv, sender), seq)| {
                self.advance_watermarks("append", (conv, sender), seq, seq, APPEND_WATERMARK_ROUNDS)
            });
            for (r, ((conv, sender), seq)) in futures_util::future::join_all(moves).await.into_iter().zip(chunk) {
                if let Err(e) = r {
                    tracing::warn!(conv, sender, seq, error = %e, "store: sender watermark not moved after an append");
                }
            }
        }
        Ok(())
    }

    /// The seq stored for a client message id, if the message stored at that
    /// seq really is that sender's message with that id (see [`Inner::append`]).
    async fn find_client_msg(&self, conv: u64, sender: String, client_msg_id: String) -> StoreResult<Option<u64>> {
        const OP: &str = "find_client_msg";
        let values = (id_to_db(conv), &sender, &client_msg_id);
        let Some((seq,)) = self.one::<(i64,)>(OP, &self.st.select_idempotency, values, None).await? else {
            return Ok(None);
        };
        let seq = seq_from_db(seq);
        // Serial: settles a transaction of that message still in flight (or
        // whose outcome its writer could not tell), so the answer is final.
        let key = (id_to_db(conv), id_to_db(bucket_of(seq)), seq_to_db(seq));
        let stored: Option<(Option<String>, Option<String>)> =
            self.one(OP, &self.st.select_message_sender, key, Some(self.serial())).await?;
        Ok(holds_client_msg(stored, &sender, &client_msg_id).then_some(seq))
    }

    async fn last_seq(&self, conv: u64) -> StoreResult<u64> {
        let buckets: Vec<(i64,)> = self.rows("last_seq", &self.st.select_buckets_desc, (id_to_db(conv),), None).await?;
        for (bucket,) in buckets {
            let last: Option<(i64,)> =
                self.one("last_seq", &self.st.select_last_seq, (id_to_db(conv), bucket), None).await?;
            if let Some((seq,)) = last {
                return Ok(seq_from_db(seq));
            }
        }
        Ok(0)
    }

    async fn read_range(&self, conv: u64, range: Range) -> StoreResult<Vec<(u64, Bytes)>> {
        let Some((lo, hi)) = seq_bounds(&range) else { return Ok(Vec::new()) };
        let forward = range.direction == Direction::Forward;
        let span = (id_to_db(conv), id_to_db(bucket_of(lo)), id_to_db(bucket_of(hi)));
        let buckets_stmt =
            if forward { &self.st.select_buckets_between_asc } else { &self.st.select_buckets_between_desc };
        let buckets: Vec<(i64,)> = self.rows("read_range", buckets_stmt, span, None).await?;
        let stmt = if forward { &self.st.select_messages_asc } else { &self.st.select_messages_desc };
        let mut out: Vec<(u64, Bytes)> = Vec::new();
        for (bucket,) in buckets {
            let remaining = range.limit - out.len();
            if remaining == 0 {
                break;
            }
            let (first, last) = bucket_bounds(id_from_db(bucket), lo, hi);
            let limit = i32::try_from(remaining).unwrap_or(i32::MAX);
            let values = (id_to_db(conv), bucket, seq_to_db(first), seq_to_db(last), limit);
            let rows: Vec<(i64, Bytes)> = self.rows("read_range", stmt, values, None).await?;
            out.extend(rows.into_iter().take(remaining).map(|(seq, body)| (seq_from_db(seq), body)));
        }
        if !forward {
            out.reverse();
        }
        Ok(out)
    }

    // ------------------------------------------------------------ conversations

    async fn get_conversation(
        &self,
        id: u64,
        consistency: Option<Consistency>,
    ) -> StoreResult<Option<ConversationRecord>> {
        let row: Option<ConvRow> =
            self.one("get_conversation", &self.st.select_conversation, (id_to_db(id),), consistency).await?;
        Ok(row.map(conv_from_row))
    }

    /// Writes a row through Paxos whether it exists or not: `update` (`IF
    /// EXISTS`), else `insert` (`IF NOT EXISTS`), until one applies. Rows that
    /// transactions write are written only by transactions (see the module docs).
    async fn upsert_by_transaction(
        &self,
        op: &'static str,
        (update, update_values): (&Stmt, Vec<CqlValue>),
        (insert, insert_values): (&Stmt, Vec<CqlValue>),
    ) -> StoreResult<()> {
        // Each round that applies nothing saw the row appear or vanish in between.
        for _ in 0..4 {
            let r = self.exec(op, update, update_values.clone(), None).await?;
            if self.applied(op, update, r)? {
                return Ok(());
            }
            let r = self.exec(op, insert, insert_values.clone(), None).await?;
            if self.applied(op, insert, r)? {
                return Ok(());
            }
        }
        let consistency = self.consistency_of(update, None);
        Err(self.error(
            op,
            update.name,
            consistency,
            None,
            "the row kept appearing and vanishing; gave up after 4 rounds",
        ))
    }

    async fn create_conversation(&self, conv: ConversationRecord, members: Vec<MemberRecord>) -> StoreResult<Created> {
        const OP: &str = "create_conversation";
        let stmt = &self.st.insert_conversation_if_absent;
        let r = self.exec(OP, stmt, conv_values(&conv), None).await?;
        if !self.applied(OP, stmt, r)? {
            return match self.get_conversation(conv.id, Some(self.serial())).await? {
                Some(existing) => Ok(Created::Existing(existing)),
                None => Err(StoreError::Corrupt {
                    table: "conversations",
                    detail: format!("conversation {} exists for IF NOT EXISTS but does not read back", conv.id),
                }),
            };
        }
        // The member rows: one partition, so conditional batches of up to
        // MEMBER_BATCH; a batch that finds a row there already (left by a
        // create that failed half-way) falls back to one upsert per member.
        // One row per user (the last record given wins, as with successive writes).
        let mut seen = HashSet::new();
        let mut members: Vec<MemberRecord> =
            members.into_iter().rev().filter(|m| seen.insert(m.user_id.clone())).collect();
        members.reverse();
        for chunk in members.chunks(MEMBER_BATCH) {
            let stmts = vec![&self.st.insert_member_if_absent; chunk.len()];
            let values = chunk.iter().map(member_values).collect();
            let r = self.batch(OP, "insert_members_batch", stmts, values).await?;
            if !self.applied(OP, &self.st.insert_member_if_absent, r)? {
                for m in chunk {
                    self.put_member_row(OP, m).await?;
                }
            }
            let stmts = vec![&self.st.insert_user_conversation; chunk.len()];
            let values = chunk.iter().map(|m| user_conv_values(&m.user_id, m.conversation_id)).collect();
            self.batch(OP, "insert_user_conversations_batch", stmts, values).await?;
        }
        if is_waiting(&conv) {
            self.exec(OP, &self.st.insert_queue, queue_values(&conv), None).await?;
        }
        Ok(Created::New)
    }

    async fn update_conversation(&self, conv: ConversationRecord) -> StoreResult<()> {
        const OP: &str = "update_conversation";
        let old = self.get_conversation(conv.id, None).await?;
        let c = conv_values(&conv);
        let update = vec![
            CqlValue::Int(c.1),
            CqlValue::Text(c.2.clone()),
            CqlValue::Text(c.3.clone()),
            CqlValue::Text(c.4.clone()),
            CqlValue::BigInt(c.5),
            CqlValue::BigInt(c.6),
            CqlValue::Int(c.7),
            CqlValue::Boolean(c.8),
            CqlValue::Int(c.9),
            CqlValue::Boolean(c.10),
            CqlValue::BigInt(c.0),
        ];
        let insert = vec![
            CqlValue::BigInt(c.0),
            CqlValue::Int(c.1),
            CqlValue::Text(c.2),
            CqlValue::Text(c.3),
            CqlValue::Text(c.4),
            CqlValue::BigInt(c.5),
            CqlValue::BigInt(c.6),
            CqlValue::Int(c.7),
            CqlValue::Boolean(c.8),
            CqlValue::Int(c.9),
            CqlValue::Boolean(c.10),
        ];
        let (upd, ins) = (&self.st.update_conversation_if_exists, &self.st.insert_conversation_if_absent);
        self.upsert_by_transaction(OP, (upd, update), (ins, insert)).await?;
        // The queue follows. A batch gives its statements one timestamp, and a
        // delete wins a tie: delete the old entry only if it is not the one written now.
        let mut stmts = Vec::new();
        let mut values = Vec::new();
        if let Some(old) =
            old.filter(|old| is_waiting(old) && !(is_waiting(&conv) && old.created_at_ms == conv.created_at_ms))
        {
            stmts.push(&self.st.delete_queue);
            values.push(queue_values(&old));
        }
        if is_waiting(&conv) {
            stmts.push(&self.st.insert_queue);
            values.push(queue_values(&conv));
        }
        if !stmts.is_empty() {
            self.batch(OP, "update_support_queue_batch", stmts, values).await?;
        }
        Ok(())
    }

    async fn support_queue(&self) -> StoreResult<Vec<u64>> {
        let rows: Vec<(i64,)> = self.rows("support_queue", &self.st.select_queue, (WAITING,), None).await?;
        Ok(rows.into_iter().map(|(id,)| id_from_db(id)).collect())
    }

    // ------------------------------------------------------------ members

    /// Writes a member row (through Paxos, like every write of that table).
    async fn put_member_row(&self, op: &'static str, m: &MemberRecord) -> StoreResult<()> {
        let update = vec![
            CqlValue::Int(m.role),
            CqlValue::BigInt(id_to_db(m.joined_at_ms)),
            CqlValue::BigInt(seq_to_db(m.delivered_seq)),
            CqlValue::BigInt(seq_to_db(m.read_seq)),
            CqlValue::BigInt(id_to_db(m.conversation_id)),
            CqlValue::Text(m.user_id.clone()),
        ];
        let (upd, ins) = (&self.st.update_member_if_exists, &self.st.insert_member_if_absent);
        self.upsert_by_transaction(op, (upd, update), (ins, member_values(m))).await
    }

    async fn put_member(&self, m: MemberRecord) -> StoreResult<()> {
        self.put_member_row("put_member", &m).await?;
        let values = user_conv_values(&m.user_id, m.conversation_id);
        self.exec("put_member", &self.st.insert_user_conversation, values, None).await.map(|_| ())
    }

    async fn remove_member(&self, conv: u64, user: String) -> StoreResult<()> {
        const OP: &str = "remove_member";
        let stmt = &self.st.delete_member_if_exists;
        // Not applied: there was no such member, which is not an error.
        self.exec(OP, stmt, (id_to_db(conv), &user), None).await?;
        self.exec(OP, &self.st.delete_user_conversation, user_conv_values(&user, conv), None).await.map(|_| ())
    }

    async fn members(&self, conv: u64) -> StoreResult<Vec<MemberRecord>> {
        let rows: Vec<MemberRow> = self.rows("members", &self.st.select_members, (id_to_db(conv),), None).await?;
        Ok(rows.into_iter().map(|r| member_from_row(conv, r)).collect())
    }

    async fn member(&self, conv: u64, user: String) -> StoreResult<Option<MemberRecord>> {
        let row: Option<MemberRow> = self.one("member", &self.st.select_member, (id_to_db(conv), user), None).await?;
        Ok(row.map(|r| member_from_row(conv, r)))
    }

    async fn user_conversations(&self, user: String) -> StoreResult<Vec<u64>> {
        if user.is_empty() {
            return Ok(Vec::new()); // An empty partition key is refused by the server.
        }
        let rows: Vec<(i64,)> =
            self.rows("user_conversations", &self.st.select_user_conversations, (user,), None).await?;
        Ok(rows.into_iter().map(|(id,)| id_from_db(id)).collect())
    }

    /// Moves watermarks forward with lightweight transactions (see the module
    /// docs), in at most `rounds` rounds.
    async fn advance_watermarks(
        &self,
        op: &'static str,
        (conv, user): (u64, &str),
        delivered: u64,
        read: u64,
        rounds: usize,
    ) -> StoreResult<()> {
        let key = (id_to_db(conv), user);
        let mut consistency = None;
        let mut last_error = None;
        // Three rounds suffice (each failed one settles at least one watermark);
        // more are for rows that change under us.
        for _ in 0..rounds {
            let Some((d0, r0)) = self.one::<(i64, i64)>(op, &self.st.select_watermarks, key, consistency).await? else {
                return Ok(()); // Not a member.
            };
            let (d0, r0) = (seq_from_db(d0), seq_from_db(r0));
            let (d, r) = (delivered > d0, read > r0);
            let (dv, rv) = (seq_to_db(delivered), seq_to_db(read));
            let (stmt, result) = match (d, r) {
                (false, false) => return Ok(()),
                (true, true) => {
                    let stmt = &self.st.advance_both;
                    (stmt, self.exec(op, stmt, (dv, rv, key.0, key.1, dv, rv), None).await)
                }
                (true, false) => {
                    let stmt = &self.st.advance_delivered;
                    (stmt, self.exec(op, stmt, (dv, key.0, key.1, dv), None).await)
                }
                (false, true) => {
                    let stmt = &self.st.advance_read;
                    (stmt, self.exec(op, stmt, (rv, key.0, key.1, rv), None).await)
                }
            };
            match result.and_then(|r| self.applied(op, stmt, r)) {
                Ok(true) => return Ok(()),
                // Someone moved it meanwhile (or the row went).
                Ok(false) => {}
                // Unknown outcome (e.g. a timeout under contention): moving a
                // watermark up is idempotent, so look again and retry.
                Err(e) => {
                    tracing::debug!(error = %e, "store: watermark update failed; reading back");
                    last_error = Some(e);
                }
            }
            // Read what is there now, settling any transaction in flight.
            consistency = Some(self.serial());
        }
        Err(last_error.unwrap_or_else(|| {
            let consistency = self.consistency_of(&self.st.advance_both, None);
            self.error(
                op,
                "advance_watermarks",
                consistency,
                None,
                format!("the watermarks kept changing; gave up after {rounds} rounds"),
            )
        }))
    }

    // ------------------------------------------------------------ users

    async fn get_users(&self, ids: Vec<String>) -> StoreResult<Vec<UserRecord>> {
        let ids: Vec<String> = ids.into_iter().filter(|id| !id.is_empty()).collect();
        let mut found: Vec<Option<(String, String, i32)>> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(FAN_OUT) {
            let mut reads = Vec::with_capacity(chunk.len());
            for id in chunk {
                reads.push(self.one::<(String, String, i32)>("get_users", &self.st.select_user, (id,), None));
            }
            found.extend(futures_util::future::try_join_all(reads).await?);
        }
        Ok(found.into_iter().flatten().map(|(id, display_name, role)| UserRecord { id, display_name, role }).collect())
    }
}

impl MessageStore for ScyllaStore {
    fn epoch(&self) -> &str {
        &self.epoch
    }

    fn append_run_limit(&self, next_seq: u64) -> usize {
        run_limit(next_seq)
    }

    async fn append(&self, msgs: Vec<NewMessage>) -> StoreResult<()> {
        self.call("append", true, |i| async move { i.append(msgs).await }).await
    }

    async fn find_client_msg(
        &self,
        conversation_id: u64,
        sender_id: &str,
        client_msg_id: &str,
    ) -> StoreResult<Option<u64>> {
        if client_msg_id.is_empty() {
            return Ok(None);
        }
        let (sender, id) = (sender_id.to_owned(), client_msg_id.to_owned());
        self.call("find_client_msg", false, |i| async move { i.find_client_msg(conversation_id, sender, id).await })
            .await
    }

    async fn last_seq(&self, conversation_id: u64) -> StoreResult<u64> {
        self.call("last_seq", false, |i| async move { i.last_seq(conversation_id).await }).await
    }

    async fn read_range(&self, conversation_id: u64, range: Range) -> StoreResult<Vec<(u64, Bytes)>> {
        self.call("read_range", false, |i| async move { i.read_range(conversation_id, range).await }).await
    }

    async fn create_conversation(&self, conv: &ConversationRecord, members: &[MemberRecord]) -> StoreResult<Created> {
        let (conv, members) = (conv.clone(), members.to_vec());
        self.call("create_conversation", true, |i| async move { i.create_conversation(conv, members).await }).await
    }

    async fn get_conversation(&self, id: u64) -> StoreResult<Option<ConversationRecord>> {
        self.call("get_conversation", false, |i| async move { i.get_conversation(id, None).await }).await
    }

    async fn update_conversation(&self, conv: &ConversationRecord) -> StoreResult<()> {
        let conv = conv.clone();
        self.call("update_conversation", true, |i| async move { i.update_conversation(conv).await }).await
    }

    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()> {
        let member = member.clone();
        self.call("put_member", true, |i| async move { i.put_member(member).await }).await
    }

    async fn remove_member(&self, conversation_id: u64, user_id: &str) -> StoreResult<()> {
        let user = user_id.to_owned();
        self.call("remove_member", true, |i| async move { i.remove_member(conversation_id, user).await }).await
    }

    async fn members(&self, conversation_id: u64) -> StoreResult<Vec<MemberRecord>> {
        self.call("members", false, |i| async move { i.members(conversation_id).await }).await
    }

    async fn member(&self, conversation_id: u64, user_id: &str) -> StoreResult<Option<MemberRecord>> {
        let user = user_id.to_owned();
        self.call("member", false, |i| async move { i.member(conversation_id, user).await }).await
    }

    async fn user_conversations(&self, user_id: &str) -> StoreResult<Vec<u64>> {
        let user = user_id.to_owned();
        self.call("user_conversations", false, |i| async move { i.user_conversations(user).await }).await
    }

    async fn advance_watermarks(
        &self,
        conversation_id: u64,
        user_id: &str,
        delivered: u64,
        read: u64,
    ) -> StoreResult<()> {
        let user = user_id.to_owned();
        self.call("advance_watermarks", true, |i| async move {
            i.advance_watermarks("advance_watermarks", (conversation_id, &user), delivered, read, WATERMARK_ROUNDS)
                .await
        })
        .await
    }

    async fn support_queue(&self) -> StoreResult<Vec<u64>> {
        self.call("support_queue", false, |i| async move { i.support_queue().await }).await
    }

    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let values = (user.id.clone(), user.display_name.clone(), user.role);
        self.call("upsert_user", true, |i| async move {
            i.exec("upsert_user", &i.st.upsert_user, values, None).await.map(|_| ())
        })
        .await
    }

    async fn get_users(&self, ids: &[String]) -> StoreResult<Vec<UserRecord>> {
        let ids = ids.to_vec();
        self.call("get_users", false, |i| async move { i.get_users(ids).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(conv: u64, seq: u64) -> NewMessage {
        NewMessage {
            conversation_id: conv,
            seq,
            sender_id: "alice".into(),
            client_msg_id: format!("c{seq}"),
            encoded: Bytes::from_static(b"x"),
        }
    }

    fn range(after: u64, before: u64, limit: usize) -> Range {
        Range { after, before, limit, direction: Direction::Forward }
    }

    #[test]
    fn stored_seqs_keep_numeric_order_over_the_whole_range() {
        let seqs = [0, 1, 2, 4095, 4096, 1 << 40, (1 << 63) - 1, 1 << 63, u64::MAX - 1, u64::MAX];
        for w in seqs.windows(2) {
            assert!(seq_to_db(w[0]) < seq_to_db(w[1]), "{} < {}", w[0], w[1]);
        }
        for s in seqs {
            assert_eq!(seq_from_db(seq_to_db(s)), s);
        }
        assert_eq!(seq_to_db(0), i64::MIN);
        assert_eq!(seq_to_db(u64::MAX), i64::MAX);
        for id in [0, 1, 1 << 53, u64::MAX] {
            assert_eq!(id_from_db(id_to_db(id)), id);
        }
    }

    #[test]
    fn buckets_hold_4096_seqs() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(4095), 0);
        assert_eq!(bucket_of(4096), 1);
        assert_eq!(bucket_of(u64::MAX), u64::MAX / 4096);
        assert!(i64::try_from(bucket_of(u64::MAX)).is_ok(), "every bucket fits a bigint as is");
        assert_eq!(bucket_bounds(0, 1, u64::MAX), (1, 4095));
        assert_eq!(bucket_bounds(1, 1, u64::MAX), (4096, 8191));
        assert_eq!(bucket_bounds(1, 5000, 6000), (5000, 6000));
        assert_eq!(bucket_bounds(u64::MAX / 4096, 1, u64::MAX - 1), ((u64::MAX / 4096) * 4096, u64::MAX - 1));
    }

    #[test]
    fn an_append_run_ends_at_its_bucket_edge() {
        assert_eq!(run_limit(1), 4095, "seq 0 is never used: bucket 0 holds 1..=4095");
        assert_eq!(run_limit(4095), 1);
        assert_eq!(run_limit(4096), 4096);
        assert_eq!(run_limit(5000), 8192 - 5000);
        assert_eq!(run_limit(u64::MAX), 1);
        for next in [1, 100, 4000, 4095, 4096, 8191, 1 << 40] {
            let n = run_limit(next) as u64;
            assert!(n >= 1);
            assert_eq!(bucket_of(next), bucket_of(next + n - 1), "{next}: the run stays in one bucket");
            assert_ne!(bucket_of(next + n - 1), bucket_of(next + n), "{next}: and fills it");
        }
    }

    #[test]
    fn a_partition_is_checked_by_its_seq_span() {
        let (a, b, c) = (msg(1, 4100), msg(1, 4096), msg(1, 4102));
        assert_eq!(seq_span(&[&a, &b, &c]), Some((4096, 4102)));
        assert_eq!(seq_span(&[&a]), Some((4100, 4100)));
        assert_eq!(seq_span(&[]), None);
        // No statement uses a clustering IN list (ScyllaDB caps them at 100).
        for (name, cql) in STATEMENTS {
            assert!(!cql.contains(" IN "), "{name}: {cql}");
        }
    }

    #[test]
    fn a_client_id_is_found_only_where_its_message_is() {
        let row = |s: &str, c: &str| Some((Some(s.to_string()), Some(c.to_string())));
        assert!(holds_client_msg(row("alice", "c1"), "alice", "c1"));
        assert!(!holds_client_msg(row("bob", "c1"), "alice", "c1"), "another sender's message at that seq");
        assert!(!holds_client_msg(row("alice", "c2"), "alice", "c1"), "another message of the sender");
        assert!(!holds_client_msg(None, "alice", "c1"), "nothing stored at that seq");
        assert!(!holds_client_msg(Some((None, None)), "alice", "c1"));
    }

    #[test]
    fn senders_watermarks_go_to_their_last_message() {
        let by = |conv, seq, sender: &str| NewMessage { sender_id: sender.into(), ..msg(conv, seq) };
        let msgs = [by(1, 3, "a"), by(1, 4, "b"), by(1, 5, "a"), by(2, 1, "a")];
        let refs: Vec<&NewMessage> = msgs.iter().collect();
        assert_eq!(sender_marks(&refs), vec![((1, "a"), 5), ((1, "b"), 4), ((2, "a"), 1)]);
    }

    #[test]
    fn read_bounds_are_exclusive_and_empty_ranges_read_nothing() {
        assert_eq!(seq_bounds(&range(0, u64::MAX, 10)), Some((1, u64::MAX - 1)));
        assert_eq!(seq_bounds(&range(5, 10, 10)), Some((6, 9)));
        assert_eq!(seq_bounds(&range(5, 6, 10)), None, "nothing strictly between");
        assert_eq!(seq_bounds(&range(5, 5, 10)), None);
        assert_eq!(seq_bounds(&range(8, 3, 10)), None, "inverted");
        assert_eq!(seq_bounds(&range(0, u64::MAX, 0)), None, "limit 0");
        assert_eq!(seq_bounds(&range(u64::MAX, u64::MAX, 10)), None);
        assert_eq!(seq_bounds(&range(0, 0, 10)), None);
        // A read spans the buckets of its bounds.
        let (lo, hi) = seq_bounds(&range(4000, 9000, 10)).unwrap();
        assert_eq!((bucket_of(lo), bucket_of(hi)), (0, 2));
    }

    #[test]
    fn a_call_groups_by_partition_in_call_order() {
        let msgs = vec![msg(30, 4), msg(30, 5), msg(30, 2), msg(31, 1), msg(30, 4096), msg(30, 6)];
        let parts = partitions(&msgs);
        let shape: Vec<((u64, u64), Vec<u64>)> =
            parts.iter().map(|(k, ms)| (*k, ms.iter().map(|m| m.seq).collect())).collect();
        assert_eq!(shape, vec![((30, 0), vec![4, 5, 2, 6]), ((31, 0), vec![1]), ((30, 1), vec![4096])]);
        assert_eq!(first_duplicate(&msgs), None);
        assert_eq!(first_duplicate(&[msg(30, 7), msg(31, 7), msg(30, 7)]), Some((30, 7)));
        let stored: HashMap<u64, i64> = [(2, 9), (6, 9)].into();
        let part = &parts[0].1;
        assert!(matches!(
            Inner::first_taken(part, &stored),
            Some(StoreError::SeqTaken { conversation_id: 30, seq: 2 })
        ));
        assert!(Inner::first_taken(&parts[1].1, &stored).is_none());
    }

    #[test]
    fn settings_are_checked_with_clear_messages() {
        let ok = ScyllaSettings::from_config(&ScyllaConfig::default()).unwrap();
        assert_eq!(ok.consistency, Consistency::LocalQuorum);
        assert_eq!(ok.serial_consistency, SerialConsistency::LocalSerial);
        assert_eq!(ok.replication, "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}");
        assert_eq!(parse_consistency("QUORUM"), Ok(Consistency::Quorum));
        assert!(parse_consistency("any").unwrap_err().contains("any would acknowledge"));
        assert!(parse_consistency("serial").is_err(), "serial is not a write consistency");
        assert!(parse_serial_consistency("local_quorum").unwrap_err().contains("serial or local_serial"));
        let bad = |f: &dyn Fn(&mut ScyllaConfig)| {
            let mut c = ScyllaConfig::default();
            f(&mut c);
            ScyllaSettings::from_config(&c).unwrap_err()
        };
        assert!(bad(&|c| c.nodes = vec!["db1".into()]).contains("\"db1\" is not host:port"));
        assert!(bad(&|c| c.nodes = vec![":9042".into()]).contains("host:port"));
        assert!(bad(&|c| c.nodes.clear()).contains("at least one"));
        assert!(bad(&|c| c.keyspace = "1chat".into()).contains("keyspace"));
        assert!(bad(&|c| c.keyspace = "chat; DROP".into()).contains("keyspace"));
        assert!(bad(&|c| c.keyspace = "k".repeat(49)).contains("at most 48"));
        assert!(bad(&|c| c.local_dc = Some("dc'1".into())).contains("local_dc"));
        assert!(bad(&|c| c.password = Some("x".into())).contains("username and password"));
        assert!(bad(&|c| c.driver_threads = 0).contains("driver_threads"));
        let ipv6 = ScyllaConfig { nodes: vec!["[::1]:9042".into()], ..ScyllaConfig::default() };
        assert!(ScyllaSettings::from_config(&ipv6).is_ok());
    }

    #[test]
    fn local_serial_is_refused_across_datacenters() {
        let two = ReplicationConfig {
            datacenters: [("dc1".to_string(), 3), ("dc2".to_string(), 3)].into(),
            ..ReplicationConfig::default()
        };
        let cfg = ScyllaConfig { replication: two.clone(), ..ScyllaConfig::default() };
        let e = ScyllaSettings::from_config(&cfg).unwrap_err();
        assert!(e.contains("\"local_serial\" with replication in 2 datacenters (dc1, dc2)"), "{e}");
        assert!(e.contains("serial_consistency = \"serial\""), "{e}");
        let serial = ScyllaConfig { replication: two, serial_consistency: "SERIAL".into(), ..ScyllaConfig::default() };
        assert_eq!(ScyllaSettings::from_config(&serial).unwrap().serial_consistency, SerialConsistency::Serial);
        let one = ReplicationConfig { datacenters: [("dc1".to_string(), 3)].into(), ..ReplicationConfig::default() };
        assert!(ScyllaSettings::from_config(&ScyllaConfig { replication: one, ..ScyllaConfig::default() }).is_ok());
        // What the server reports for the keyspace (checked at open).
        let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let nts = "org.apache.cassandra.locator.NetworkTopologyStrategy";
        assert_eq!(replicated_datacenters(&map(&[("class", nts), ("dc2", "3"), ("dc1", "3")])), ["dc1", "dc2"]);
        assert_eq!(replicated_datacenters(&map(&[("class", nts), ("dc1", "3"), ("dc2", "0")])), ["dc1"]);
        assert!(replicated_datacenters(&map(&[("class", "SimpleStrategy"), ("replication_factor", "1")])).is_empty());
        assert!(replicated_datacenters(&HashMap::new()).is_empty());
        let dcs = replicated_datacenters(&map(&[("class", nts), ("dc1", "3"), ("dc2", "3")]));
        assert!(check_serial_for_datacenters(SerialConsistency::LocalSerial, &dcs).is_err());
        assert!(check_serial_for_datacenters(SerialConsistency::Serial, &dcs).is_ok());
        assert!(check_serial_for_datacenters(SerialConsistency::LocalSerial, &dcs[..1]).is_ok());
    }

    #[test]
    fn tablets_are_off_by_default_on_a_scylladb_that_has_them() {
        assert_eq!(effective_tablets(None, true), Some(false), "ScyllaDB 6+: LWTs need a vnodes keyspace");
        assert_eq!(effective_tablets(None, false), None, "Cassandra, older ScyllaDB: the option is unknown");
        assert_eq!(effective_tablets(Some(true), true), Some(true), "configured wins");
        assert_eq!(effective_tablets(Some(false), false), Some(false));
        let s = ScyllaSettings {
            tablets: effective_tablets(None, true),
            ..ScyllaSettings::from_config(&ScyllaConfig::default()).unwrap()
        };
        assert!(keyspace_ddl(&s).ends_with("AND durable_writes = true AND tablets = {'enabled': false}"));
    }

    #[test]
    fn replication_renders_as_cql() {
        let simple = ReplicationConfig { class: "SimpleStrategy".into(), factor: 1, ..ReplicationConfig::default() };
        assert_eq!(replication_cql(&simple).unwrap(), "{'class': 'SimpleStrategy', 'replication_factor': 1}");
        let dcs = ReplicationConfig {
            datacenters: [("dc1".to_string(), 3), ("dc2".to_string(), 2)].into(),
            ..ReplicationConfig::default()
        };
        assert_eq!(replication_cql(&dcs).unwrap(), "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}");
        let zero = ReplicationConfig { factor: 0, ..ReplicationConfig::default() };
        assert!(replication_cql(&zero).unwrap_err().contains("at least 1"));
        let quote = ReplicationConfig { datacenters: [("d'c".to_string(), 3)].into(), ..ReplicationConfig::default() };
        assert!(replication_cql(&quote).is_err());
    }

    #[test]
    fn ddl_names_the_keyspace_and_partitions_messages_by_bucket() {
        let mut s = ScyllaSettings::from_config(&ScyllaConfig::default()).unwrap();
        assert_eq!(
            keyspace_ddl(&s),
            "CREATE KEYSPACE IF NOT EXISTS chat WITH replication = \
             {'class': 'NetworkTopologyStrategy', 'replication_factor': 3} AND durable_writes = true"
        );
        s.tablets = Some(false);
        assert!(keyspace_ddl(&s).ends_with(" AND tablets = {'enabled': false}"));
        let ddl = schema_ddl("chat_x");
        assert_eq!(ddl.len(), 10);
        assert_eq!(ddl[0].0, "schema_version", "the version table comes first (migrate reads it before the rest)");
        for (table, create) in &ddl {
            assert!(create.starts_with(&format!("CREATE TABLE IF NOT EXISTS chat_x.{table} (")), "{create}");
        }
        let messages = &ddl.iter().find(|(t, _)| *t == "messages").unwrap().1;
        assert!(messages.contains("PRIMARY KEY ((conversation_id, bucket), seq)"), "{messages}");
        // Every statement names tables of the schema through the keyspace.
        let tables: Vec<&str> = ddl.iter().map(|(t, _)| *t).collect();
        for (name, cql) in STATEMENTS {
            let table = cql.split("{ks}.").nth(1).and_then(|rest| rest.split([' ', '(']).next());
            assert!(table.is_some_and(|t| tables.contains(&t)), "{name}: {cql}");
        }
        // A table that transactions write is written by nothing else (mixing
        // Paxos and plain writes on a row orders them by clocks, not by Paxos).
        let writes = |table: &'static str| {
            STATEMENTS.iter().filter(move |(_, c)| {
                let write = c.starts_with("INSERT") || c.starts_with("UPDATE") || c.starts_with("DELETE");
                let target = c.split("{ks}.").nth(1).and_then(|rest| rest.split([' ', '(']).next());
                write && target == Some(table)
            })
        };
        for table in ["messages", "conversations", "members_by_conversation", "meta"] {
            assert!(writes(table).count() > 0, "{table}");
            for (name, cql) in writes(table) {
                assert!(is_transaction(cql), "{name} writes {table} outside a transaction: {cql}");
            }
        }
        for table in ["message_buckets", "idempotency", "conversations_by_user", "support_queue", "users"] {
            for (name, cql) in writes(table) {
                assert!(!is_transaction(cql), "{name}: {cql}");
            }
        }
        let mut names: Vec<&str> = STATEMENTS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STATEMENTS.len());
    }

    #[test]
    fn schema_versions_are_checked_with_what_to_do() {
        assert!(check_schema_version("chat", Some(SCHEMA_VERSION)).is_ok());
        let msg = |v| check_schema_version("chat", v).unwrap_err().to_string();
        assert_eq!(msg(None), "store schema in keyspace chat: no schema version is recorded; run `chatd migrate`");
        assert!(msg(Some(SCHEMA_VERSION - 1)).contains("is older than this binary's 1; run `chatd migrate`"));
        assert!(msg(Some(SCHEMA_VERSION + 1)).contains("is newer than this binary's"));
    }

    #[test]
    fn errors_say_which_statement_node_and_consistency() {
        let e = StoreError::Backend {
            op: "append",
            source: Box::new(CqlError {
                statement: "insert_message",
                consistency: "LocalQuorum/LocalSerial".into(),
                node: Some("10.0.0.3:9042".parse().unwrap()),
                source: "Not enough nodes responded".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "store append failed: statement insert_message at consistency LocalQuorum/LocalSerial on node \
             10.0.0.3:9042: Not enough nodes responded"
        );
        let unreached =
            CqlError { statement: "select_user", consistency: "One".into(), node: None, source: "timeout".into() };
        assert_eq!(unreached.to_string(), "statement select_user at consistency One (no node reached): timeout");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_unreachable_cluster_is_an_open_error_naming_it() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let cfg = ScyllaConfig { nodes: vec!["127.0.0.1:1".into()], connect_timeout_ms: 2_000, ..Default::default() };
        let s = ScyllaSettings::from_config(&cfg).unwrap();
        let e = match ScyllaStore::connect(&s).await {
            Ok(_) => panic!("connected to nothing"),
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with("cannot open store at scylla 127.0.0.1:1/chat: "), "{e}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_blocking_open_and_migrate_fail_cleanly_inside_async_code_too() {
        let mut cfg = crate::config::Config::default();
        cfg.store.backend = "scylla".into();
        cfg.store.scylla.nodes = vec!["127.0.0.1:1".into()];
        let e = match super::super::Store::open(&cfg) {
            Ok(_) => panic!("opened nothing"),
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with("cannot open store at scylla 127.0.0.1:1/chat"), "{e}");
        let e = super::super::migrate(&cfg).unwrap_err().to_string();
        assert!(e.starts_with("cannot open store at scylla 127.0.0.1:1/chat"), "{e}");
    }
}
