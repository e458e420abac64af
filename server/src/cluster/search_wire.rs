//! The search envelopes nodes exchange (`SearchRequest`, `SearchAnswer` of
//! `cluster.proto`), between their generated types and the index's own
//! ([`IndexQuery`], [`Answer`]): encoding, the size cap of an answer, and
//! checked decoding (a query out of the request limits, or a hit without its
//! key, is an error, never a guess). It publishes nothing (`search.rs` does).

use super::wire::{Malformed, encode};
use crate::search::merge::{self, Answer};
use crate::search::rules::{MAX_LIMIT, MAX_QUERY_BYTES};
use crate::search::{IndexHit, IndexQuery, SortKey};
use bytes::Bytes;
use chat_protocol::cluster::v1::envelope::Body;
use chat_protocol::cluster::v1::{SearchAnswer, SearchHit, SearchKey, SearchQuery, SearchRequest};

/// Most bytes of hits in one answer (a pub/sub message): past it the answer
/// is cut and marked truncated (see [`merge::cap_answer`]).
pub(super) const MAX_ANSWER_BYTES: usize = 1024 * 1024;

fn key_msg(k: SortKey) -> SearchKey {
    SearchKey { time_ms: k.time_ms, conversation_id: k.conversation_id, seq: k.seq }
}

fn sort_key(k: SearchKey) -> SortKey {
    SortKey { time_ms: k.time_ms, conversation_id: k.conversation_id, seq: k.seq }
}

/// A search request envelope from `from`.
pub(super) fn request(from: &str, req_id: u64, q: &IndexQuery) -> Bytes {
    let query = SearchQuery {
        text: q.text.clone(),
        conversations: q.conversations.clone(),
        sender_id: q.sender_id.clone().unwrap_or_default(),
        from_ms: q.from_ms.unwrap_or(0),
        to_ms: q.to_ms.unwrap_or(0),
        has_attachment: q.has_attachment,
        attachment_type: q.attachment_type.clone().unwrap_or_default(),
        after: q.after.map(key_msg),
        limit: u32::try_from(q.limit).unwrap_or(u32::MAX),
    };
    encode(from, Body::Search(SearchRequest { req_id, query: Some(query) }))
}

/// The query a request asks for, checked against the limits of a client's request.
pub(super) fn query(r: SearchRequest) -> Result<IndexQuery, Malformed> {
    let q = r.query.ok_or(Malformed::Search("no query"))?;
    if q.limit == 0 || q.limit as usize > MAX_LIMIT {
        return Err(Malformed::Search("limit out of range"));
    }
    if q.text.len() > MAX_QUERY_BYTES {
        return Err(Malformed::Search("query text too long"));
    }
    Ok(IndexQuery {
        text: q.text,
        conversations: q.conversations,
        sender_id: Some(q.sender_id).filter(|s| !s.is_empty()),
        from_ms: Some(q.from_ms).filter(|x| *x != 0),
        to_ms: Some(q.to_ms).filter(|x| *x != 0),
        has_attachment: q.has_attachment,
        attachment_type: Some(q.attachment_type).filter(|s| !s.is_empty()),
        after: q.after.map(sort_key),
        limit: q.limit as usize,
    })
}

fn hit_msg(h: IndexHit) -> SearchHit {
    SearchHit {
        key: Some(key_msg(h.key)),
        sender_id: h.sender_id,
        snippet: h.snippet,
        highlights: h.highlights.into_iter().flat_map(|(s, e)| [s, e]).collect(),
        message: h.encoded.into(),
    }
}

/// An answer envelope from `from`: the hits (cut to [`MAX_ANSWER_BYTES`]), or why none.
pub(super) fn answer(from: &str, req_id: u64, result: Result<Vec<IndexHit>, String>) -> Bytes {
    let a = match result {
        Ok(hits) => {
            let size =
                |h: &IndexHit| h.encoded.len() + h.snippet.len() + h.sender_id.len() + 8 * h.highlights.len() + 32;
            let capped = merge::cap_answer(hits, MAX_ANSWER_BYTES, size);
            SearchAnswer {
                req_id,
                hits: capped.hits.into_iter().map(hit_msg).collect(),
                truncated: capped.truncated,
                error: String::new(),
            }
        }
        Err(error) => SearchAnswer { req_id, error, ..Default::default() },
    };
    encode(from, Body::SearchAnswer(a))
}

