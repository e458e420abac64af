//! Reading the trail, sans-IO: the [`Filter`] an admin gives (user,
//! conversation, kinds, time range) and whether an entry passes it, the
//! opaque paging [`Cursor`], and the export formats ([`Format`]: JSON lines
//! and CSV). The scan that applies them to a store is `super::read`.

use super::event::EventKind;
use crate::store::audit::AuditRecord;

/// Which entries a reader wants; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The entry's actor or target user.
    pub user: String,
    /// The entry's conversation (0: any).
    pub conversation_id: u64,
    /// Event kinds by stored name (empty: any).
    pub kinds: Vec<String>,
    /// At or after, ms since the Unix epoch (0: no bound).
    pub since_ms: u64,
    /// Before, ms since the Unix epoch (0: no bound).
    pub until_ms: u64,
}

/// A filter that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A kind no event has.
    #[error("unknown audit event kind {0:?}")]
    UnknownKind(String),
    /// `until_ms` not after `since_ms`.
    #[error("until_ms must be after since_ms")]
    EmptyRange,
    /// A cursor this server did not give.
    #[error("the cursor is not one this server gave")]
    BadCursor,
    /// An export format other than jsonl or csv.
    #[error("unknown export format {0:?} (jsonl or csv)")]
    UnknownFormat(String),
}

impl Filter {
    /// Checks the filter's kinds and range.
    pub fn check(&self) -> Result<(), QueryError> {
        if let Some(k) = self.kinds.iter().find(|k| EventKind::parse(k).is_none()) {
            return Err(QueryError::UnknownKind(k.clone()));
        }
        if self.until_ms != 0 && self.until_ms <= self.since_ms {
            return Err(QueryError::EmptyRange);
        }
        Ok(())
    }

    /// Whether `e` passes.
    pub fn matches(&self, e: &AuditRecord) -> bool {
        (self.user.is_empty() || e.actor == self.user || e.target_user == self.user)
            && (self.conversation_id == 0 || e.conversation_id == self.conversation_id)
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && e.at_ms >= self.since_ms
            && (self.until_ms == 0 || e.at_ms < self.until_ms)
    }
}

/// Where a page ended: after `seq` of `chain` (chains are read in sorted order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The chain.
    pub chain: String,
    /// The last seq read of it.
    pub seq: u64,
}

impl Cursor {
    /// The opaque text form: `hex(chain).seq`.
    pub fn encode(&self) -> String {
        format!("{}.{}", hex::encode(&self.chain), self.seq)
    }

    /// Parses [`encode`](Self::encode)'s output (empty: the start, None).
    pub fn decode(s: &str) -> Result<Option<Cursor>, QueryError> {
        if s.is_empty() {
            return Ok(None);
        }
        let (chain, seq) = s.split_once('.').ok_or(QueryError::BadCursor)?;
        let chain = hex::decode(chain).ok().and_then(|c| String::from_utf8(c).ok()).ok_or(QueryError::BadCursor)?;
        let seq = seq.parse().map_err(|_| QueryError::BadCursor)?;
        Ok(Some(Cursor { chain, seq }))
    }
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header line.
    Csv,
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "chain,seq,at_ms,kind,actor,conversation_id,target_user,details,prev_hash,hash\n";

impl Format {
    /// `jsonl` or `csv`.
    pub fn parse(s: &str) -> Result<Format, QueryError> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(QueryError::UnknownFormat(other.to_owned())),
        }
    }

    /// The name, as parsed.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    /// What goes before the first entry.
    pub fn header(self) -> &'static str {
        match self {
            Format::Jsonl => "",
            Format::Csv => CSV_HEADER,
        }
    }

    /// One entry as a line (with its newline).
    pub fn line(self, e: &AuditRecord) -> String {
        match self {
            Format::Jsonl => {
                let mut s = serde_json::to_string(e).unwrap_or_default();
                s.push('\n');
                s
            }
            Format::Csv => {
                let (seq, at, conv) = (e.seq.to_string(), e.at_ms.to_string(), e.conversation_id.to_string());
                let fields =
                    [&e.chain, &seq, &at, &e.kind, &e.actor, &conv, &e.target_user, &e.details, &e.prev_hash, &e.hash];
                let mut s = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
                s.push('\n');
                s
            }
        }
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, actor: &str, conv: u64, target: &str, at: u64) -> AuditRecord {
        AuditRecord {
            kind: kind.into(),
            actor: actor.into(),
            conversation_id: conv,
            target_user: target.into(),
            at_ms: at,
            details: r#"{"a":"x, \"y\""}"#.into(),
            ..Default::default()
        }
    }

    #[test]
    fn filters_match_user_conversation_kind_and_range() {
        let e = entry("member.added", "alice", 7, "bob", 1000);
        assert!(Filter::default().matches(&e));
        assert!(Filter { user: "alice".into(), ..Default::default() }.matches(&e));
        assert!(Filter { user: "bob".into(), ..Default::default() }.matches(&e), "the target counts");
        assert!(!Filter { user: "carol".into(), ..Default::default() }.matches(&e));
        assert!(!Filter { conversation_id: 8, ..Default::default() }.matches(&e));
        assert!(Filter { kinds: vec!["member.added".into()], ..Default::default() }.matches(&e));
        assert!(!Filter { kinds: vec!["member.left".into()], ..Default::default() }.matches(&e));
        assert!(Filter { since_ms: 1000, until_ms: 1001, ..Default::default() }.matches(&e));
        assert!(!Filter { since_ms: 1001, ..Default::default() }.matches(&e));
        assert!(!Filter { until_ms: 1000, ..Default::default() }.matches(&e), "until is exclusive");
    }

    #[test]
    fn bad_filters_are_named() {
        let f = Filter { kinds: vec!["message.sent".into()], ..Default::default() };
        assert_eq!(f.check(), Err(QueryError::UnknownKind("message.sent".into())));
        assert_eq!(Filter { since_ms: 5, until_ms: 5, ..Default::default() }.check(), Err(QueryError::EmptyRange));
        assert_eq!(Filter::default().check(), Ok(()));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor { chain: "node-a".into(), seq: 42 };
        assert_eq!(Cursor::decode(&c.encode()), Ok(Some(c)));
        assert_eq!(Cursor::decode(""), Ok(None));
        for bad in ["x", "zz.1", "6e.", "6e.-1", "6e.1.2"] {
            assert_eq!(Cursor::decode(bad), Err(QueryError::BadCursor), "{bad}");
        }
    }

    #[test]
    fn csv_quotes_and_jsonl_round_trips() {
        let e = entry("member.added", "alice", 7, "bob", 1000);
        let line = Format::Csv.line(&e);
        assert!(line.contains(r#","{""a"":""x, \""y\""""}","#), "{line}");
        assert_eq!(Format::Csv.header().split(',').count(), 10);
        assert!(line.starts_with(",0,1000,member.added,alice,7,bob,"), "{line}");
        let back: AuditRecord = serde_json::from_str(Format::Jsonl.line(&e).trim_end()).unwrap();
        assert_eq!(back, e);
        assert_eq!(Format::parse("xml"), Err(QueryError::UnknownFormat("xml".into())));
    }
}
