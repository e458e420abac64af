//! The suite every [`SearchIndex`] backend passes, written against the
//! trait only: a backend calls [`run_all`] with a way to make fresh, empty
//! indexes (see the tantivy backend's tests). Each case panics, as tests
//! do, when the backend breaks the contract.

use super::{AttachmentFacets, IndexDoc, IndexOp, IndexQuery, SearchError, SearchIndex, SortKey};

/// Makes a fresh, empty index.
pub type Factory<'a> = &'a dyn Fn() -> Box<dyn SearchIndex>;

/// Runs every case, each on a fresh index.
pub fn run_all(make: Factory<'_>) {
    finds_a_word_with_its_highlight(&*make());
    an_upsert_replaces_and_a_remove_takes_out(&*make());
    only_the_given_conversations_are_searched(&*make());
    filters_combine(&*make());
    pages_run_newest_first_without_repeats(&*make());
    a_malformed_query_is_refused(&*make());
    clear_empties_the_index(&*make());
    close_keeps_what_was_applied_and_refuses_writes(&*make());
}

fn close_keeps_what_was_applied_and_refuses_writes(ix: &dyn SearchIndex) {
    ix.apply(vec![IndexOp::Upsert(doc(1, 1, "alice", 10, "closing argument"))]).expect("apply");
    ix.close().expect("close commits");
    assert_eq!(seqs(ix, &q("closing", &[1])), [(1, 1)], "applied before the close, searchable after it");
    assert!(ix.apply(vec![IndexOp::Upsert(doc(1, 2, "bob", 11, "late"))]).is_err(), "no writes after a close");
    ix.close().expect("a second close changes nothing");
}

/// A test document.
pub fn doc(conv: u64, seq: u64, sender: &str, time: u64, text: &str) -> IndexDoc {
    IndexDoc {
        conversation_id: conv,
        seq,
        sender_id: sender.into(),
        server_time_ms: time,
        text: text.into(),
        facets: AttachmentFacets::default(),
        encoded: format!("{conv}/{seq}").into_bytes(),
    }
}

fn put(ix: &dyn SearchIndex, docs: Vec<IndexDoc>) {
    ix.apply(docs.into_iter().map(IndexOp::Upsert).collect()).expect("apply");
    ix.commit().expect("commit");
}

fn q(text: &str, convs: &[u64]) -> IndexQuery {
    IndexQuery { text: text.into(), conversations: convs.to_vec(), limit: 100, ..Default::default() }
}

fn seqs(ix: &dyn SearchIndex, q: &IndexQuery) -> Vec<(u64, u64)> {
    ix.query(q).expect("query").iter().map(|h| (h.key.conversation_id, h.key.seq)).collect()
}

fn finds_a_word_with_its_highlight(ix: &dyn SearchIndex) {
    put(ix, vec![doc(1, 1, "alice", 10, "The Deposition is on Monday"), doc(1, 2, "bob", 11, "ok")]);
    let hits = ix.query(&q("deposition", &[1])).expect("query");
    assert_eq!(hits.len(), 1, "{hits:?}");
    let h = &hits[0];
    assert_eq!((h.key.seq, h.key.time_ms, h.sender_id.as_str()), (1, 10, "alice"));
    assert_eq!(h.encoded, b"1/1");
    let marked: Vec<&str> = h.highlights.iter().map(|(s, e)| &h.snippet[*s as usize..*e as usize]).collect();
    assert_eq!(marked, ["Deposition"], "snippet {:?}", h.snippet);
}

fn an_upsert_replaces_and_a_remove_takes_out(ix: &dyn SearchIndex) {
    put(ix, vec![doc(1, 1, "alice", 10, "meet at noon"), doc(1, 2, "alice", 11, "bring the contract")]);
    put(ix, vec![doc(1, 1, "alice", 10, "meet at three")]);
    assert!(seqs(ix, &q("noon", &[1])).is_empty(), "the old text is gone");
    assert_eq!(seqs(ix, &q("three", &[1])), [(1, 1)]);
    ix.apply(vec![IndexOp::Remove { conversation_id: 1, seq: 2 }]).expect("remove");
    ix.commit().expect("commit");
    assert!(seqs(ix, &q("contract", &[1])).is_empty());
    assert_eq!(seqs(ix, &q("", &[1])), [(1, 1)]);
}

fn only_the_given_conversations_are_searched(ix: &dyn SearchIndex) {
    put(ix, vec![doc(1, 1, "a", 10, "settlement"), doc(2, 1, "b", 11, "settlement"), doc(3, 1, "c", 12, "settlement")]);
    assert_eq!(seqs(ix, &q("settlement", &[1, 3])), [(3, 1), (1, 1)]);
    assert!(seqs(ix, &q("settlement", &[])).is_empty(), "no conversations, no hits");
}

fn filters_combine(ix: &dyn SearchIndex) {
    let mut with_pdf = doc(1, 3, "bob", 30, "invoice attached");
    with_pdf.facets = AttachmentFacets { has_attachment: true, types: vec!["application/pdf".into()] };
    put(ix, vec![doc(1, 1, "alice", 10, "invoice one"), doc(1, 2, "bob", 20, "invoice two"), with_pdf]);
    let all = q("invoice", &[1]);
    assert_eq!(seqs(ix, &IndexQuery { sender_id: Some("bob".into()), ..all.clone() }), [(1, 3), (1, 2)]);
    assert_eq!(seqs(ix, &IndexQuery { from_ms: Some(20), ..all.clone() }), [(1, 3), (1, 2)]);
    assert_eq!(seqs(ix, &IndexQuery { to_ms: Some(20), ..all.clone() }), [(1, 1)], "to_ms is exclusive");
    assert_eq!(seqs(ix, &IndexQuery { has_attachment: true, ..all.clone() }), [(1, 3)]);
    let pdf = IndexQuery { attachment_type: Some("application/pdf".into()), ..all.clone() };
    assert_eq!(seqs(ix, &pdf), [(1, 3)]);
    let png = IndexQuery { attachment_type: Some("image/png".into()), ..all };
    assert!(seqs(ix, &png).is_empty());
}

fn pages_run_newest_first_without_repeats(ix: &dyn SearchIndex) {
    // Equal times are ordered by conversation, then seq (descending).
    let docs: Vec<_> = (1..=25).map(|i| doc(1 + i % 2, i, "a", 100 + i / 3, "memo")).collect();
    put(ix, docs);
    let mut seen = Vec::new();
    let mut after: Option<SortKey> = None;
    loop {
        let page = ix.query(&IndexQuery { after, limit: 4, ..q("memo", &[1, 2]) }).expect("query");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|h| h.key);
        seen.extend(page.iter().map(|h| h.key));
    }
    let mut want = seen.clone();
    want.sort_by(|a, b| b.cmp(a));
    want.dedup();
    assert_eq!(seen.len(), 25);
    assert_eq!(seen, want, "every hit once, newest first");
}

fn a_malformed_query_is_refused(ix: &dyn SearchIndex) {
    put(ix, vec![doc(1, 1, "a", 1, "x")]);
    match ix.query(&q("body:(", &[1])) {
        Err(SearchError::Malformed(_)) => {}
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn clear_empties_the_index(ix: &dyn SearchIndex) {
    put(ix, vec![doc(1, 1, "a", 1, "x"), doc(2, 1, "a", 2, "x")]);
    ix.clear().expect("clear");
    ix.commit().expect("commit");
    assert!(seqs(ix, &q("", &[1, 2])).is_empty());
}
