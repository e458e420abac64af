//! Reading a whole conversation forward, a page at a time ([`Pages`]): what
//! exports and transcripts walk, so none holds more than a page of it.

use super::{Direction, MessageStore, Range, StoreResult};
use bytes::Bytes;

/// Messages read per page.
pub const PAGE: usize = 512;

/// A conversation's messages after a seq, page by page, in seq order.
#[derive(Debug, Clone)]
pub struct Pages {
    conversation_id: u64,
    after: u64,
    done: bool,
}

impl Pages {
    /// The messages of `conversation_id` after `after`.
    pub fn new(conversation_id: u64, after: u64) -> Self {
        Self { conversation_id, after, done: false }
    }

    /// The next page: `(seq, encoded message)`s, None after the last.
    pub async fn next(&mut self, store: &impl MessageStore) -> StoreResult<Option<Vec<(u64, Bytes)>>> {
        if self.done {
            return Ok(None);
        }
        let range = Range { after: self.after, before: u64::MAX, limit: PAGE, direction: Direction::Forward };
        let page = store.read_range(self.conversation_id, range).await?;
        self.done = page.len() < PAGE;
        match page.last() {
            Some((seq, _)) => self.after = *seq,
            None => return Ok(None),
        }
        Ok(Some(page))
    }
}
