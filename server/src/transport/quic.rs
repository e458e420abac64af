//! Accepting QUIC: raw QUIC (ALPN `chat/1`) and WebTransport (ALPN `h3`,
//! path `/chat`, browser origin checked) share one quinn endpoint and are
//! sorted here by the negotiated ALPN.

use super::admission::Origins;
use super::conn::Conn;
use super::error::{TransportError, terr};

/// Accepts an incoming QUIC connection and sorts it by ALPN. WebTransport
/// requests must target `/chat`, and a browser's `Origin` must be one the
/// server allows (`allowed`); a request without `Origin` is not a browser's.
pub async fn accept(incoming: quinn::Incoming, allowed: &Origins) -> Result<Conn, TransportError> {
    let mut connecting = incoming.accept().map_err(terr)?;
    let alpn = connecting.handshake_data().await.map_err(terr)?;
    let alpn =
        alpn.downcast::<quinn::crypto::rustls::HandshakeData>().ok().and_then(|h| h.protocol).unwrap_or_default();
    if alpn == chat_protocol::ALPN_CHAT {
        return connecting.await.map(Conn::Quic).map_err(terr);
    }
    let request = wtransport::endpoint::IncomingSessionFuture::with_quic_connecting(connecting).await.map_err(terr)?;
    if request.path() != "/chat" {
        let path = request.path().to_string();
        request.not_found().await;
        return Err(TransportError(format!("webtransport path {path} is not /chat")));
    }
    if let Some(origin) = request.origin()
        && !allowed.allows(origin)
    {
        let origin = origin.to_string();
        tracing::warn!(%origin, remote = %request.remote_address(), "webtransport session refused: origin not allowed (see web.allowed_origins)");
        request.forbidden().await;
        return Err(TransportError(format!("webtransport origin {origin} is not allowed")));
    }
    tracing::debug!(origin = ?request.origin(), "webtransport session");
    request.accept().await.map(Conn::Wt).map_err(terr)
}
