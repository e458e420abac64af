//! `chatd reindex`: rebuilds a node's search index from the store — every
//! conversation, every message in its latest state (a history read already
//! returns edits applied and deletes emptied) — repairing whatever a full
//! indexer queue or a lost index directory left out.

use super::{IndexOp, SearchIndex, doc_of};
use crate::store::{Direction, MessageStore, Range, Store};
use chat_protocol::v1;
use prost::Message as _;

/// Messages read from the store per page.
const PAGE: usize = 1_000;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Conversations read.
    pub conversations: usize,
    /// Messages indexed.
    pub messages: usize,
}

/// A failure of a rebuild.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Writing the index failed.
    #[error(transparent)]
    Index(#[from] super::SearchError),
}

/// Empties `index` and fills it again from `store`, then commits.
pub async fn rebuild(store: &Store, index: &dyn SearchIndex) -> Result<Rebuilt, RebuildError> {
    index.clear()?;
    let mut done = Rebuilt::default();
    for conv in store.conversation_ids().await? {
        done.conversations += 1;
        let mut after = 0;
        loop {
            let range = Range { after, before: u64::MAX, limit: PAGE, direction: Direction::Forward };
            let rows = store.read_range(conv, range).await?;
            let Some((last, _)) = rows.last() else { break };
            after = *last;
            let mut ops = Vec::with_capacity(rows.len());
            for (_, bytes) in &rows {
                if let Ok(m) = v1::Message::decode(bytes.as_ref())
                    && let Some(doc) = doc_of(&m, bytes)
                {
                    ops.push(IndexOp::Upsert(doc));
                }
            }
            done.messages += ops.len();
            index.apply(ops)?;
            if rows.len() < PAGE {
                break;
            }
        }
    }
    index.commit()?;
    Ok(done)
}
