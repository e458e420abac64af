//! `GetHistory`: a page of a conversation's messages, backwards from the
//! newest (or from `before_seq`) or forwards from `after_seq`, for members
//! (and staff on support conversations). Nothing at or below the
//! conversation's purge mark is read; the page says where the mark is.

use super::conversations::readable;
use super::request::{Requester, store_err};
use crate::store::retention::RetentionStore;
use crate::store::{Direction, MessageStore, Range};
use chat_protocol::WireError;
use chat_protocol::v1::{self, reply};
use prost::Message;

/// One page of history, with whether there is more beyond it.
pub async fn get(req: &Requester, h: v1::GetHistory) -> Result<reply::Result, WireError> {
    readable(req, h.conversation_id).await?;
    let max = req.ctx.shared.limits.max_history_page;
    let limit = if h.limit == 0 { 50 } else { h.limit.min(max) } as usize;
    // Purged seqs are gone for good: never read, and the client is told.
    let purged = req.store().purged_through(h.conversation_id).await.map_err(store_err)?;
    let (direction, after, before) = if h.after_seq > 0 {
        (Direction::Forward, h.after_seq.max(purged), if h.before_seq > 0 { h.before_seq } else { u64::MAX })
    } else {
        (Direction::Backward, purged, if h.before_seq > 0 { h.before_seq } else { u64::MAX })
    };
    let range = Range { after, before, limit: limit + 1, direction };
    let mut rows = req.store().read_range(h.conversation_id, range).await.map_err(store_err)?;
    let has_more = rows.len() > limit;
    if has_more {
        match direction {
            Direction::Forward => drop(rows.pop()),
            Direction::Backward => drop(rows.remove(0)),
        }
    }
    let messages = rows.iter().filter_map(|(_, b)| v1::Message::decode(b.as_ref()).ok()).collect();
    let history = v1::History { conversation_id: h.conversation_id, messages, has_more, purged_through: purged };
    Ok(reply::Result::History(history))
}
