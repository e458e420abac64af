//! The tantivy backend of [`SearchIndex`]: one index per node (on disk under
//! `data_dir/search`, or in memory for tests and benches), one writer used
//! by the indexer thread, a reader reloaded after each commit. A message is
//! a document keyed by "conversation:seq" (an upsert deletes that key and
//! adds the new document); the order is a collector of its own that keeps
//! the top `limit` keys (time, conversation, seq) below the cursor.

use super::{IndexDoc, IndexHit, IndexOp, IndexQuery, SearchError, SearchIndex, SearchResult, SortKey};
use std::collections::BinaryHeap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, TantivyDocument, Term,
};

/// Memory the writer may buffer before it writes a segment.
const WRITER_BYTES: usize = 50_000_000;
/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 160;

/// A query as built: the text part alone (for snippets; None: no text) and
/// the whole query with its filters.
type Built = (Option<Box<dyn Query>>, Box<dyn Query>);

/// The fields of a message document.
#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    conv: Field,
    seq: Field,
    time: Field,
    sender: Field,
    body: Field,
    has_attachment: Field,
    attachment_type: Field,
    message: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let f = Fields {
        key: b.add_text_field("key", STRING),
        conv: b.add_u64_field("conv", INDEXED | FAST),
        seq: b.add_u64_field("seq", FAST),
        time: b.add_u64_field("time", INDEXED | FAST),
        sender: b.add_text_field("sender", STRING | STORED),
        body: b.add_text_field("body", TEXT | STORED),
        has_attachment: b.add_bool_field("has_attachment", INDEXED),
        attachment_type: b.add_text_field("attachment_type", STRING),
        message: b.add_bytes_field("message", STORED),
    };
    (b.build(), f)
}

fn engine(e: impl std::fmt::Display) -> SearchError {
    SearchError::Engine(e.to_string())
}

fn key_of(conv: u64, seq: u64) -> String {
    format!("{conv}:{seq}")
}

/// A tantivy index of messages.
pub struct TantivyIndex {
    fields: Fields,
    /// None once closed.
    writer: Mutex<Option<IndexWriter>>,
    reader: IndexReader,
    parser: QueryParser,
}

impl TantivyIndex {
    /// Opens the index in `dir` (made if missing).
    pub fn open(dir: &Path) -> SearchResult<Self> {
        std::fs::create_dir_all(dir).map_err(engine)?;
        let mmap = MmapDirectory::open(dir).map_err(engine)?;
        let (schema, _) = schema();
        Self::with_index(Index::open_or_create(mmap, schema).map_err(engine)?)
    }

    /// An index in memory (tests, benches).
    pub fn in_memory() -> SearchResult<Self> {
        let (schema, _) = schema();
        Self::with_index(Index::create_in_ram(schema))
    }

    fn with_index(index: Index) -> SearchResult<Self> {
        let (_, fields) = schema();
        // One indexing thread: the node's cores belong to its shards.
        let writer = index.writer_with_num_threads(1, WRITER_BYTES).map_err(engine)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(engine)?;
        let mut parser = QueryParser::for_index(&index, vec![fields.body]);
        parser.set_conjunction_by_default();
        Ok(Self { fields, writer: Mutex::new(Some(writer)), reader, parser })
    }

