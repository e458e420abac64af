//! The conformance suite every [`MessageStore`] backend must pass.
//!
//! Written against the trait only. A backend provides a [`ConformanceFactory`]
//! and invokes [`conformance_tests!`](crate::conformance_tests) with it in an
//! integration test; that expands to one `#[tokio::test]` per case, so each
//! case is reported on its own:
//!
//! ```ignore
//! mod embedded {
//!     chat_server::conformance_tests!(crate::EmbeddedFactory::default());
//! }
//! ```
//!
//! Each case takes the factory and makes the stores it needs; the cases panic
//! (as tests do) when the backend breaks the contract. The cases live by
//! subject: `messages` (appends, reads, seqs, concurrency), `idempotency`
//! (client message ids, lookups and duplicates refused by the append) and
//! `records` (conversations, members, watermarks, users, epoch, reopening).

mod idempotency;
mod messages;
mod records;

use bytes::Bytes;
use chat_protocol::v1::{ConversationKind, MemberRole, SupportState};

pub use idempotency::*;
pub use messages::*;
pub use records::*;

use super::{ConversationRecord, Direction, MemberRecord, MessageStore, NewMessage, Range};

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
}

/// Tells, past the test harness's output capture, that a case was skipped.
pub fn report_skip(case: &str, why: &str) {
    use std::io::Write;
    // Written to the stream directly: libtest captures only `print!`-family output.
    let _ = writeln!(std::io::stderr(), "{case}: skipped: {why}");
}

/// Expands to one `#[tokio::test]` per conformance case, each run against a
/// store made by the given factory expression (a [`ConformanceFactory`]).
///
/// The invoking crate needs `tokio` with the `macros` and `rt-multi-thread`
/// features.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            append_then_read_back,
            read_forward_pages,
            read_backward_pages,
            read_range_bounds,
            last_seq_follows_appends,
            seq_taken_writes_nothing,
            idempotency_lookup,
            idempotency_answers_only_stored_messages,
            duplicates_write_nothing_and_are_named,
            a_lost_seq_leaves_no_duplicate,
            a_duplicate_fails_only_its_call,
            concurrent_appends_all_land,
            concurrent_duplicate_seq_one_wins,
            create_if_absent,
            update_conversation_replaces,
            member_indexes_in_step,
            watermarks_only_move_forward,
            append_moves_sender_watermarks,
            support_queue_follows_state,
            users_upsert_and_get,
            epoch_per_store,
            reopen_keeps_everything,
        );
    };
    (@cases $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let mut factory = $factory;
                if let Some(why) = $crate::store::conformance::ConformanceFactory::skip(&factory) {
                    $crate::store::conformance::report_skip(stringify!($case), &why);
                    return;
                }
                $crate::store::conformance::$case(&mut factory).await;
            }
        )+
    };
}

// ---------------------------------------------------------------- helpers

/// The payload of message `seq` in conversation `conv`: binary, varied in
/// length, unique per (conv, seq).
fn payload(conv: u64, seq: u64) -> Bytes {
    let mut bytes = format!("conv {conv} seq {seq} ").into_bytes();
    bytes.extend_from_slice(&[0x00, 0xff, 0x0a, 0x80]);
    bytes.extend((0..(seq % 37)).map(|i| (i as u8).wrapping_mul(31) ^ conv as u8));
    Bytes::from(bytes)
}

fn msg(conv: u64, seq: u64) -> NewMessage {
    NewMessage {
        conversation_id: conv,
        seq,
        sender_id: format!("user-{}", seq % 3),
        client_msg_id: format!("cmid-{conv}-{seq}"),
        encoded: payload(conv, seq),
    }
}

fn msgs(conv: u64, seqs: impl IntoIterator<Item = u64>) -> Vec<NewMessage> {
    seqs.into_iter().map(|seq| msg(conv, seq)).collect()
}

fn expected(conv: u64, seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Bytes)> {
    seqs.into_iter().map(|seq| (seq, payload(conv, seq))).collect()
}

fn forward(after: u64, before: u64, limit: usize) -> Range {
    Range { after, before, limit, direction: Direction::Forward }
}

fn backward(after: u64, before: u64, limit: usize) -> Range {
    Range { after, before, limit, direction: Direction::Backward }
}

fn all() -> Range {
    forward(0, u64::MAX, usize::MAX)
}

fn conversation(
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

fn group(id: u64) -> ConversationRecord {
    conversation(id, ConversationKind::Group, 1_700_000_000_000 + id, SupportState::Unspecified)
}

fn support(id: u64, created_at_ms: u64, state: SupportState) -> ConversationRecord {
    conversation(id, ConversationKind::Support, created_at_ms, state)
}

fn member(conv: u64, user: &str) -> MemberRecord {
    MemberRecord {
        conversation_id: conv,
        user_id: user.into(),
        role: MemberRole::Member as i32,
        joined_at_ms: 1_700_000_000_000,
        delivered_seq: 0,
        read_seq: 0,
    }
}

async fn append_ok<S: MessageStore>(store: &S, batch: Vec<NewMessage>) {
    let what = batch.iter().map(|m| (m.conversation_id, m.seq)).collect::<Vec<_>>();
    if let Err(e) = store.append(batch).await {
        panic!("append of {what:?} failed: {e}");
    }
}

async fn read<S: MessageStore>(store: &S, conv: u64, range: Range) -> Vec<(u64, Bytes)> {
    match store.read_range(conv, range).await {
        Ok(page) => page,
        Err(e) => panic!("read_range({conv}, {range:?}) failed: {e}"),
    }
}

async fn member_ids<S: MessageStore>(store: &S, conv: u64) -> Vec<String> {
    let mut ids: Vec<String> = store.members(conv).await.expect("members").into_iter().map(|m| m.user_id).collect();
    ids.sort();
    ids
}

async fn user_convs<S: MessageStore>(store: &S, user: &str) -> Vec<u64> {
    let mut ids = store.user_conversations(user).await.expect("user_conversations");
    ids.sort_unstable();
    ids
}
