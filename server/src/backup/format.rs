//! The backup format, sans-IO: the partition files' record codec (a magic
//! header, then length-prefixed key/value records, then an end record with
//! the count), the streaming SHA-256 that every file's bytes go through, and
//! the manifest with its validation. It reads and writes through any
//! `Read`/`Write` and touches no file system itself.
//!
//! A partition file is `CHATBAK1`, then per record `key_len u32 BE | key |
//! value_len u32 BE | value`, then the end record `0xFFFF_FFFF | count u64
//! BE`. A file cut anywhere is caught (no end record) and so is one with
//! bytes after its end.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// The first bytes of every partition file.
pub const MAGIC: &[u8; 8] = b"CHATBAK1";
/// The version of this format, in the manifest.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name; a backup without it is incomplete.
pub const MANIFEST: &str = "manifest.json";
/// The key length that marks the end record.
const END: u32 = u32::MAX;
/// The longest key or value a record may hold (fjall's values are at most 4 GiB; keys 64 KiB).
const MAX_LEN: u32 = u32::MAX - 1;

/// What is wrong with a backup, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file ends before its end record.
    #[error("{file}: truncated at byte {offset} (no end record)")]
    Truncated {
        /// The file, relative to the backup directory.
        file: String,
        /// Where.
        offset: u64,
    },
    /// The file does not start with the magic header.
    #[error("{file}: not a chatd backup partition file (bad header)")]
    BadHeader {
        /// The file, relative to the backup directory.
        file: String,
    },
    /// The end record's count is not the number of records read.
    #[error("{file}: end record says {said} records, the file holds {read}")]
    BadCount {
        /// The file, relative to the backup directory.
        file: String,
        /// What the file or manifest says.
        said: u64,
        /// What was read.
        read: u64,
    },
    /// Bytes after the end record.
    #[error("{file}: {extra} unexpected bytes after the end record")]
    Trailing {
        /// The file, relative to the backup directory.
        file: String,
        /// How many.
        extra: u64,
    },
    /// The file's SHA-256 is not the manifest's.
    #[error("{file}: checksum mismatch (manifest {expected}, file {actual})")]
    Checksum {
        /// The file, relative to the backup directory.
        file: String,
        /// What the manifest says.
        expected: String,
        /// What the file is.
        actual: String,
    },
    /// The file's size is not the manifest's.
    #[error("{file}: {actual} bytes, the manifest says {expected}")]
    Size {
        /// The file, relative to the backup directory.
        file: String,
        /// What the manifest says.
        expected: u64,
        /// What the file is.
        actual: u64,
    },
    /// The manifest is missing, unreadable or breaks a rule.
    #[error("manifest: {0}")]
    Manifest(String),
    /// A key or value too long to encode.
    #[error("{file}: a record of {len} bytes is too long")]
    TooLong {
        /// The file, relative to the backup directory.
        file: String,
        /// Its length.
        len: usize,
    },
    /// Reading or writing failed.
    #[error("{file}: {source}")]
    Io {
        /// The file, relative to the backup directory.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(file: &str) -> impl FnOnce(std::io::Error) -> FormatError + '_ {
    move |source| FormatError::Io { file: file.to_string(), source }
}

/// A writer that hashes (SHA-256) and counts every byte it passes on.
pub struct Hashing<W> {
    inner: W,
    hash: ring::digest::Context,
    bytes: u64,
}

impl<W> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, hash: ring::digest::Context::new(&ring::digest::SHA256), bytes: 0 }
    }

    /// The inner writer, the hex SHA-256 and the byte count of what passed.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hash.finish().as_ref()), self.bytes)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The hex SHA-256 and length of everything `r` yields.
pub fn digest(file: &str, mut r: impl Read) -> Result<(String, u64), FormatError> {
    let mut sink = Hashing::new(std::io::sink());
    std::io::copy(&mut r, &mut sink).map_err(io(file))?;
    let (_, sha, bytes) = sink.finish();
    Ok((sha, bytes))
}

