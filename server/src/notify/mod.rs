//! Offline notifications: the per-node webhook sender. A [`Job`] (one
//! member with no connected device, one new message) waits in a bounded
//! queue, is posted as JSON signed with HMAC-SHA256 over the timestamp and
//! body ([`sign`]), and is retried with exponential backoff ([`retry_delay`])
//! up to `notify.max_attempts`; what fails or finds the queue full is logged
//! and counted. It runs on a thread of its own, so a slow receiver never
//! touches a shard. Who is notified is decided above it (the conversation
//! owner's debounce, then presence). The service accounts' event webhooks
//! ([`hooks`]) are posted the same way.

pub mod hooks;
mod http;

use crate::config::NotifyConfig;
use crate::metrics::NotifyMetrics;
use bytes::Bytes;
use ring::hmac;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};

/// Requests in flight at once per node.
const CONCURRENCY: usize = 16;

pub use http::{EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// One notification: the JSON body posted to the webhook.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Job {
    /// Always `"message"`.
    pub event: &'static str,
    /// Who is told (a member with no connected device).
    pub recipient_id: String,
    /// Where the message is.
    pub conversation_id: u64,
    /// Its seq.
    pub seq: u64,
    /// Who sent it.
    pub sender_id: String,
    /// Their display name ("" if unknown).
    pub sender_name: String,
    /// When it was stored, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// Messages after the recipient's read mark.
    pub unread: u64,
    /// The text, only with `notify.include_content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The signature header's value for `body` signed at `timestamp`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1={}", hex::encode(ctx.sign().as_ref()))
}

/// The wait before attempt `attempt` (1: the second try): 1 s doubling, at most 60 s.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// The sending half, held by the server; dropping it stops the thread.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Job>,
    metrics: NotifyMetrics,
}

impl std::fmt::Debug for NotifyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifyMetrics")
    }
}

impl Notifier {
    /// Starts the sender thread for `cfg` (None when the webhook is off).
    pub fn start(cfg: &NotifyConfig, metrics: NotifyMetrics) -> std::io::Result<Option<Self>> {
        if !cfg.enabled() {
            return Ok(None);
        }
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let target = http::Target::parse(&cfg.webhook_url).map_err(std::io::Error::other)?;
        let cfg = Arc::new(cfg.clone());
        let m = metrics.clone();
        std::thread::Builder::new().name("chatd-notify".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match rt {
                Ok(rt) => rt.block_on(run(rx, cfg, Arc::new(target), m)),
                Err(e) => tracing::error!(error = %e, "notification thread cannot start"),
            }
        })?;
        Ok(Some(Self { tx, metrics }))
    }

    /// Queues `job` without waiting; a full queue drops it (counted).
    pub fn enqueue(&self, job: Job) {
        if self.tx.try_send(job).is_err() {
            self.metrics.dropped.increment(1);
            tracing::warn!("notification queue full; one notification dropped");
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Job>, cfg: Arc<NotifyConfig>, target: Arc<http::Target>, m: NotifyMetrics) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(job) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (cfg, target, m) = (cfg.clone(), target.clone(), m.clone());
        tokio::spawn(async move {
            deliver(&cfg, &target, &m, job).await;
            drop(slot);
        });
    }
}

/// Posts one notification until the receiver takes it or attempts run out.
async fn deliver(cfg: &NotifyConfig, target: &http::Target, m: &NotifyMetrics, job: Job) {
    let body = Bytes::from(serde_json::to_vec(&job).unwrap_or_default());
    let timeout = Duration::from_millis(cfg.timeout_ms);
    if post_signed(target, cfg.secret.as_bytes(), body, None, timeout, cfg.max_attempts).await {
        m.sent.increment(1);
        return;
    }
    m.failed.increment(1);
    tracing::warn!(
        recipient = %job.recipient_id,
        conv = job.conversation_id,
        seq = job.seq,
        attempts = cfg.max_attempts,
        "notification given up"
    );
}

/// Posts `body` signed with `secret` (and its `event` header, if any) until
/// the receiver answers 2xx or `attempts` run out, backing off between
/// them; whether it was taken.
async fn post_signed(
    target: &http::Target,
    secret: &[u8],
    body: Bytes,
    event: Option<&str>,
    timeout: Duration,
    attempts: u32,
) -> bool {
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(retry_delay(attempt)).await;
        }
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let sig = sign(secret, ts, &body);
        match tokio::time::timeout(timeout, target.post(body.clone(), ts, &sig, event)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => return true,
            Ok(Ok(status)) => tracing::debug!(status, attempt, "webhook request refused by the receiver"),
            Ok(Err(e)) => tracing::debug!(error = %e, attempt, "webhook request not delivered"),
            Err(_) => tracing::debug!(attempt, "webhook request timed out"),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let s = sign(b"k", 1_700_000_000, b"{}");
        assert!(s.starts_with("v1=") && s.len() == 3 + 64, "{s}");
        assert_ne!(s, sign(b"k", 1_700_000_001, b"{}"), "another time");
        assert_ne!(s, sign(b"k", 1_700_000_000, b"{ }"), "another body");
        assert_ne!(s, sign(b"j", 1_700_000_000, b"{}"), "another key");
        // The RFC 4231 shape: the same as computing it in one piece.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        assert_eq!(s, format!("v1={}", hex::encode(hmac::sign(&key, b"1700000000.{}").as_ref())));
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_minute() {
        let d: Vec<u64> = (1..=8).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn content_is_left_out_unless_configured() {
        let job = Job {
            event: "message",
            recipient_id: "bob".into(),
            conversation_id: 7,
            seq: 3,
            sender_id: "alice".into(),
            sender_name: "Alice".into(),
            sent_at_ms: 1,
            unread: 2,
            text: None,
        };
        let json = serde_json::to_string(&job).unwrap();
        assert!(!json.contains("text"), "{json}");
        let json = serde_json::to_string(&Job { text: Some("privileged".into()), ..job }).unwrap();
        assert!(json.contains("\"text\":\"privileged\""), "{json}");
    }
}
