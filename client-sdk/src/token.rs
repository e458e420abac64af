//! Keeping a live session signed in: [`TokenSource`], the application's way
//! to get a fresh token, and the task that asks it before the session's
//! token lapses and hands the result to the session (`RefreshToken`). The
//! driver keeps the newest accepted token for the next reconnection.

use crate::driver::{Cmd, Shared};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// What a [`TokenSource`] returns: a fresh token, or why there is none.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Gets a fresh token for the same user (from the firm's identity provider,
/// a refresh token, ...). Called shortly before the session's token lapses.
#[derive(Clone)]
pub struct TokenSource(pub Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl TokenSource {
    /// A source calling `f`.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(f())))
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSource")
    }
}

/// How long before the lapse a refresh is asked for: a third of what is
/// left when the lapse is first seen, at most a minute, at least 200 ms.
pub(crate) fn lead(left: Duration) -> Duration {
    (left / 3).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Refreshes the session's token from `source` until the client is gone
/// (the task holds no handle that keeps it alive).
pub(crate) async fn refresher(source: TokenSource, cmds: mpsc::WeakSender<Cmd>, shared: Arc<Mutex<Shared>>) {
    let mut seen = (0u64, Duration::ZERO);
    loop {
        let lapse = shared.lock().map(|s| s.token_expires_at_ms).unwrap_or(0);
        let now = now_ms();
        if lapse == 0 {
            // Not told yet (before the first Welcome, or no expiry).
            tokio::time::sleep(Duration::from_millis(500)).await;
            if cmds.upgrade().is_none() {
                return;
            }
            continue;
        }
        if seen.0 != lapse {
            seen = (lapse, lead(Duration::from_millis(lapse.saturating_sub(now))));
        }
        let due = lapse.saturating_sub(seen.1.as_millis() as u64);
        if due > now {
            tokio::time::sleep(Duration::from_millis(due - now)).await;
            continue;
        }
        let outcome = match (source.0)().await {
            Ok(token) => {
                let Some(tx) = cmds.upgrade() else { return };
                let (reply, answer) = oneshot::channel();
                if tx.send(Cmd::RefreshToken { token, reply }).await.is_err() {
                    return;
                }
                drop(tx);
                match answer.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => return,
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "token refresh failed; trying again shortly");
            let left = lapse.saturating_sub(now_ms());
            tokio::time::sleep(Duration::from_millis((left / 4).clamp(100, 5_000))).await;
        }
        if cmds.upgrade().is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_a_third_before_the_lapse_within_bounds() {
        assert_eq!(lead(Duration::from_secs(3)), Duration::from_secs(1));
        assert_eq!(lead(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(lead(Duration::from_millis(100)), Duration::from_millis(200));
    }
}
