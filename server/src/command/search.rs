//! `Search`: full-text search across the caller's conversations, run on the
//! session's shard. It resolves who may see what at query time — the
//! conversations the caller is a member of now, narrowed by the
//! conversation-level filters (one conversation, case id, kind) — into the
//! set of conversation ids the index may answer from, then asks the index
//! (on the blocking pool: a query reads the disk) and shapes the hits. The
//! request's rules are `crate::search::rules`.
//!
//! In a cluster each node's index holds what that node's owners committed,
//! so the same query (with the same conversation set and `after` key) also
//! goes to every other live node through the broker, and the answers are
//! merged by the index's order (`crate::search::merge`): the page, and the
//! cursor made from its last hit, are the same whichever node serves it. A
//! node that fails or does not answer in time fails the search
//! (`UNAVAILABLE`, retryable) rather than give a silently partial page.

use super::request::{Requester, err, store_err};
use crate::conversation::no_access;
use crate::search::merge::{self, Answer};
use crate::search::rules::{self, RequestError};
use crate::search::{IndexHit, IndexQuery, SearchError};
use crate::store::MessageStore;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, reply};
use prost::Message as _;

/// Answers a `Search` with a page of hits, newest first.
pub async fn search(req: &Requester, s: v1::Search) -> Result<reply::Result, WireError> {
    let Some(search) = &req.ctx.shared.search else {
        return Err(err(ErrorCode::SearchDisabled, "search is turned off on this server"));
    };
    let checked = rules::check(&s).map_err(|e| e.to_wire())?;
    let conversations = visible(req, &s, checked.kind).await?;
    let q = IndexQuery {
        text: s.query.clone(),
        conversations,
        sender_id: Some(s.sender_id.clone()).filter(|x| !x.is_empty()),
        from_ms: Some(s.from_ms).filter(|x| *x != 0),
        to_ms: Some(s.to_ms).filter(|x| *x != 0),
        has_attachment: s.has_attachment,
        attachment_type: Some(s.attachment_type.clone()).filter(|x| !x.is_empty()),
        after: checked.after,
        limit: checked.limit,
    };
    let index = search.index();
    let (local, others) = match &req.ctx.shared.broker {
        Some(broker) => {
            let local_q = q.clone();
            let local = tokio::task::spawn_blocking(move || index.query(&local_q));
            futures_util::future::join(local, broker.search_others(q)).await
        }
        None => (tokio::task::spawn_blocking(move || index.query(&q)).await, Ok(Vec::new())),
    };
    let found = local.map_err(|_| err(ErrorCode::Unavailable, "search failed; retry"))?;
    let hits = match found {
        Ok(h) => h,
        Err(SearchError::Malformed(why)) => return Err(RequestError::QueryMalformed(why).to_wire()),
        Err(e @ SearchError::Engine(_)) => {
            tracing::error!(error = %e, "search query failed");
            return Err(err(ErrorCode::Unavailable, "search is unavailable; retry"));
        }
    };
    let mut answers = others?;
    answers.push(Answer::complete(hits));
    let page = merge::merge(answers, checked.limit);
    let next_cursor = match page.hits.last() {
        Some(last) if page.more => rules::encode_cursor(last.key, checked.fingerprint),
        _ => String::new(),
    };
    Ok(reply::Result::Search(v1::SearchResults { hits: page.hits.into_iter().map(to_wire).collect(), next_cursor }))
}

/// The conversations the caller may search now, after the
/// conversation-level filters. A conversation named by the filter that the
/// caller is not in is refused like any other (not found).
async fn visible(req: &Requester, s: &v1::Search, kind: Option<v1::ConversationKind>) -> Result<Vec<u64>, WireError> {
    let store = req.store();
    let convs = match s.conversation_id {
        0 => store.user_conversations(&req.caller.user).await.map_err(store_err)?,
        c => match store.member(c, &req.caller.user).await.map_err(store_err)? {
            Some(_) => vec![c],
            None => return Err(no_access(c)),
        },
    };
    if kind.is_none() && s.case_id.is_empty() {
        return Ok(convs);
    }
    let mut out = Vec::with_capacity(convs.len());
    for c in convs {
        if let Some(rec) = store.get_conversation(c).await.map_err(store_err)?
            && rules::conversation_matches(s, kind, rec.kind, &rec.case_id)
        {
            out.push(c);
        }
    }
    Ok(out)
}

fn to_wire(h: IndexHit) -> v1::SearchHit {
    v1::SearchHit {
        conversation_id: h.key.conversation_id,
        seq: h.key.seq,
        sender_id: h.sender_id,
        server_time_ms: h.key.time_ms,
        snippet: h.snippet,
        highlights: h.highlights.into_iter().map(|(start, end)| v1::Highlight { start, end }).collect(),
        message: v1::Message::decode(h.encoded.as_slice()).ok(),
    }
}
