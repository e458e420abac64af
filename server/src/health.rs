//! Health as the load balancer and the operator see it: `/livez` (the
//! process serves: always 200, for liveness probes, so a Redis outage never
//! restarts pods) and `/healthz` (ready: 200 `ok` when the store and, in a
//! cluster, Redis answer; else 503 `degraded: <which and since when>`, for
//! readiness probes and alerts). It owns the store probe shard 0 runs; Redis
//! health is the cluster heartbeat's (`crate::cluster`). Nothing here is on
//! the message path.

use crate::shard::Shared;
use crate::store::MessageStore;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the store is probed.
const STORE_PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe not answered in this long has failed.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The store is degraded when no probe succeeded for this long.
const STORE_DOWN_AFTER: Duration = Duration::from_secs(3);

fn unix_ms() -> u64 {
    chat_protocol::unix_ms(std::time::SystemTime::now())
}

/// Probes the store (a head read) every second until the server stops,
/// noting when it last answered.
pub async fn probe_store(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(STORE_PROBE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match tokio::time::timeout(STORE_PROBE_TIMEOUT, shared.store.last_seq(0)).await {
            Ok(Ok(_)) => shared.store_last_ok_ms.store(unix_ms(), Ordering::Relaxed),
            Ok(Err(e)) => tracing::warn!(error = %e, "store health probe failed"),
            Err(_) => tracing::warn!("store health probe not answered in {STORE_PROBE_TIMEOUT:?}"),
        }
    }
}

/// `Ok` when everything answers, else what is degraded and since when (one line).
pub fn check(shared: &Shared) -> Result<(), String> {
    let now = unix_ms();
    let mut bad = Vec::new();
    let store_ok = shared.store_last_ok_ms.load(Ordering::Relaxed);
    let store_age = Duration::from_millis(now.saturating_sub(store_ok));
    if store_age > STORE_DOWN_AFTER {
        bad.push(format!(
            "store ({}) not answering for {:.1} s (last answer at unix ms {store_ok})",
            shared.store.backend_name(),
            store_age.as_secs_f64()
        ));
    }
    if let Some(h) = shared.broker.as_ref().and_then(|b| b.redis_health())
        && !h.up
    {
        bad.push(format!(
            "redis heartbeat failing for {:.1} s (last success at unix ms {})",
            h.last_heartbeat.as_secs_f64(),
            now.saturating_sub(h.last_heartbeat.as_millis() as u64)
        ));
    }
    if bad.is_empty() { Ok(()) } else { Err(format!("degraded: {}", bad.join("; "))) }
}