/// Writes one partition file's records to `w`.
pub struct RecordWriter<W> {
    w: W,
    file: String,
    count: u64,
}

impl<W: Write> RecordWriter<W> {
    /// Starts the file `file` (its name for errors) with the header.
    pub fn new(mut w: W, file: &str) -> Result<Self, FormatError> {
        w.write_all(MAGIC).map_err(io(file))?;
        Ok(Self { w, file: file.to_string(), count: 0 })
    }

    /// Appends one record.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        for part in [key, value] {
            let len = u32::try_from(part.len())
                .ok()
                .filter(|&l| l <= MAX_LEN)
                .ok_or_else(|| FormatError::TooLong { file: self.file.clone(), len: part.len() })?;
            self.w.write_all(&len.to_be_bytes()).map_err(io(&self.file))?;
            self.w.write_all(part).map_err(io(&self.file))?;
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the end record; returns the writer and the record count.
    pub fn finish(mut self) -> Result<(W, u64), FormatError> {
        self.w.write_all(&END.to_be_bytes()).map_err(io(&self.file))?;
        self.w.write_all(&self.count.to_be_bytes()).map_err(io(&self.file))?;
        self.w.flush().map_err(io(&self.file))?;
        Ok((self.w, self.count))
    }
}

/// One key/value record.
pub type Record = (Vec<u8>, Vec<u8>);

/// Reads one partition file's records back, checking its structure.
pub struct RecordReader<R> {
    r: R,
    file: String,
    offset: u64,
    count: u64,
    done: bool,
}

impl<R: Read> RecordReader<R> {
    /// Opens the records of `file` (its name for errors), checking the header.
    pub fn new(mut r: R, file: &str) -> Result<Self, FormatError> {
        let mut magic = [0u8; 8];
        match r.read_exact(&mut magic) {
            Ok(()) if &magic == MAGIC => {}
            Ok(()) => return Err(FormatError::BadHeader { file: file.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(FormatError::BadHeader { file: file.to_string() });
            }
            Err(e) => return Err(io(file)(e)),
        }
        Ok(Self { r, file: file.to_string(), offset: 8, count: 0, done: false })
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(FormatError::Truncated { file: self.file.clone(), offset: self.offset })
            }
            Err(e) => Err(io(&self.file)(e)),
        }
    }

    fn len(&mut self) -> Result<u32, FormatError> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn bytes(&mut self, len: u32) -> Result<Vec<u8>, FormatError> {
        // Read in steps: a corrupt length must not allocate 4 GiB up front.
        let mut out = Vec::with_capacity((len as usize).min(1 << 20));
        let mut rest = len as usize;
        let mut chunk = [0u8; 8192];
        while rest > 0 {
            let n = rest.min(chunk.len());
            self.exact(&mut chunk[..n])?;
            out.extend_from_slice(&chunk[..n]);
            rest -= n;
        }
        Ok(out)
    }

    /// The next record; None after the end record (checked: count, nothing after).
    pub fn next_record(&mut self) -> Result<Option<Record>, FormatError> {
        if self.done {
            return Ok(None);
        }
        let klen = self.len()?;
        if klen == END {
            let mut b = [0u8; 8];
            self.exact(&mut b)?;
            let said = u64::from_be_bytes(b);
            if said != self.count {
                return Err(FormatError::BadCount { file: self.file.clone(), said, read: self.count });
            }
            let mut extra = Vec::new();
            self.r.read_to_end(&mut extra).map_err(io(&self.file))?;
            if !extra.is_empty() {
                return Err(FormatError::Trailing { file: self.file.clone(), extra: extra.len() as u64 });
            }
            self.done = true;
            return Ok(None);
        }
        let key = self.bytes(klen)?;
        let vlen = self.len()?;
        let value = self.bytes(vlen)?;
        self.count += 1;
        Ok(Some((key, value)))
    }

    /// Records read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// One partition (fjall keyspace) in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    /// The keyspace's name.
    pub name: String,
    /// Its file, relative to the backup directory.
    pub file: String,
    /// Records in it.
    pub records: u64,
    /// The file's length.
    pub bytes: u64,
    /// The file's SHA-256, hex.
    pub sha256: String,
}