    /// Runs `f` with the writer; an error once the index is closed.
    fn with_writer<T>(&self, f: impl FnOnce(&mut IndexWriter) -> SearchResult<T>) -> SearchResult<T> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        match w.as_mut() {
            Some(w) => f(w),
            None => Err(SearchError::Engine("the index is closed".into())),
        }
    }

    fn document(&self, d: &IndexDoc) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.key, key_of(d.conversation_id, d.seq));
        doc.add_u64(f.conv, d.conversation_id);
        doc.add_u64(f.seq, d.seq);
        doc.add_u64(f.time, d.server_time_ms);
        doc.add_text(f.sender, &d.sender_id);
        doc.add_text(f.body, &d.text);
        doc.add_bool(f.has_attachment, d.facets.has_attachment);
        for t in &d.facets.types {
            doc.add_text(f.attachment_type, t);
        }
        doc.add_bytes(f.message, &d.encoded);
        doc
    }

    /// The text query alone (for snippets) and the whole query with filters.
    fn build(&self, q: &IndexQuery) -> SearchResult<Built> {
        let f = &self.fields;
        let text = match q.text.trim() {
            "" => None,
            t => Some(self.parser.parse_query(t).map_err(|e| SearchError::Malformed(e.to_string()))?),
        };
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        must.push((Occur::Must, text.as_ref().map(|t| t.box_clone()).unwrap_or_else(|| Box::new(AllQuery))));
        let convs = q.conversations.iter().map(|c| Term::from_field_u64(f.conv, *c));
        must.push((Occur::Must, Box::new(TermSetQuery::new(convs))));
        let term = |t: Term| -> Box<dyn Query> { Box::new(TermQuery::new(t, IndexRecordOption::Basic)) };
        if let Some(s) = &q.sender_id {
            must.push((Occur::Must, term(Term::from_field_text(f.sender, s))));
        }
        if q.has_attachment {
            must.push((Occur::Must, term(Term::from_field_bool(f.has_attachment, true))));
        }
        if let Some(t) = &q.attachment_type {
            must.push((Occur::Must, term(Term::from_field_text(f.attachment_type, t))));
        }
        let upper = match (q.to_ms, q.after) {
            (Some(to), Some(after)) => Some(to.saturating_sub(1).min(after.time_ms)),
            (Some(to), None) => Some(to.saturating_sub(1)),
            (None, Some(after)) => Some(after.time_ms),
            (None, None) => None,
        };
        if q.from_ms.is_some() || upper.is_some() {
            let bound =
                |v: Option<u64>| v.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_u64(f.time, v)));
            must.push((Occur::Must, Box::new(RangeQuery::new(bound(q.from_ms), bound(upper)))));
        }
        Ok((text, Box::new(BooleanQuery::new(must))))
    }

    fn hit(
        &self,
        searcher: &tantivy::Searcher,
        snippets: Option<&SnippetGenerator>,
        key: SortKey,
        at: DocAddress,
    ) -> SearchResult<IndexHit> {
        let f = &self.fields;
        let doc: TantivyDocument = searcher.doc(at).map_err(engine)?;
        let text = doc.get_first(f.body).and_then(|v| v.as_str()).unwrap_or_default();
        let (snippet, highlights) = match snippets {
            Some(g) => {
                let s = g.snippet(text);
                let hl = s.highlighted().iter().map(|r| (r.start as u32, r.end as u32)).collect();
                (s.fragment().to_string(), hl)
            }
            None => (text.chars().take(SNIPPET_CHARS).collect(), Vec::new()),
        };
        // A snippet without a match in it (a hit on a prefix the generator
        // does not see): the text's beginning.
        let snippet = if snippet.is_empty() { text.chars().take(SNIPPET_CHARS).collect() } else { snippet };
        Ok(IndexHit {
            key,
            sender_id: doc.get_first(f.sender).and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            snippet,
            highlights,
            encoded: doc.get_first(f.message).and_then(|v| v.as_bytes()).unwrap_or_default().to_vec(),
        })
    }
}

impl SearchIndex for TantivyIndex {
    fn apply(&self, ops: Vec<IndexOp>) -> SearchResult<()> {
        self.with_writer(|w| {
            for op in ops {
                match op {
                    IndexOp::Upsert(d) => {
                        w.delete_term(Term::from_field_text(self.fields.key, &key_of(d.conversation_id, d.seq)));
                        w.add_document(self.document(&d)).map_err(engine)?;
                    }
                    IndexOp::Remove { conversation_id, seq } => {
                        w.delete_term(Term::from_field_text(self.fields.key, &key_of(conversation_id, seq)));
                    }
                }
            }
            Ok(())
        })
    }

    fn commit(&self) -> SearchResult<()> {
        self.with_writer(|w| w.commit().map(drop).map_err(engine))?;
        self.reader.reload().map_err(engine)
    }