/// What an answer says: the node's hits, or why it has none.
pub(super) fn answered(a: SearchAnswer) -> Result<Answer, String> {
    if !a.error.is_empty() {
        return Err(a.error);
    }
    let mut hits = Vec::with_capacity(a.hits.len());
    for h in a.hits {
        let (Some(key), true) = (h.key, h.highlights.len() % 2 == 0) else {
            return Err(Malformed::Search("a hit without its key or with half a highlight").to_string());
        };
        hits.push(IndexHit {
            key: sort_key(key),
            sender_id: h.sender_id,
            snippet: h.snippet,
            highlights: h.highlights.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
            encoded: h.message.to_vec(),
        });
    }
    if hits.windows(2).any(|w| w[0].key <= w[1].key) {
        return Err(Malformed::Search("hits out of order").to_string());
    }
    Ok(Answer { hits, truncated: a.truncated })
}

#[cfg(test)]
mod tests {
    use super::super::wire::decode;
    use super::*;

    /// What a node of this build sends: any later build must keep every byte.
    const REQUEST: &str = "0a066e6f64652d6152230807121f0a03666565120307090b1a03626f62200a286430014206080510061807480a";
    const ANSWER: &str = "0a066e6f64652d615a1a080712160a06080510061807120363617a1a0166220400010203";
    const FAILED: &str = "0a066e6f64652d615a09080722056f6f707321";

    fn q() -> IndexQuery {
        IndexQuery {
            text: "fee".into(),
            conversations: vec![7, 9, 11],
            sender_id: Some("bob".into()),
            from_ms: Some(10),
            to_ms: Some(100),
            has_attachment: true,
            attachment_type: None,
            after: Some(SortKey { time_ms: 5, conversation_id: 6, seq: 7 }),
            limit: 10,
        }
    }

    fn hit() -> IndexHit {
        IndexHit {
            key: SortKey { time_ms: 5, conversation_id: 6, seq: 7 },
            sender_id: "caz".into(),
            snippet: "f".into(),
            highlights: vec![(0, 1), (2, 3)],
            encoded: vec![],
        }
    }

    #[test]
    fn golden_search_envelopes() {
        assert_eq!(hex::encode(request("node-a", 7, &q())), REQUEST);
        assert_eq!(hex::encode(answer("node-a", 7, Ok(vec![hit()]))), ANSWER);
        assert_eq!(hex::encode(answer("node-a", 7, Err("oops!".into()))), FAILED);
        let Some(Body::Search(r)) = decode(&hex::decode(REQUEST).unwrap()).unwrap().body else { panic!("a request") };
        assert_eq!(r.req_id, 7);
        assert_eq!(query(r).unwrap(), q());
        let Some(Body::SearchAnswer(a)) = decode(&hex::decode(ANSWER).unwrap()).unwrap().body else { panic!() };
        assert_eq!(answered(a).unwrap(), Answer::complete(vec![hit()]));
        let Some(Body::SearchAnswer(a)) = decode(&hex::decode(FAILED).unwrap()).unwrap().body else { panic!() };
        assert_eq!(answered(a).unwrap_err(), "oops!");
    }

    #[test]
    fn bad_requests_and_answers_get_a_precise_error() {
        let req = |f: fn(&mut SearchQuery)| {
            let Some(Body::Search(mut r)) = decode(&request("n", 1, &q())).unwrap().body else { panic!() };
            f(r.query.as_mut().unwrap());
            query(r).unwrap_err().to_string()
        };
        assert!(req(|q| q.limit = 0).contains("limit out of range"));
        assert!(req(|q| q.limit = 101).contains("limit out of range"));
        assert!(req(|q| q.text = "a".repeat(MAX_QUERY_BYTES + 1)).contains("too long"));
        assert!(query(SearchRequest { req_id: 1, query: None }).unwrap_err().to_string().contains("no query"));
        let no_key = SearchAnswer { hits: vec![SearchHit::default()], ..Default::default() };
        assert!(answered(no_key).unwrap_err().contains("without its key"));
        let half =
            SearchAnswer { hits: vec![SearchHit { highlights: vec![1], ..hit_msg(hit()) }], ..Default::default() };
        assert!(answered(half).unwrap_err().contains("half a highlight"));
        let twice = SearchAnswer { hits: vec![hit_msg(hit()), hit_msg(hit())], ..Default::default() };
        assert!(answered(twice).unwrap_err().contains("out of order"));
    }

    #[test]
    fn a_large_answer_is_cut_and_says_so() {
        let big = |seq| IndexHit { key: SortKey { seq, ..hit().key }, encoded: vec![0; MAX_ANSWER_BYTES / 3], ..hit() };
        let bytes = answer("n", 1, Ok((0..5).rev().map(big).collect()));
        assert!(bytes.len() < MAX_ANSWER_BYTES + 1024);
        let Some(Body::SearchAnswer(a)) = decode(&bytes).unwrap().body else { panic!() };
        let a = answered(a).unwrap();
        assert_eq!((a.hits.len(), a.truncated), (2, true));
    }
}
