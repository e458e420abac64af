//! Full-text search over committed messages: the [`SearchIndex`] trait (what
//! any index must do: take upserts and removals, make them searchable on
//! commit, answer a filtered, paged, newest-first query with snippets), its
//! tantivy backend ([`tantivy`]), the indexer thread that feeds it from the
//! owners' commits off their path ([`indexer`]), the rules of a request
//! ([`rules`]: limits, cursors, sans-IO), the merge of several indexes'
//! answers into one page for a cluster-wide search ([`merge`], sans-IO),
//! the rebuild from the store
//! ([`rebuild`], `chatd reindex`) and the suite every backend passes
//! ([`conformance`]). What a user may see is decided by the caller of
//! [`SearchIndex::query`] (`crate::command::search`): the index restricts to
//! the conversation ids it is given and to nothing else.

pub mod conformance;
pub mod indexer;
pub mod merge;
pub mod rebuild;
pub mod rules;
pub mod tantivy;

use crate::store::NewMessage;
use bytes::Bytes;
use chat_protocol::v1::{self, MessageKind, message_body};
use prost::Message as _;

/// A failure of the index itself (not of the request).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The search engine failed (I/O, corrupt index...).
    #[error("search index: {0}")]
    Engine(String),
    /// The query text does not parse.
    #[error("query does not parse: {0}")]
    Malformed(String),
}

/// Result of an index operation.
pub type SearchResult<T> = Result<T, SearchError>;

/// One message as the index keeps it (its latest state).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDoc {
    /// Conversation.
    pub conversation_id: u64,
    /// Seq in it.
    pub seq: u64,
    /// Who sent it.
    pub sender_id: String,
    /// When the server took it (unix ms).
    pub server_time_ms: u64,
    /// Its text (empty for a message without text).
    pub text: String,
    /// Whether it carries attachments, and their types.
    pub facets: AttachmentFacets,
    /// The encoded `chat.v1.Message`, returned with a hit.
    pub encoded: Vec<u8>,
}

/// What a message's attachments let a search filter on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentFacets {
    /// At least one attachment.
    pub has_attachment: bool,
    /// Their content types (e.g. "application/pdf"), deduplicated.
    pub types: Vec<String>,
}

/// The attachment facets of a message: the one place that reads a message's
/// attachments for the index (their sniffed media types, deduplicated).
pub fn attachment_facets(msg: &v1::Message) -> AttachmentFacets {
    let mut types: Vec<String> = msg.attachments.iter().map(|a| a.media_type.clone()).collect();
    types.sort();
    types.dedup();
    AttachmentFacets { has_attachment: !msg.attachments.is_empty(), types }
}

/// One change to the index.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexOp {
    /// Add the message, or replace what is indexed at its (conversation, seq).
    Upsert(IndexDoc),
    /// Take the message at (conversation, seq) out.
    Remove {
        /// Conversation.
        conversation_id: u64,
        /// Seq.
        seq: u64,
    },
}

/// A query as the index runs it: the caller has resolved who may see what
/// into `conversations`, the only conversations a hit may come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexQuery {
    /// The user's query text (empty: every message that passes the filters).
    pub text: String,
    /// Conversations to search (empty: none, so no hits).
    pub conversations: Vec<u64>,
    /// Only this sender.
    pub sender_id: Option<String>,
    /// Sent at or after (unix ms).
    pub from_ms: Option<u64>,
    /// Sent before (unix ms).
    pub to_ms: Option<u64>,
    /// Only messages with an attachment.
    pub has_attachment: bool,
    /// Only messages with an attachment of this type.
    pub attachment_type: Option<String>,
    /// Only hits strictly after this one in the result order.
    pub after: Option<SortKey>,
    /// Hits wanted.
    pub limit: usize,
}

/// Where a hit stands in the result order: newest first, then by
/// conversation and seq, all descending. Compared as a tuple, a larger key
/// comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    /// Server time (unix ms).
    pub time_ms: u64,
    /// Conversation.
    pub conversation_id: u64,
    /// Seq.
    pub seq: u64,
}

