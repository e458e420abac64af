//! Transfer streams: after the control stream, every bidirectional stream a
//! client opens (QUIC, WebTransport, a `chat.mux.v1` WebSocket) carries one upload or download, so a
//! large file never waits behind chat lines nor they behind it. A stream
//! opens with one `Command` frame (`UploadStart`, `DownloadStart` or a
//! GDPR `ExportUserData`) and is
//! answered with one `Reply`; then raw bytes follow (see chat.proto,
//! "Transfer streams"). At most `blobs.transfers_per_connection` run at once
//! per connection, and one that makes no progress for
//! `blobs.transfer_idle_timeout_ms` is ended, freeing its slot; the rules are
//! `crate::command::attachments`'.

use super::state::{READ_CHUNK, Session, err};
use crate::command::attachments::{self, Download, Upload};
use crate::command::gdpr_export::{self, Export};
use crate::frames;
use crate::shard::ctx::Shared;
use crate::transport::{ReadError, RecvStream, SendStream};
use bytes::{Bytes, BytesMut};
use chat_protocol::v1::{self, ErrorCode, client_frame, command, reply};
use chat_protocol::{FrameDecoder, WireError};
use prost::Message;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Largest transfer header (a name of 255 bytes and a few numbers).
const HEADER_MAX_BYTES: usize = 4096;

/// How long a client may take to send a transfer's header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

