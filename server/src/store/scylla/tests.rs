//! Unit tests of the pure parts: numbers, buckets, settings, DDL, errors.

use std::collections::HashMap;

use bytes::Bytes;
use scylla::statement::{Consistency, SerialConsistency};

use super::append::{first_duplicate, sender_marks};
use super::reads::{MAX_IN_LIST, holds_client_msg, id_reads};
use super::rows::ClientId;
use super::rows::{id_from_db, id_to_db};
use super::statements::is_transaction;
use super::*;
use crate::config::{ReplicationConfig, ScyllaConfig};
use crate::store::{Direction, NewMessage, Range, StoreError};

fn msg(conv: u64, seq: u64) -> NewMessage {
    NewMessage {
        conversation_id: conv,
        seq,
        sender_id: "alice".into(),
        client_msg_id: format!("c{seq}"),
        encoded: Bytes::from_static(b"x"),
        target: None,
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
    // No statement uses a clustering IN list (ScyllaDB caps them at 100); the
    // one IN list is of partition keys (capped at 100 too), cut by `id_reads`.
    for (name, cql) in STATEMENTS {
        if cql.contains(" IN ") {
            assert_eq!(*name, "select_idempotency_in", "{cql}");
            assert!(cql.ends_with("AND sender_id = ? AND client_msg_id IN ?"), "{cql}");
        }
    }
}

#[test]
fn client_ids_are_read_per_sender_in_lists_of_at_most_100() {
    let cmids: Vec<String> = (0..250).map(|i| format!("c{i}")).collect();
    let mut ids: Vec<ClientId> = cmids.iter().map(|c| (7, "alice", c.as_str())).collect();
    ids.insert(3, (7, "bob", "c1"));
    ids.push((8, "alice", "c1"));
    let reads = id_reads(&ids);
    let shape: Vec<((u64, &str), usize)> = reads.iter().map(|(k, is)| (*k, is.len())).collect();
    assert_eq!(
        shape,
        [((7, "alice"), 100), ((7, "alice"), 100), ((7, "alice"), 50), ((7, "bob"), 1), ((8, "alice"), 1)]
    );
    assert_eq!(MAX_IN_LIST, 100);
    let mut all: Vec<usize> = reads.iter().flat_map(|(_, is)| is.iter().copied()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..ids.len()).collect::<Vec<_>>(), "every id read once");
    for ((conv, sender), is) in &reads {
        assert!(is.iter().all(|&i| (ids[i].0, ids[i].1) == (*conv, *sender)));
    }
    assert!(id_reads(&[]).is_empty(), "no client ids, no read");
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
    assert!(matches!(Inner::first_taken(part, &stored), Some(StoreError::SeqTaken { conversation_id: 30, seq: 2 })));
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
    assert_eq!(ddl.len(), 24);
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
    for table in ["message_buckets", "idempotency", "conversations_by_user", "support_queue", "users", "user_directory"]
    {
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
    assert!(msg(Some(SCHEMA_VERSION - 1)).contains("is older than this binary's 9; run `chatd migrate`"));
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
    cfg.store.backend = crate::config::StoreBackend::Scylla;
    cfg.store.scylla.nodes = vec!["127.0.0.1:1".into()];
    let e = match crate::store::Store::open(&cfg) {
        Ok(_) => panic!("opened nothing"),
        Err(e) => e.to_string(),
    };
    assert!(e.starts_with("cannot open store at scylla 127.0.0.1:1/chat"), "{e}");
    let e = crate::store::migrate(&cfg).unwrap_err().to_string();
    assert!(e.starts_with("cannot open store at scylla 127.0.0.1:1/chat"), "{e}");
}
