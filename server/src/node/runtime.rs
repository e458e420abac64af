//! The shard threads: each binds its share of the UDP port into a quinn
//! endpoint, accepts connections (with the admission rules) and hands them
//! to sessions, serves its web listener, and runs its mailbox ([`super::router`]).
//! Shard 0 also renews the dev certificate and runs the retention job.

use super::router;
use crate::metrics::Refusal;
use crate::presence;
use crate::session;
use crate::shard::ctx::UserLimits;
use crate::shard::{ShardCtx, ShardMsg, ShardState, Shared};
use crate::tls;
use crate::transport::{self, admission, admission::MAX_REFUSALS_IN_FLIGHT};
use crate::web::{self, WebShared};
use chat_protocol::v1::ErrorCode;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Users with no device anywhere are forgotten by their home shard's
/// presence table this long after their last change.
const PRESENCE_KEEP_MS: u64 = 60_000;

/// The shards' UDP sockets (QUIC and WebTransport), with large buffers.
pub(super) fn bind_shared(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<std::net::UdpSocket>> {
    let sockets = admission::bind_reuseport(addr, n, socket2::Type::DGRAM, |s| {
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        Ok(())
    })?;
    Ok(sockets.into_iter().map(Into::into).collect())
}

/// What one shard thread is given: its sockets, mailbox and stop signals.
pub(super) struct ShardIo {
    pub socket: std::net::UdpSocket,
    pub web_listener: Option<std::net::TcpListener>,
    pub web: Arc<WebShared>,
    pub server_config: quinn::ServerConfig,
    pub endpoint_config: quinn::EndpointConfig,
    pub rx: mpsc::Receiver<ShardMsg>,
    pub shutdown: watch::Receiver<bool>,
    pub kill: watch::Receiver<bool>,
    /// Shard 0: requests of a retention pass (the job runs there).
    pub purge: Option<mpsc::Receiver<crate::retention::job::PurgeRequest>>,
}

pub(super) async fn shard_main(id: usize, shared: Arc<Shared>, io: ShardIo) {
    let ShardIo { socket, web_listener, web, server_config, endpoint_config, rx, mut shutdown, mut kill, purge } = io;
    let ctx = Rc::new(ShardCtx {
        shared: shared.clone(),
        state: ShardState::new(id),
        shutdown: shutdown.clone(),
        user_limits: UserLimits::new(
            &shared.cfg.limits,
            shared.cfg.blobs.uploads_per_hour,
            shared.cfg.api.requests_per_minute,
            shared.broker.is_some(),
        ),
    });
    let endpoint =
        match quinn::Endpoint::new(endpoint_config, Some(server_config), socket, Arc::new(quinn::TokioRuntime)) {
            Ok(e) => e,
            Err(e) => return tracing::error!(shard = id, error = %e, "cannot start endpoint"),
        };
    *ctx.state.endpoint.borrow_mut() = Some(endpoint.clone());
    tokio::task::spawn_local(router::mailbox(ctx.clone(), rx));
    if ctx.shared.broker.is_some() {
        tokio::task::spawn_local(presence::resync(ctx.clone()));
    }
    if let Some(l) = web_listener {
        tokio::task::spawn_local(web::serve(ctx.clone(), web, l));
    }
    if let Some(purge) = purge {
        tokio::task::spawn_local(crate::retention::job::run(ctx.clone(), purge));
    }
    if id == 0 {
        tokio::task::spawn_local(renew_dev_cert(shared.clone(), shared.dev_cert_expires));
        tokio::task::spawn_local(crate::health::probe_store(shared.clone(), shutdown.clone()));
    }
    let mut housekeeping = tokio::time::interval(Duration::from_secs(60));
    let refusing = Rc::new(std::cell::Cell::new(0usize));
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if ctx.state.sessions.borrow().count() >= shared.cfg.limits.max_connections_per_shard {
                    shared.metrics.refused(Refusal::ConnectionCap);
                    incoming.refuse();
                    continue;
                }
                let limited = shared.connection_refused_for(incoming.remote_address().ip());
                if limited.is_some() && refusing.get() >= MAX_REFUSALS_IN_FLIGHT {
                    // A flood: precise refusals cost a TLS handshake each, so past
                    // a few at a time the rest are turned away at the door.
                    shared.metrics.refused(Refusal::ConnectionRate);
                    incoming.refuse();
                    continue;
                }
                let ctx = ctx.clone();
                let refusing = refusing.clone();
                tokio::task::spawn_local(async move {
                    if limited.is_some() {
                        refusing.set(refusing.get() + 1);
                    }
                    let timeout = Duration::from_millis(ctx.shared.cfg.session.handshake_timeout_ms);
                    match tokio::time::timeout(timeout, transport::accept(incoming, &ctx.shared.origins)).await {
                        Ok(Ok(conn)) => session::run(ctx, conn, limited).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "connection not established"),
                        Err(_) => tracing::debug!("transport handshake timed out"),
                    }
                    if limited.is_some() {
                        refusing.set(refusing.get() - 1);
                    }
                });
            }
            _ = housekeeping.tick() => {
                ctx.user_limits.retain_recent();
                let now = chat_protocol::unix_ms(std::time::SystemTime::now());
                ctx.state.presence.borrow_mut().prune(now, PRESENCE_KEEP_MS);
                if id == 0 {
                    shared.conn_limiter.retain_recent();
                }
            }
            _ = shutdown.changed() => break,
            _ = kill.changed() => {
                // A crash: connections closed at once, every task (sessions,
                // actors) dropped with the runtime, nothing cleaned up.
                endpoint.close(0u32.into(), b"node killed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                return;
            }
        }
    }
    // Sessions see the same signal, say goodbye and close; give them a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    endpoint.close((ErrorCode::ShuttingDown as u32).into(), b"server is shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    tracing::debug!(shard = id, "stopped");
}

/// Renews the dev certificate before it expires (shard 0 only, so every
/// shard gets the same one). Live connections keep the old one; new
/// connections get the new one. Clients that pin by hash must learn the new
/// hash, which is logged and printed by the next `chatd serve`.
async fn renew_dev_cert(shared: Arc<Shared>, mut expires: Option<std::time::SystemTime>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Some(exp) = expires else { return };
        let now = std::time::SystemTime::now();
        if exp > now + tls::DEV_CERT_RENEW_BEFORE {
            continue;
        }
        let renewed = tls::load_identity(&shared.cfg).and_then(|id| {
            let cfg = tls::quinn_server_config(&id, &shared.cfg.session)?;
            Ok((id, cfg))
        });
        match renewed {
            Ok((id, cfg)) => {
                tracing::warn!(sha256 = %id.sha256_hex(), "dev certificate renewed; clients pinning the old hash must take the new one");
                expires = id.dev_expires;
                if let Ok(mut h) = shared.cert_sha256.write() {
                    *h = id.sha256_hex();
                }
                for shard in 0..shared.mesh.len() {
                    let _ = shared.mesh.send(shard, ShardMsg::Tls(Box::new(cfg.clone()))).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "dev certificate renewal failed; retrying in an hour"),
        }
    }
}
