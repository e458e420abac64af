//! The `/metrics` endpoint: plain HTTP/1.1 on `metrics.listen` (a private
//! address for the scraper, apart from the public web port), served by one
//! thread of its own so a busy shard never delays a scrape. It also runs the
//! recorder's upkeep. It owns nothing measured: the node hands it a sampler.

use super::{Metrics, Sample};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often histogram buckets are drained when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);
/// Most scrapes served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// The longest a scrape connection lives.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Reads what is sampled at scrape time.
pub type Sampler = Arc<dyn Fn() -> Sample + Send + Sync>;

/// The running endpoint: its address and thread.
pub struct MetricsServer {
    /// The bound address.
    pub addr: SocketAddr,
    thread: std::thread::JoinHandle<()>,
}

impl MetricsServer {
    /// Waits for the thread (after the shutdown signal).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Binds `addr` and serves `/metrics` until `shutdown` flips.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    sampler: Sampler,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<MetricsServer> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let thread = std::thread::Builder::new().name("metrics".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return tracing::error!(error = %e, "cannot start the metrics runtime"),
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return tracing::error!(error = %e, "cannot start the metrics listener"),
            };
            let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            let mut upkeep = tokio::time::interval(UPKEEP);
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((tcp, _)) = r else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let Ok(permit) = open.clone().try_acquire_owned() else { continue };
                        let (m, s) = (metrics.clone(), sampler.clone());
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection(tcp, m, s)).await;
                            drop(permit);
                        });
                    }
                    _ = upkeep.tick() => metrics.upkeep(),
                    _ = shutdown.changed() => break,
                }
            }
        });
    })?;
    Ok(MetricsServer { addr, thread })
}

async fn connection(tcp: tokio::net::TcpStream, metrics: Arc<Metrics>, sampler: Sampler) {
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let r = answer(&req, &metrics, &sampler);
        async move { Ok::<_, Infallible>(r) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(5));
    let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
}

fn answer(req: &Request<Incoming>, metrics: &Metrics, sampler: &Sampler) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.render(&sampler()))
        }
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET /metrics\n".into()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "only /metrics is served here\n".into()),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}