/// One copied file (an attachment blob, the audit chain id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its path, relative to the backup directory and to the data directory alike.
    pub path: String,
    /// Its length.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// `manifest.json`: what a complete backup holds; written last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// The chatd version that wrote it.
    pub chatd_version: String,
    /// The store's layout version (`meta/layout`).
    pub layout: String,
    /// The store's epoch at the snapshot (a restore makes a new one).
    pub epoch: String,
    /// When the snapshot was taken, ms since the Unix epoch.
    pub snapshot_ms: u64,
    /// The snapshot's fjall sequence number.
    pub snapshot_seqno: u64,
    /// Every keyspace, in the store's order.
    pub partitions: Vec<PartitionEntry>,
    /// Every other file: attachment blobs under `blobs/`, `audit/chain_id`.
    pub files: Vec<FileEntry>,
}

/// Whether `path` is a safe relative path inside a backup (or a data directory):
/// plain components only, no `..`, not absolute, not empty.
pub fn safe_relative(path: &str) -> bool {
    !path.is_empty() && std::path::Path::new(path).components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

impl Manifest {
    /// Parses and checks a manifest: its format version, that every file
    /// path is safe and appears once, that partitions are named once, and
    /// that checksums are SHA-256 hex.
    pub fn parse(text: &[u8]) -> Result<Self, FormatError> {
        let m: Manifest = serde_json::from_slice(text).map_err(|e| FormatError::Manifest(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    /// The rules of [`Manifest::parse`].
    pub fn check(&self) -> Result<(), FormatError> {
        let bad = |s: String| Err(FormatError::Manifest(s));
        if self.format != FORMAT_VERSION {
            return bad(format!(
                "format {} is not {FORMAT_VERSION} (written by chatd {})",
                self.format, self.chatd_version
            ));
        }
        if self.partitions.is_empty() {
            return bad("no partitions".into());
        }
        let mut names = std::collections::HashSet::new();
        let mut paths = std::collections::HashSet::new();
        let all =
            self.partitions.iter().map(|p| (&p.file, &p.sha256)).chain(self.files.iter().map(|f| (&f.path, &f.sha256)));
        for p in &self.partitions {
            if !names.insert(&p.name) {
                return bad(format!("partition {} listed twice", p.name));
            }
        }
        for (path, sha) in all {
            if !safe_relative(path) || path == MANIFEST {
                return bad(format!("unsafe or reserved path {path:?}"));
            }
            if !paths.insert(path) {
                return bad(format!("file {path} listed twice"));
            }
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad(format!("{path}: sha256 {sha:?} is not 64 hex digits"));
            }
        }
        Ok(())
    }
}

/// Compares a file's measured length and digest with its manifest entry.
pub fn check_file(file: &str, expected: (&str, u64), actual: (&str, u64)) -> Result<(), FormatError> {
    if expected.1 != actual.1 {
        return Err(FormatError::Size { file: file.to_string(), expected: expected.1, actual: actual.1 });
    }
    if !expected.0.eq_ignore_ascii_case(actual.0) {
        return Err(FormatError::Checksum {
            file: file.to_string(),
            expected: expected.0.to_string(),
            actual: actual.0.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut w = RecordWriter::new(Vec::new(), "p.bin").unwrap();
        for (k, v) in records {
            w.push(k, v).unwrap();
        }
        w.finish().unwrap().0
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
        let mut r = RecordReader::new(bytes, "p.bin")?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok(out)
    }

    #[test]
    fn records_round_trip_including_empty_ones() {
        let recs: [(&[u8], &[u8]); 3] = [(b"a", b"1"), (b"", b""), (&[0xff; 300], &[7; 70_000])];
        let got = decode(&encode(&recs)).unwrap();
        assert_eq!(got.len(), 3);
        for ((k, v), (gk, gv)) in recs.iter().zip(&got) {
            assert_eq!((&k[..], &v[..]), (&gk[..], &gv[..]));
        }
        assert!(decode(&encode(&[])).unwrap().is_empty());
    }

    #[test]
    fn a_truncated_file_is_caught_at_every_cut() {
        let bytes = encode(&[(b"key", b"value"), (b"k2", b"v2")]);
        for cut in 8..bytes.len() {
            match decode(&bytes[..cut]) {
                Err(FormatError::Truncated { file, .. }) => assert_eq!(file, "p.bin"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        assert!(matches!(decode(&bytes[..5]), Err(FormatError::BadHeader { .. })));
    }

    #[test]
    fn trailing_bytes_and_a_wrong_count_are_caught() {
        let mut bytes = encode(&[(b"key", b"value")]);
        bytes.push(0);
        assert!(matches!(decode(&bytes), Err(FormatError::Trailing { extra: 1, .. })));
        let mut bytes = encode(&[(b"key", b"value")]);
        let n = bytes.len();
        bytes[n - 1] = 2;
        assert!(matches!(decode(&bytes), Err(FormatError::BadCount { said: 2, read: 1, .. })));
    }

    #[test]
    fn hashing_writer_matches_digest_and_check_file_names_the_file() {
        let bytes = encode(&[(b"k", b"v")]);
        let mut w = Hashing::new(Vec::new());
        w.write_all(&bytes).unwrap();
        let (out, sha, n) = w.finish();
        assert_eq!(out, bytes);
        assert_eq!(digest("x", &bytes[..]).unwrap(), (sha.clone(), n));
        check_file("x", (&sha, n), (&sha, n)).unwrap();
        let err = check_file("partitions/messages.bin", (&sha, n), (&"0".repeat(64), n)).unwrap_err();
        assert!(err.to_string().starts_with("partitions/messages.bin: checksum mismatch"), "{err}");
        assert!(matches!(check_file("x", (&sha, n), (&sha, n + 1)), Err(FormatError::Size { .. })));
    }

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            chatd_version: "0".into(),
            layout: "fjall-2".into(),
            epoch: "e".into(),
            snapshot_ms: 1,
            snapshot_seqno: 2,
            partitions: vec![PartitionEntry {
                name: "messages".into(),
                file: "partitions/messages.bin".into(),
                records: 0,
                bytes: 20,
                sha256: "a".repeat(64),
            }],
            files: vec![FileEntry { path: "blobs/ab/abcd".into(), bytes: 3, sha256: "b".repeat(64) }],
        }
    }

    #[test]
    fn manifest_round_trips_and_its_rules_hold() {
        let m = manifest();
        assert_eq!(Manifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap(), m);
        let refused = |m: Manifest| Manifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap_err().to_string();
        let mut bad = manifest();
        bad.format = 9;
        assert!(refused(bad).contains("format 9"));
        let mut bad = manifest();
        bad.files[0].path = "../etc/passwd".into();
        assert!(refused(bad).contains("unsafe"));
        let mut bad = manifest();
        bad.files[0].path = "/abs".into();
        assert!(refused(bad).contains("unsafe"));
        let mut bad = manifest();
        bad.files.push(bad.files[0].clone());
        assert!(refused(bad).contains("listed twice"));
        let mut bad = manifest();
        bad.partitions[0].sha256 = "xyz".into();
        assert!(refused(bad).contains("64 hex"));
        let mut bad = manifest();
        bad.partitions.clear();
        assert!(refused(bad).contains("no partitions"));
        assert!(Manifest::parse(b"{").unwrap_err().to_string().starts_with("manifest: "));
    }
}