    fn close(&self) -> SearchResult<()> {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut w) = writer else { return Ok(()) };
        w.commit().map_err(engine)?;
        // Dropping the writer (after its merges) releases the directory's lock.
        w.wait_merging_threads().map_err(engine)?;
        self.reader.reload().map_err(engine)
    }

    fn query(&self, q: &IndexQuery) -> SearchResult<Vec<IndexHit>> {
        let (text, query) = self.build(q)?;
        if q.conversations.is_empty() || q.limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(&*query, &Newest { limit: q.limit, before: q.after }).map_err(engine)?;
        let snippets = match &text {
            Some(t) => {
                let mut g = SnippetGenerator::create(&searcher, &**t, self.fields.body).map_err(engine)?;
                g.set_max_num_chars(SNIPPET_CHARS);
                Some(g)
            }
            None => None,
        };
        top.into_iter().map(|(key, at)| self.hit(&searcher, snippets.as_ref(), key, at)).collect()
    }

    fn clear(&self) -> SearchResult<()> {
        self.with_writer(|w| w.delete_all_documents().map(drop).map_err(engine))
    }
}

/// Collects the `limit` largest keys below `before`, largest first.
struct Newest {
    limit: usize,
    before: Option<SortKey>,
}

/// A candidate kept in a min-heap of the best so far.
type Ranked = std::cmp::Reverse<(SortKey, DocAddress)>;

struct NewestInSegment {
    limit: usize,
    before: Option<SortKey>,
    segment: u32,
    time: Column<u64>,
    conv: Column<u64>,
    seq: Column<u64>,
    heap: BinaryHeap<Ranked>,
}

impl Collector for Newest {
    type Fruit = Vec<(SortKey, DocAddress)>;
    type Child = NewestInSegment;

    fn for_segment(&self, segment: u32, reader: &SegmentReader) -> tantivy::Result<NewestInSegment> {
        let ff = reader.fast_fields();
        Ok(NewestInSegment {
            limit: self.limit,
            before: self.before,
            segment,
            time: ff.u64("time")?,
            conv: ff.u64("conv")?,
            seq: ff.u64("seq")?,
            heap: BinaryHeap::with_capacity(self.limit + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(SortKey, DocAddress)>>) -> tantivy::Result<Self::Fruit> {
        let mut all: Vec<_> = fruits.into_iter().flatten().collect();
        all.sort_by_key(|h| std::cmp::Reverse(h.0));
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for NewestInSegment {
    type Fruit = Vec<(SortKey, DocAddress)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let key = SortKey {
            time_ms: self.time.first(doc).unwrap_or(0),
            conversation_id: self.conv.first(doc).unwrap_or(0),
            seq: self.seq.first(doc).unwrap_or(0),
        };
        if self.before.is_some_and(|b| key >= b) {
            return;
        }
        if self.heap.len() == self.limit {
            match self.heap.peek() {
                Some(std::cmp::Reverse((worst, _))) if key > *worst => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(std::cmp::Reverse((key, DocAddress::new(self.segment, doc))));
    }

    fn harvest(self) -> Self::Fruit {
        let mut v: Vec<_> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_by_key(|h| std::cmp::Reverse(h.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_conformance_suite_in_memory() {
        super::super::conformance::run_all(&|| Box::new(TantivyIndex::in_memory().expect("index")));
    }

    #[test]
    fn a_closed_index_can_be_opened_again_in_the_same_process() {
        let d = tempfile::tempdir().expect("tempdir");
        let ix = TantivyIndex::open(d.path()).expect("index");
        let doc = super::super::conformance::doc(1, 1, "alice", 10, "retainer");
        ix.apply(vec![IndexOp::Upsert(doc)]).expect("apply");
        assert!(TantivyIndex::open(d.path()).is_err(), "one writer per directory");
        ix.close().expect("close");
        let again = TantivyIndex::open(d.path()).expect("opens once the first let go");
        let q = IndexQuery { text: "retainer".into(), conversations: vec![1], limit: 10, ..Default::default() };
        assert_eq!(again.query(&q).expect("query").len(), 1, "what was applied before the close is there");
    }

    #[test]
    fn passes_the_conformance_suite_on_disk() {
        let dirs = std::cell::RefCell::new(Vec::new());
        super::super::conformance::run_all(&|| {
            let d = tempfile::tempdir().expect("tempdir");
            let ix = TantivyIndex::open(d.path()).expect("index");
            dirs.borrow_mut().push(d);
            Box::new(ix)
        });
    }
}
