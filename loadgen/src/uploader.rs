//! The uploaders of `attachments`: users who, besides their chat, upload
//! files in a loop, each on another connection of theirs (a second device)
//! with a UDP socket of its own, so that megabytes of upload never queue
//! behind the chat clients' shared sockets inside the load generator. Each
//! file is unique (its first line names the run, the uploader and the
//! round), so the server's content-addressed store hashes and keeps every
//! one instead of finding it stored already; the rest of it is text, which
//! passes the server's check by content. The outcome ([`UploadReport`]):
//! uploads completed, bytes, throughput, time per upload and refusals by
//! code; only the upload rate limit is an accepted refusal.

use crate::driver::Run;
use crate::population::Connector;
use crate::report::Percentiles;
use crate::scenario::{Plan, Uploads};
use anyhow::Context;
use chat_client::{Client, ClientError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

/// The declared type of every file: text, checked by the server byte by byte.
const MEDIA_TYPE: &str = "text/plain";
/// The one refusal a run may meet and still pass (`blobs.uploads_per_hour`).
const RATE_LIMITED: &str = "UPLOAD_RATE_EXCEEDED";
/// Pause after any other failure, so that a failing upload does not spin.
const AFTER_FAILURE: Duration = Duration::from_millis(200);
/// One line of the files' text (80 bytes).
const LINE: &[u8; 80] = b"The parties agree that the schedule of exhibits is attached hereto as Annex A.\r\n";

/// One uploading user, connected.
pub struct Uploader {
    /// User index.
    u: usize,
    /// Its user id (random per run).
    me: String,
    /// The conversations it belongs to (uploads go to them in turn).
    convs: Vec<u64>,
    client: Client,
    /// Drains the events of this second connection (they are not checked).
    drain: JoinHandle<()>,
}

/// What one uploader did.
#[derive(Debug, Default)]
struct Tally {
    completed: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
    /// Each completed upload's time, µs.
    took_us: Vec<u64>,
    /// When the last upload ended (µs of the run's clock).
    last_end_us: u64,
}

/// The uploads of a run.
#[derive(Debug, Clone, Serialize)]
pub struct UploadReport {
    /// Uploading users.
    pub uploaders: usize,
    /// Size of each file, bytes.
    pub file_bytes: u64,
    /// Uploads the server stored (answered `UploadOk`).
    pub completed: u64,
    /// Bytes of those.
    pub bytes: u64,
    /// Stored bytes per second, MiB/s, from the start of sending to the last upload's end.
    pub mib_per_s: f64,
    /// Time per completed upload, ms: p50.
    pub took_ms_p50: u64,
    /// Time per completed upload, ms: p99.
    pub took_ms_p99: u64,
    /// Failed uploads by error code (the server's code, or `TRANSPORT`, `DISCONNECTED`, ...).
    pub errors: BTreeMap<String, u64>,
    /// The first failure's text, if any.
    pub first_error: Option<String>,
}

impl UploadReport {
    /// Why the run fails because of its uploads: none completed, or a refusal other than the rate limit.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.completed == 0 {
            out.push("no upload completed".to_owned());
        }
        let failed: u64 = self.errors.iter().filter(|(code, _)| code.as_str() != RATE_LIMITED).map(|(_, n)| n).sum();
        if failed > 0 {
            out.push(format!("{failed} uploads failed ({})", self.first_error.as_deref().unwrap_or("?")));
        }
        out
    }

    /// The line of the human table.
    pub fn line(&self) -> String {
        let errors: Vec<String> = self.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        format!(
            "uploads: {} uploaders, {} files of {:.0} MiB stored, {:.1} MiB/s, {} ms p50 / {} ms p99 each; errors: {}",
            self.uploaders,
            self.completed,
            self.file_bytes as f64 / 1048576.0,
            self.mib_per_s,
            self.took_ms_p50,
            self.took_ms_p99,
            if errors.is_empty() { "none".to_owned() } else { errors.join(", ") }
        )
    }
}

/// Connects the plan's uploaders (the first users that belong to a
/// conversation), each a second time on a socket of its own.
pub async fn connect(plan: &Plan, up: Uploads, ids: &[u64], connector: &Connector) -> anyhow::Result<Vec<Uploader>> {
    let memberships = plan.memberships();
    let mut out = Vec::with_capacity(up.uploaders);
    for (u, convs) in memberships.iter().enumerate().filter(|(_, m)| !m.is_empty()).take(up.uploaders) {
        let cfg = connector.own_socket_config(u)?;
        let (client, mut events) = connector.connect(cfg).await.with_context(|| format!("uploader {u}"))?;
        let drain = tokio::spawn(async move { while events.next().await.is_some() {} });
        out.push(Uploader {
            u,
            me: connector.user_id(u),
            convs: convs.iter().map(|&ci| ids[ci]).collect(),
            client,
            drain,
        });
    }
    anyhow::ensure!(out.len() == up.uploaders, "only {} users belong to a conversation to upload to", out.len());
    Ok(out)
}

