//! One signed POST to the webhook over HTTP/1.1 (hyper's client
//! connection), in clear or over TLS with the system's roots.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The header with the signing time (seconds since the Unix epoch).
pub const TIMESTAMP_HEADER: &str = "x-chatd-timestamp";
/// The header with the signature: `v1=` and the hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` under `notify.secret`.
pub const SIGNATURE_HEADER: &str = "x-chatd-signature";

/// The header with the event's kind (event webhooks only).
pub const EVENT_HEADER: &str = "x-chatd-event";

/// Where notifications go.
pub(super) struct Target {
    uri: Uri,
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    /// The address to connect to, resolved and checked beforehand (None: the host's).
    pinned: Option<std::net::SocketAddr>,
}

impl Target {
    /// Parses `url` (`http://` or `https://`).
    pub(super) fn parse(url: &str) -> Result<Self, String> {
        // Messages name the URL without its credentials (they reach logs).
        let shown = crate::config::redact_url(url);
        let uri: Uri = url.parse().map_err(|e| format!("the webhook URL {shown:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("the webhook URL {shown:?} must be http:// or https://")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("the webhook URL {shown:?} has no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match https {
            false => None,
            true => Some(crate::tls::client_connector()),
        };
        Ok(Self { uri, host, port, tls, pinned: None })
    }

    /// The host and port to resolve.
    pub(super) fn host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// Connects to `addr` from now on (resolved and checked by the caller:
    /// no second lookup can send the request elsewhere).
    pub(super) fn pin(mut self, addr: std::net::SocketAddr) -> Self {
        self.pinned = Some(addr);
        self
    }

    /// Posts `body` signed as `signature` at `timestamp`; the status code.
    pub(super) async fn post(
        &self,
        body: Bytes,
        timestamp: u64,
        signature: &str,
        event: Option<&str>,
    ) -> Result<u16, String> {
        let authority = self.uri.authority().map(|a| a.to_string()).unwrap_or_else(|| self.host.clone());
        let mut req = hyper::Request::post(self.uri.clone());
        if let Some(event) = event {
            req = req.header(EVENT_HEADER, event);
        }
        let req = req
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, concat!("chatd/", env!("CARGO_PKG_VERSION")))
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let tcp = match self.pinned {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((self.host.as_str(), self.port)).await,
        }
        .map_err(|e| e.to_string())?;
        match &self.tls {
            None => send(TokioIo::new(tcp), req).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?;
                let stream = tls.connect(name, tcp).await.map_err(|e| e.to_string())?;
                send(TokioIo::new(stream), req).await
            }
        }
    }
}

async fn send<I>(io: I, req: hyper::Request<Full<Bytes>>) -> Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let status = sender.send_request(req).await.map_err(|e| e.to_string())?.status().as_u16();
    conn.abort();
    Ok(status)
}
