//! The outbox's optional file ([`crate::ClientConfig::outbox_file`]): what
//! waits for its stored-ack outlives the process, so an application that
//! quits (or crashes) with messages unsent sends them, once and with their
//! original `client_msg_id`, the next time it connects with the same file.
//!
//! The file is an append-only log of records `kind (u8) | len (u32 LE) |
//! check (u32 LE, the first 4 bytes of the SHA-256 of the payload) | payload`:
//! a *put* carries an encoded `Command` (its body holds the client message
//! id), a *done* carries the client message id it ends. A put is on disk
//! (`sync_data`) before the send goes out; a done is not synced (a lost one
//! only makes a send go again, which its id makes harmless). Reading stops
//! at the first torn or corrupt record (a crash mid-append) and the file is
//! rewritten with what is still pending, as it is whenever done records
//! outnumber pending ones.

use chat_protocol::v1::{Command, command::Body};
use prost::Message as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const PUT: u8 = 1;
const DONE: u8 = 2;
const HEADER: usize = 9;
/// Largest payload a record may carry (a send is far below it).
const MAX_RECORD: usize = 4 << 20;
/// Done records tolerated before a rewrite (and only while they outnumber pending ones).
const COMPACT_AFTER: usize = 256;

fn check(payload: &[u8]) -> [u8; 4] {
    let d = ring::digest::digest(&ring::digest::SHA256, payload);
    [d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]
}

/// One record, encoded.
fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&check(payload));
    out.extend_from_slice(payload);
    out
}

/// A pending send's record.
fn put_record(body: &Body) -> Vec<u8> {
    record(PUT, &Command { id: 0, body: Some(body.clone()) }.encode_to_vec())
}

/// The sends a log leaves pending, in the order they were put; and whether
/// it ended cleanly (false: a torn or corrupt tail was ignored).
fn replay(mut log: &[u8]) -> (Vec<Body>, bool) {
    let mut pending: Vec<(String, Body)> = Vec::new();
    while !log.is_empty() {
        if log.len() < HEADER {
            return (pending.into_iter().map(|(_, b)| b).collect(), false);
        }
        let kind = log[0];
        let len = u32::from_le_bytes([log[1], log[2], log[3], log[4]]) as usize;
        let Some(payload) = log.get(HEADER..HEADER + len).filter(|_| len <= MAX_RECORD) else {
            return (pending.into_iter().map(|(_, b)| b).collect(), false);
        };
        if log[5..9] != check(payload) {
            return (pending.into_iter().map(|(_, b)| b).collect(), false);
        }
        match kind {
            PUT => match Command::decode(payload).ok().and_then(|c| c.body) {
                Some(body) => {
                    let id = crate::outbox::client_msg_id_of(&body).to_string();
                    pending.retain(|(p, _)| *p != id);
                    pending.push((id, body));
                }
                None => return (pending.into_iter().map(|(_, b)| b).collect(), false),
            },
            DONE => {
                let id = String::from_utf8_lossy(payload);
                pending.retain(|(p, _)| *p != id);
            }
            _ => return (pending.into_iter().map(|(_, b)| b).collect(), false),
        }
        log = &log[HEADER + len..];
    }
    (pending.into_iter().map(|(_, b)| b).collect(), true)
}

/// The outbox's file, open for appending.
#[derive(Debug)]
pub(crate) struct OutboxFile {
    path: PathBuf,
    file: File,
    /// Sends put and not yet done.
    pending: usize,
    /// Done records since the last rewrite.
    done: usize,
}

