//! What the conformance cases share: the factory a backend provides, and
//! the helpers that make records and check reads. A leaf of the suite.

use bytes::Bytes;
use chat_protocol::v1::{ConversationKind, MemberRole, SupportState};

use crate::store::scylla::ScyllaSettings;
use crate::store::{ConversationRecord, Direction, MemberRecord, MessageStore, NewMessage, Range};

/// Makes stores for the suite.
#[allow(async_fn_in_trait)]
pub trait ConformanceFactory {
    /// The backend under test.
    type Store: MessageStore;

    /// A new, empty store with an epoch of its own.
    async fn fresh(&mut self) -> Self::Store;

    /// Closes `store` and opens the same data again (as after a restart).
    async fn reopen(&mut self, store: Self::Store) -> Self::Store;

    /// Why the suite cannot run here (e.g. no server to test against), if it
    /// cannot; each case then says so on stderr and passes without running.
    fn skip(&self) -> Option<String> {
        None
    }

    /// Removes what the case's stores left behind (a shared server's
    /// keyspaces); run after each case. Default: nothing.
    async fn cleanup(&mut self) {}
}

/// Tells, past the test harness's output capture, that a case was skipped.
pub fn report_skip(case: &str, why: &str) {
    use std::io::Write;
    // Written to the stream directly: libtest captures only `print!`-family output.
    let _ = writeln!(std::io::stderr(), "{case}: skipped: {why}");
}

/// Fresh keyspaces on the node(s) of `CHAT_SCYLLA_NODES` (`host:port`,
/// comma-separated), for the ScyllaDB runs of the conformance suites (the
/// message store's and the blob store's): each `chat_test_<random>`, with
/// SimpleStrategy replication factor 1 ([`ScyllaSettings::for_tests`]),
/// dropped by [`drop_all`](Self::drop_all).
#[derive(Debug)]
pub struct TestKeyspaces {
    nodes: Option<String>,
    made: Vec<String>,
}

impl TestKeyspaces {
    /// From the environment; none when `CHAT_SCYLLA_NODES` is unset or empty.
    pub fn from_env() -> Self {
        Self { nodes: std::env::var("CHAT_SCYLLA_NODES").ok().filter(|n| !n.trim().is_empty()), made: Vec::new() }
    }

    /// Why the ScyllaDB runs cannot happen here, if they cannot.
    pub fn skip(&self) -> Option<String> {
        self.nodes.is_none().then(|| "CHAT_SCYLLA_NODES not set".to_string())
    }

    /// The settings of a new keyspace name (not made yet), remembered to drop.
    pub fn fresh(&mut self) -> ScyllaSettings {
        let keyspace = format!("chat_test_{:016x}", rand::random::<u64>());
        self.made.push(keyspace.clone());
        Self::settings(&keyspace)
    }

    /// The settings of `keyspace` on the test nodes.
    pub fn settings(keyspace: &str) -> ScyllaSettings {
        ScyllaSettings::for_tests(keyspace).expect("CHAT_SCYLLA_NODES is set")
    }

    /// Drops every keyspace handed out.
    pub async fn drop_all(&mut self) {
        for ks in self.made.drain(..) {
            crate::store::scylla::drop_keyspace(&Self::settings(&ks)).await.expect("drop the test keyspace");
        }
    }
}

// ---------------------------------------------------------------- helpers

/// The payload of message `seq` in conversation `conv`: binary, varied in
/// length, unique per (conv, seq).
pub(super) fn payload(conv: u64, seq: u64) -> Bytes {
    let mut bytes = format!("conv {conv} seq {seq} ").into_bytes();
    bytes.extend_from_slice(&[0x00, 0xff, 0x0a, 0x80]);
    bytes.extend((0..(seq % 37)).map(|i| (i as u8).wrapping_mul(31) ^ conv as u8));
    Bytes::from(bytes)
}

pub(super) fn msg(conv: u64, seq: u64) -> NewMessage {
    NewMessage {
        conversation_id: conv,
        seq,
        sender_id: format!("user-{}", seq % 3),
        client_msg_id: format!("cmid-{conv}-{seq}"),
        encoded: payload(conv, seq),
        target: None,
    }
}

pub(super) fn msgs(conv: u64, seqs: impl IntoIterator<Item = u64>) -> Vec<NewMessage> {
    seqs.into_iter().map(|seq| msg(conv, seq)).collect()
}

pub(super) fn expected(conv: u64, seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Bytes)> {
    seqs.into_iter().map(|seq| (seq, payload(conv, seq))).collect()
}

pub(super) fn forward(after: u64, before: u64, limit: usize) -> Range {
    Range { after, before, limit, direction: Direction::Forward }
}

pub(super) fn backward(after: u64, before: u64, limit: usize) -> Range {
    Range { after, before, limit, direction: Direction::Backward }
}

pub(super) fn all() -> Range {
    forward(0, u64::MAX, usize::MAX)
}

pub(super) fn conversation(
    id: u64,
    kind: ConversationKind,
    created_at_ms: u64,
    support_state: SupportState,
) -> ConversationRecord {
    ConversationRecord {
        id,
        kind: kind as i32,
        title: format!("conversation {id}"),
        case_id: String::new(),
        created_by: "creator".into(),
        created_at_ms,
        archived_at_ms: 0,
        support_state: support_state as i32,
        e2e: false,
        retention_days: 0,
        legal_hold: false,
    }
}

pub(super) fn group(id: u64) -> ConversationRecord {
    conversation(id, ConversationKind::Group, 1_700_000_000_000 + id, SupportState::Unspecified)
}

pub(super) fn support(id: u64, created_at_ms: u64, state: SupportState) -> ConversationRecord {
    conversation(id, ConversationKind::Support, created_at_ms, state)
}

pub(super) fn member(conv: u64, user: &str) -> MemberRecord {
    MemberRecord {
        conversation_id: conv,
        user_id: user.into(),
        role: MemberRole::Member as i32,
        joined_at_ms: 1_700_000_000_000,
        delivered_seq: 0,
        read_seq: 0,
    }
}

pub(super) async fn append_ok<S: MessageStore>(store: &S, batch: Vec<NewMessage>) {
    let what = batch.iter().map(|m| (m.conversation_id, m.seq)).collect::<Vec<_>>();
    if let Err(e) = store.append(batch).await {
        panic!("append of {what:?} failed: {e}");
    }
}

pub(super) async fn read<S: MessageStore>(store: &S, conv: u64, range: Range) -> Vec<(u64, Bytes)> {
    match store.read_range(conv, range).await {
        Ok(page) => page,
        Err(e) => panic!("read_range({conv}, {range:?}) failed: {e}"),
    }
}

pub(super) async fn member_ids<S: MessageStore>(store: &S, conv: u64) -> Vec<String> {
    let mut ids: Vec<String> = store.members(conv).await.expect("members").into_iter().map(|m| m.user_id).collect();
    ids.sort();
    ids
}

pub(super) async fn user_convs<S: MessageStore>(store: &S, user: &str) -> Vec<u64> {
    let mut ids = store.user_conversations(user).await.expect("user_conversations");
    ids.sort_unstable();
    ids
}
