//! Full-text search: builds a tantivy index of `SEARCH_BENCH_N` messages
//! (default 1,000,000; Zipf-distributed words over a 30,000-word vocabulary,
//! 10,000 conversations, 2,000 senders) on disk, prints the indexing
//! throughput, then runs a few hundred mixed queries (common and rare
//! words, two words, phrases, prefixes, with sender and date filters) as a
//! user who is a member of 200 conversations, and prints their latency p50
//! and p99. Criterion then measures one typical query.
//!
//! `SEARCH_BENCH_N=20000 cargo bench -p bench --bench search` for a smoke run.
#![allow(missing_docs)]

use chat_protocol::v1::{self, MessageKind, message_body::Content};
use chat_server::search::tantivy::TantivyIndex;
use chat_server::search::{AttachmentFacets, IndexDoc, IndexOp, IndexQuery, SearchIndex};
use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

const VOCABULARY: usize = 30_000;
const CONVERSATIONS: u64 = 10_000;
const SENDERS: u64 = 2_000;
const MEMBER_OF: u64 = 200;
const QUERIES: usize = 400;
const START_MS: u64 = 1_780_000_000_000;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Words with a Zipf (s = 1.07) frequency, as in natural text.
struct Words {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new() -> Self {
        const LEGAL: &[&str] = &[
            "the",
            "of",
            "and",
            "to",
            "in",
            "is",
            "for",
            "on",
            "that",
            "with",
            "court",
            "hearing",
            "client",
            "contract",
            "deposition",
            "motion",
            "invoice",
            "settlement",
            "witness",
            "filing",
            "deadline",
            "counsel",
            "affidavit",
            "subpoena",
            "discovery",
            "appeal",
            "judge",
            "trial",
            "brief",
            "evidence",
        ];
        let mut words: Vec<String> = LEGAL.iter().map(|w| w.to_string()).collect();
        let syllables = ["ka", "lo", "mi", "ner", "sta", "vu", "tre", "pol", "dan", "zi", "rex", "mo"];
        let mut i = 0usize;
        while words.len() < VOCABULARY {
            let mut w = String::new();
            let mut n = i;
            loop {
                w.push_str(syllables[n % syllables.len()]);
                n /= syllables.len();
                if n == 0 {
                    break;
                }
            }
            if !LEGAL.contains(&w.as_str()) {
                words.push(w);
            }
            i += 1;
        }
        words.dedup();
        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(1.07);
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn pick(&self, rng: &mut Rng) -> &str {
        let total = *self.cumulative.last().expect("words");
        let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let i = self.cumulative.partition_point(|c| *c < x).min(self.words.len() - 1);
        &self.words[i]
    }

    fn sentence(&self, rng: &mut Rng) -> String {
        let n = 4 + rng.below(20);
        (0..n).map(|_| self.pick(rng)).collect::<Vec<_>>().join(" ")
    }
}

fn doc(rng: &mut Rng, words: &Words, i: u64) -> IndexDoc {
    let conversation_id = 1 + rng.below(CONVERSATIONS);
    let sender_id = format!("user{}", rng.below(SENDERS));
    let server_time_ms = START_MS + i * 1_000;
    let text = words.sentence(rng);
    let msg = v1::Message {
        conversation_id,
        seq: i + 1,
        sender_id: sender_id.clone(),
        body: Some(v1::MessageBody { content: Some(Content::Text(text.clone())) }),
        server_time_ms,
        kind: MessageKind::User as i32,
        ..Default::default()
    };
    IndexDoc {
        conversation_id,
        seq: i + 1,
        sender_id,
        server_time_ms,
        text,
        facets: AttachmentFacets::default(),
        encoded: msg.encode_to_vec(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn queries(rng: &mut Rng, words: &Words, n: u64, member_of: &[u64]) -> Vec<IndexQuery> {
    let base = IndexQuery { conversations: member_of.to_vec(), limit: 20, ..Default::default() };
    (0..QUERIES)
        .map(|i| {
            let (a, b) = (words.pick(rng).to_string(), words.pick(rng).to_string());
            let rare = &words.words[1_000 + rng.below(20_000) as usize];
            match i % 6 {
                0 => IndexQuery { text: a, ..base.clone() },
                1 => IndexQuery { text: rare.clone(), ..base.clone() },
                2 => IndexQuery { text: format!("{a} {b}"), ..base.clone() },
                3 => IndexQuery { text: format!("\"{a} {b}\""), ..base.clone() },
                4 => IndexQuery { text: format!("{}*", &rare[..rare.len().min(3)]), ..base.clone() },
                _ => IndexQuery {
                    text: a,
                    sender_id: Some(format!("user{}", rng.below(SENDERS))),
                    from_ms: Some(START_MS + rng.below(n.max(1)) * 500),
                    ..base.clone()
                },
            }
        })
        .collect()
}

fn search(c: &mut Criterion) {
    let n: u64 = std::env::var("SEARCH_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let index = TantivyIndex::open(&dir.path().join("search")).expect("index");
    let words = Words::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push(IndexOp::Upsert(doc(&mut rng, &words, i)));
        if batch.len() == 10_000 {
            index.apply(std::mem::take(&mut batch)).expect("apply");
        }
        if (i + 1) % 200_000 == 0 {
            index.commit().expect("commit");
        }
    }
    index.apply(batch).expect("apply");
    index.commit().expect("commit");
    let took = started.elapsed();
    println!(
        "search index: {n} messages in {:.1} s = {:.0} messages/s (generation included)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    let member_of: Vec<u64> = (0..MEMBER_OF).map(|_| 1 + rng.below(CONVERSATIONS)).collect();
    let qs = queries(&mut rng, &words, n, &member_of);
    let mut lat: Vec<Duration> = Vec::with_capacity(qs.len());
    let mut found = 0usize;
    for q in &qs {
        let t = Instant::now();
        found += index.query(q).expect("query").len();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "search query ({} mixed queries, member of {MEMBER_OF} of {CONVERSATIONS} conversations, {found} hits): \
         p50 {:.2} ms, p99 {:.2} ms",
        qs.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
    );

    let typical = IndexQuery { text: "deposition".into(), ..qs[0].clone() };
    let mut g = c.benchmark_group("search");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.bench_function("query_one_word_member_of_200", |b| b.iter(|| index.query(black_box(&typical))));
    g.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