impl OutboxFile {
    /// Opens (or creates) the file at `path`: the sends it still holds, oldest first.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Body>)> {
        let mut log = Vec::new();
        match File::open(path) {
            Ok(mut f) => drop(f.read_to_end(&mut log)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (pending, clean) = replay(&log);
        if !clean {
            tracing::warn!(path = %path.display(), "the outbox file ended in a torn or corrupt record; it was ignored");
        }
        let file = rewrite(path, &pending)?;
        Ok((Self { path: path.to_path_buf(), file, pending: pending.len(), done: 0 }, pending))
    }

    /// Records a pending send, on disk before this returns.
    pub fn put(&mut self, body: &Body) -> io::Result<()> {
        self.file.write_all(&put_record(body))?;
        self.file.sync_data()?;
        self.pending += 1;
        Ok(())
    }

    /// Records that a send ended (acked, or refused for good); `still` are
    /// the sends that remain, for a rewrite when done records pile up.
    pub fn done<'a>(&mut self, client_msg_id: &str, still: impl Iterator<Item = &'a Body>) -> io::Result<()> {
        self.file.write_all(&record(DONE, client_msg_id.as_bytes()))?;
        self.pending = self.pending.saturating_sub(1);
        self.done += 1;
        if self.done >= COMPACT_AFTER && self.done > self.pending {
            let still: Vec<Body> = still.cloned().collect();
            self.file = rewrite(&self.path, &still)?;
            (self.pending, self.done) = (still.len(), 0);
        }
        Ok(())
    }
}

/// Replaces the file at `path` with `pending` alone (a new file, synced,
/// then renamed over the old one); open for appending.
fn rewrite(path: &Path, pending: &[Body]) -> io::Result<File> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        for b in pending {
            f.write_all(&put_record(b))?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable once the folder is.
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::v1::SendMessage;

    fn send(id: &str) -> Body {
        Body::SendMessage(SendMessage { conversation_id: 7, client_msg_id: id.into(), ..Default::default() })
    }

    fn ids(bodies: &[Body]) -> Vec<String> {
        bodies.iter().map(|b| crate::outbox::client_msg_id_of(b).to_string()).collect()
    }

    #[test]
    fn replay_keeps_what_is_not_done_in_order() {
        let mut log = Vec::new();
        for id in ["a", "b", "c"] {
            log.extend(put_record(&send(id)));
        }
        log.extend(record(DONE, b"b"));
        // Put again (a rewrite raced a crash): still once, at its latest place.
        log.extend(put_record(&send("a")));
        assert_eq!(replay(&log), (vec![send("c"), send("a")], true));
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_ignored_not_fatal() {
        let mut log = put_record(&send("a"));
        let whole = log.len();
        log.extend(put_record(&send("b")));
        // Cut in the middle of b: a survives.
        assert_eq!(replay(&log[..log.len() - 3]), (vec![send("a")], false));
        assert_eq!(replay(&log[..whole + 4]), (vec![send("a")], false));
        // A flipped byte in b's payload: its check fails.
        let last = log.len() - 1;
        log[last] ^= 0x55;
        assert_eq!(ids(&replay(&log).0), vec!["a"]);
        // An unknown kind, an absurd length: the same.
        let mut odd = put_record(&send("a"));
        odd.extend(record(9, b"x"));
        assert_eq!(replay(&odd), (vec![send("a")], false));
        let mut huge = put_record(&send("a"));
        huge.extend([PUT, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        assert_eq!(replay(&huge), (vec![send("a")], false));
    }

    #[test]
    fn the_file_outlives_the_process_and_compacts() {
        let dir = std::env::temp_dir().join(format!("outbox-test-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("outbox.log");
        let (mut f, restored) = OutboxFile::open(&path).unwrap();
        assert!(restored.is_empty());
        let all: Vec<Body> = (0..600).map(|i| send(&format!("m{i}"))).collect();
        for b in &all {
            f.put(b).unwrap();
        }
        // All but the last 10 end; done records pile up and the file is rewritten.
        for (i, b) in all.iter().enumerate().take(590) {
            f.done(crate::outbox::client_msg_id_of(b), all[i + 1..].iter()).unwrap();
        }
        drop(f);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(len < 600 * put_record(&all[0]).len() / 4, "compacted: {len} bytes");
        let (_f, restored) = OutboxFile::open(&path).unwrap();
        assert_eq!(ids(&restored), (590..600).map(|i| format!("m{i}")).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