/// One hit as the index returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexHit {
    /// Its place in the order (and its identity).
    pub key: SortKey,
    /// Who sent it.
    pub sender_id: String,
    /// An excerpt of the text around the match.
    pub snippet: String,
    /// Byte ranges of `snippet` that matched.
    pub highlights: Vec<(u32, u32)>,
    /// The encoded message.
    pub encoded: Vec<u8>,
}

/// What any full-text index of messages does. Changes are searchable after
/// the next [`commit`](SearchIndex::commit); a query sees the last commit.
pub trait SearchIndex: Send + Sync + 'static {
    /// Applies changes (not yet searchable).
    fn apply(&self, ops: Vec<IndexOp>) -> SearchResult<()>;
    /// Makes every applied change searchable.
    fn commit(&self) -> SearchResult<()>;
    /// Hits of `q`, in the result order, at most `q.limit`.
    fn query(&self, q: &IndexQuery) -> SearchResult<Vec<IndexHit>>;
    /// Removes everything (for a rebuild); searchable after commit.
    fn clear(&self) -> SearchResult<()>;
    /// Commits and lets go of the writer (and the directory's lock); writes
    /// after it fail. Queries still answer.
    fn close(&self) -> SearchResult<()>;
}

/// The index document of a message in its latest state (None: nothing to
/// index: not a user or system message, deleted, or end-to-end encrypted).
pub fn doc_of(msg: &v1::Message, encoded: &[u8]) -> Option<IndexDoc> {
    if !is_posted(msg.kind) || msg.deleted {
        return None;
    }
    let text = match msg.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(message_body::Content::Text(t)) => t.clone(),
        Some(message_body::Content::Ciphertext(_)) => return None,
        None => String::new(),
    };
    Some(IndexDoc {
        conversation_id: msg.conversation_id,
        seq: msg.seq,
        sender_id: msg.sender_id.clone(),
        server_time_ms: msg.server_time_ms,
        text,
        facets: attachment_facets(msg),
        encoded: encoded.to_vec(),
    })
}

/// What a message in its latest state means for the index: its document,
/// or its removal (deleted, or nothing left to find).
pub fn op_of_latest(conversation_id: u64, seq: u64, encoded: &[u8]) -> Option<IndexOp> {
    let msg = v1::Message::decode(encoded).ok()?;
    match doc_of(&msg, encoded) {
        Some(doc) => Some(IndexOp::Upsert(doc)),
        None if is_posted(msg.kind) => Some(IndexOp::Remove { conversation_id, seq }),
        None => None,
    }
}

/// One committed entry as the indexer receives it: shared buffers of what
/// the store wrote, taken on the owner's thread without decoding anything.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Conversation.
    pub conversation_id: u64,
    /// The encoded `chat.v1.Message` of the entry.
    pub encoded: Bytes,
    /// For an event: its target's seq and latest state.
    pub target: Option<(u64, Bytes)>,
}

/// The entries of a batch, for the indexer (reference counts only).
pub fn committed_of(batch: &[NewMessage]) -> Vec<Committed> {
    batch
        .iter()
        .map(|m| Committed {
            conversation_id: m.conversation_id,
            encoded: m.encoded.clone(),
            target: m.target.as_ref().map(|t| (t.seq, t.latest.clone())),
        })
        .collect()
}

/// Whether a message kind is a posted message (a user's or a service's
/// system message), not an event.
fn is_posted(kind: i32) -> bool {
    kind == MessageKind::User as i32 || kind == MessageKind::System as i32
}

/// The index changes of committed entries: each new user or system message is
/// indexed; an edit re-indexes its target with the new text and a delete
/// removes it (from the target's latest state written with the event);
/// reactions change nothing searchable.
pub fn ops_of_commit(batch: &[Committed]) -> Vec<IndexOp> {
    let mut ops = Vec::new();
    for m in batch {
        let Ok(msg) = v1::Message::decode(m.encoded.as_ref()) else { continue };
        match MessageKind::try_from(msg.kind) {
            Ok(MessageKind::User | MessageKind::System) => ops.extend(doc_of(&msg, &m.encoded).map(IndexOp::Upsert)),
            Ok(MessageKind::Edit | MessageKind::Delete) => {
                if let Some((seq, latest)) = &m.target {
                    ops.extend(op_of_latest(m.conversation_id, *seq, latest));
                }
            }
            _ => {}
        }
    }
    ops
}