/// Starts every uploader: from `from_us` they upload one file after another
/// until `until_us` (the upload running then is finished); the report once
/// all have ended.
pub fn spawn(
    uploaders: Vec<Uploader>,
    up: Uploads,
    run: Arc<Run>,
    from_us: u64,
    until_us: u64,
) -> JoinHandle<UploadReport> {
    let body: Arc<Vec<u8>> = Arc::new(LINE.iter().copied().cycle().take(up.file_bytes as usize).collect());
    let n = uploaders.len();
    let tasks: Vec<_> = uploaders
        .into_iter()
        .map(|u| tokio::spawn(upload_loop(u, up.file_bytes, body.clone(), run.clone(), from_us, until_us)))
        .collect();
    tokio::spawn(async move {
        let mut all = Tally::default();
        for t in tasks {
            let Ok(t) = t.await else { continue };
            all.completed += t.completed;
            all.bytes += t.bytes;
            for (code, k) in t.errors {
                *all.errors.entry(code).or_default() += k;
            }
            all.first_error = all.first_error.or(t.first_error);
            all.took_us.extend(t.took_us);
            all.last_end_us = all.last_end_us.max(t.last_end_us);
        }
        let mut took = crate::driver::new_histogram();
        for &us in &all.took_us {
            took.saturating_record(us);
        }
        let took = Percentiles::of(&took);
        let secs = (all.last_end_us.saturating_sub(from_us) as f64 / 1e6).max(1e-3);
        UploadReport {
            uploaders: n,
            file_bytes: up.file_bytes,
            completed: all.completed,
            bytes: all.bytes,
            mib_per_s: all.bytes as f64 / 1048576.0 / secs,
            took_ms_p50: took.p50 / 1000,
            took_ms_p99: took.p99 / 1000,
            errors: all.errors,
            first_error: all.first_error,
        }
    })
}

/// One uploader's loop.
async fn upload_loop(up: Uploader, size: u64, body: Arc<Vec<u8>>, run: Arc<Run>, from_us: u64, until_us: u64) -> Tally {
    let mut t = Tally::default();
    tokio::time::sleep(Duration::from_micros(from_us.saturating_sub(run.now_us()))).await;
    let mut round = 0usize;
    while run.now_us() < until_us {
        let conv = up.convs[round % up.convs.len()];
        // A first line of its own: no two files of any run hash alike.
        let head = format!("Exhibit of {} round {round}\r\n", up.me);
        let data = head.as_bytes().chain(&body[..size as usize - head.len()]);
        let started = run.now_us();
        let name = format!("exhibit-{}-{round}.txt", up.u);
        match up.client.upload(conv, &name, MEDIA_TYPE, size, data, |_, _| {}).await {
            Ok(a) => {
                t.completed += 1;
                t.bytes += a.size;
                t.last_end_us = run.now_us();
                t.took_us.push(t.last_end_us - started);
            }
            Err(e) => {
                let (code, wait) = classify(&e);
                *t.errors.entry(code).or_default() += 1;
                t.first_error.get_or_insert_with(|| e.to_string());
                let left = Duration::from_micros(until_us.saturating_sub(run.now_us()));
                tokio::time::sleep(wait.min(left)).await;
            }
        }
        round += 1;
    }
    up.client.close().await;
    up.drain.abort();
    t
}

/// An upload failure's code for the report, and how long to wait before the next try.
fn classify(e: &ClientError) -> (String, Duration) {
    match e {
        ClientError::Server(w) => {
            let code = w.code().map_or_else(|| format!("CODE_{}", w.code), |c| c.as_str_name().to_owned());
            let code = code.strip_prefix("ERROR_CODE_").map(str::to_owned).unwrap_or(code);
            (code, w.retry_after.unwrap_or(AFTER_FAILURE))
        }
        ClientError::Transfer(_) => ("TRANSFER".to_owned(), AFTER_FAILURE),
        ClientError::Disconnected => ("DISCONNECTED".to_owned(), AFTER_FAILURE),
        _ => ("CLIENT".to_owned(), AFTER_FAILURE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(errors: &[(&str, u64)], completed: u64) -> UploadReport {
        UploadReport {
            uploaders: 2,
            file_bytes: 10 << 20,
            completed,
            bytes: completed * (10 << 20),
            mib_per_s: 1.0,
            took_ms_p50: 1,
            took_ms_p99: 2,
            errors: errors.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            first_error: errors.first().map(|(c, _)| c.to_string()),
        }
    }

    #[test]
    fn only_the_rate_limit_is_an_accepted_refusal() {
        assert!(report(&[], 3).reasons().is_empty());
        assert!(report(&[(RATE_LIMITED, 5)], 3).reasons().is_empty());
        assert_eq!(report(&[(RATE_LIMITED, 5), ("FILE_TOO_LARGE", 2)], 3).reasons().len(), 1);
        assert_eq!(report(&[], 0).reasons(), ["no upload completed"]);
    }
}