impl Session {
    /// Accepts the connection's transfer streams until it ends (the caller
    /// aborts this task; the transfers in flight end with it).
    pub(super) async fn accept_transfers(self: Rc<Self>) {
        let slots = std::sync::Arc::new(Semaphore::new(self.ctx().shared.cfg.blobs.transfers_per_connection));
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                s = self.conn.accept_bi() => match s {
                    Ok((tx, rx)) => {
                        let s = self.clone();
                        let slot = slots.clone().try_acquire_owned().ok();
                        running.spawn_local(async move {
                            let _slot = slot.as_ref();
                            s.transfer(tx, rx, slot.is_some()).await;
                        });
                    }
                    Err(_) => break,
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    }

    /// Serves one transfer stream; `admitted`: within the per-connection bound.
    async fn transfer(&self, mut tx: SendStream, mut rx: RecvStream, admitted: bool) {
        let idle = Duration::from_millis(self.ctx().shared.cfg.blobs.transfer_idle_timeout_ms);
        let (id, body, rest) = match tokio::time::timeout(HEADER_TIMEOUT, read_header(&mut rx)).await {
            Ok(Ok(h)) => h,
            Ok(Err((id, e))) => return answer_err(&mut tx, id, &e, idle).await,
            Err(_) => {
                return answer_err(&mut tx, 0, &err(ErrorCode::Timeout, "no transfer header in time"), idle).await;
            }
        };
        if !admitted {
            let cap = self.ctx().shared.cfg.blobs.transfers_per_connection;
            let e = WireError::limited(
                ErrorCode::Overloaded,
                "transfers_per_connection",
                format!("{cap} transfers already run on this connection; wait for one to end"),
                Some(Duration::from_secs(1)),
            );
            return answer_err(&mut tx, id, &e, idle).await;
        }
        let result = match body {
            command::Body::UploadStart(u) => self.upload(&mut tx, rx, rest, id, u, idle).await,
            command::Body::DownloadStart(d) => self.download(&mut tx, id, d, idle).await,
            command::Body::ExportUserData(e) => self.export(&mut tx, id, e, idle).await,
            _ => Err(Failed::Answer(err(
                ErrorCode::UnknownCommand,
                "a transfer stream starts with UploadStart, DownloadStart or ExportUserData; other commands go on the control stream",
            ))),
        };
        match result {
            Ok(()) => tx.finish(),
            Err(Failed::Answer(e)) => answer_err(&mut tx, id, &e, idle).await,
            Err(Failed::Reset(e)) => {
                tracing::debug!(session = self.handle.id, error = %e.message, "transfer stream reset");
                tx.reset(e.code as u32);
            }
        }
    }

    /// `rest`: what was read past the header (the upload's first bytes).
    async fn upload(
        &self,
        tx: &mut SendStream,
        mut rx: RecvStream,
        rest: BytesMut,
        id: u64,
        u: v1::UploadStart,
        idle: Duration,
    ) -> Result<(), Failed> {
        let mut up: Upload = attachments::begin_upload(&self.req, u).await?;
        if !rest.is_empty() {
            up.feed(&rest).await?;
        }
        loop {
            let read = tokio::time::timeout(idle, rx.read_chunk(READ_CHUNK * 4)).await;
            // Stalled: the upload is dropped (and with it what was written), its slot freed.
            let read = read.map_err(|_| {
                stalled(idle, "no bytes of the upload arrived", "it is ended and nothing of it is kept")
            })?;
            match read {
                Ok(Some(chunk)) => {
                    // Before the next read: unread bytes hold the sender back.
                    self.ctx().shared.transfer_pace.take(chunk.len()).await;
                    up.feed(&chunk).await?
                }
                Ok(None) => break,
                // Reset or cut off: the upload is dropped, and with it what was written.
                Err(e) => {
                    tracing::debug!(session = self.handle.id, error = %e, "upload cut off");
                    return Err(err(ErrorCode::UploadIncomplete, "the upload stream was cut off").into());
                }
            }
        }
        let attachment = up.finish(&self.req).await?;
        let ok = reply::Result::Upload(v1::UploadOk { attachment: Some(attachment) });
        let gone = |_| Failed::Answer(err(ErrorCode::Unavailable, "peer went away"));
        tx.write_all(&frames::reply(id, ok)).await.map_err(gone)
    }

    /// Once `DownloadOk` is written raw bytes follow, so a later failure
    /// (a client that stops reading, the store) resets the stream.
    async fn download(&self, tx: &mut SendStream, id: u64, d: v1::DownloadStart, idle: Duration) -> Result<(), Failed> {
        let mut down: Download = attachments::begin_download(&self.req, d).await?;
        let header = reply::Result::Download(down.ok.clone());
        self.send_raw(tx, id, header, idle, "download", &mut down).await
    }

    /// A GDPR export: `ExportOk`, then the archive's bytes (as a download's).
    async fn export(&self, tx: &mut SendStream, id: u64, e: v1::ExportUserData, idle: Duration) -> Result<(), Failed> {
        let mut export: Export = gdpr_export::begin(&self.req, e).await?;
        let header = reply::Result::Exported(export.ok.clone());
        self.send_raw(tx, id, header, idle, "export", &mut export).await
    }

    /// Writes the `header` reply, then the pieces of `raw` until None,
    /// paced by the node's transfer budget.
    async fn send_raw(
        &self,
        tx: &mut SendStream,
        id: u64,
        header: reply::Result,
        idle: Duration,
        what: &str,
        raw: &mut impl RawBytes,
    ) -> Result<(), Failed> {
        let gone = |_| err(ErrorCode::Unavailable, "peer went away");
        tx.write_all(&frames::reply(id, header)).await.map_err(gone)?;
        let reset = Failed::Reset;
        while let Some(chunk) = raw.next_piece(&self.ctx().shared).await.map_err(reset)? {
            self.ctx().shared.transfer_pace.take(chunk.len()).await;
            match tokio::time::timeout(idle, tx.write_all(&chunk)).await {
                Ok(written) => written.map_err(gone).map_err(reset)?,
                Err(_) => {
                    let why = format!("the client read no more of the {what}");
                    return Err(reset(stalled(idle, &why, "it is ended")));
                }
            }
        }
        Ok(())
    }
}

/// What a transfer stream sends after its header reply, piece by piece.
trait RawBytes {
    /// The next piece; None at the end.
    async fn next_piece(&mut self, shared: &Shared) -> Result<Option<Bytes>, WireError>;
}

impl RawBytes for Download {
    async fn next_piece(&mut self, shared: &Shared) -> Result<Option<Bytes>, WireError> {
        self.next_chunk(&shared.blobs).await
    }
}

impl RawBytes for Export {
    async fn next_piece(&mut self, _: &Shared) -> Result<Option<Bytes>, WireError> {
        self.next_chunk().await
    }
}

/// How a transfer that did not succeed ends.
enum Failed {
    /// Before any raw bytes were sent: an error reply says why.
    Answer(WireError),
    /// Amid a download's raw bytes, where no frame can follow: the stream
    /// is reset with the error's code.
    Reset(WireError),
}

impl From<WireError> for Failed {
    fn from(e: WireError) -> Self {
        Failed::Answer(e)
    }
}

/// A transfer that made no progress (`what`) for `idle`
/// (`blobs.transfer_idle_timeout_ms`), and what became of it (`then`).
fn stalled(idle: Duration, what: &str, then: &str) -> WireError {
    WireError::limited(
        ErrorCode::Timeout,
        "transfer_idle_timeout_ms",
        format!("{what} for {} ms; {then}", idle.as_millis()),
        None,
    )
}

/// Reads a transfer stream's header frame: the command's id and body and
/// the bytes read past it, or the id (0 when unknown) and why it is refused.
async fn read_header(rx: &mut RecvStream) -> Result<(u64, command::Body, BytesMut), (u64, WireError)> {
    let mut dec = FrameDecoder::new(HEADER_MAX_BYTES);
    let mut buf = BytesMut::new();
    let frame = loop {
        match dec.decode(&mut buf) {
            Ok(Some(f)) => break f,
            Ok(None) => {}
            Err(e) => return Err((0, err(ErrorCode::Malformed, format!("bad transfer header: {e}")))),
        }
        match rx.read_chunk(READ_CHUNK).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => return Err((0, err(ErrorCode::Malformed, "the stream ended before its header"))),
            Err(ReadError::NotFrames(why)) => return Err((0, err(ErrorCode::Malformed, why))),
            Err(ReadError::Transport(e)) => return Err((0, err(ErrorCode::Malformed, e.to_string()))),
        }
    };
    match v1::ClientFrame::decode(frame) {
        Ok(v1::ClientFrame { kind: Some(client_frame::Kind::Command(v1::Command { id, body: Some(body) })) }) => {
            Ok((id, body, buf))
        }
        Ok(_) => Err((0, err(ErrorCode::Malformed, "a transfer stream starts with a Command"))),
        Err(e) => Err((0, err(ErrorCode::Malformed, format!("transfer header does not decode: {e}")))),
    }
}

/// Answers a refused transfer and finishes the stream; a client that reads
/// nothing for `idle` gets the stream reset instead.
async fn answer_err(tx: &mut SendStream, id: u64, e: &WireError, idle: Duration) {
    match tokio::time::timeout(idle, tx.write_all(&frames::error_reply(id, e))).await {
        Ok(_) => tx.finish(),
        Err(_) => tx.reset(e.code as u32),
    }
}
