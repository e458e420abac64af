//! Attachments on [`Client`]: [`Client::upload`] streams a file on a
//! stream of its own (with progress) and returns the stored
//! [`v1::Attachment`]; [`Client::download`] opens a (resumable, ranged)
//! [`Download`] of an attachment or its thumbnail; [`Client::export_user_data`]
//! a GDPR [`Export`] archive; [`Client::send_with_attachments`]
//! sends a message carrying uploaded attachments. The protocol is in
//! `schemas/chat/v1/chat.proto`, "Transfer streams".

use crate::client::Client;
use crate::error::ClientError;
use crate::transport::{FrameReader, RecvHalf, SendHalf};
use bytes::{Bytes, BytesMut};
use chat_protocol::error::WireError;
use chat_protocol::v1::{self, command::Body, message_body::Content, reply, server_frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes written to an upload stream at once.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// A download on a transfer stream: its header reply `ok`, then its bytes.
pub struct Transfer<H> {
    /// What follows (for an attachment: the attachment, the range, the whole size).
    pub ok: H,
    rx: RecvHalf,
    first: Option<Bytes>,
    left: u64,
}

/// An attachment download in progress.
pub type Download = Transfer<v1::DownloadOk>;
/// A GDPR export in progress: its counts, then the tar archive.
pub type Export = Transfer<v1::ExportOk>;

impl<H> Transfer<H> {
    /// The next bytes; None once all of them arrived.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        if self.left == 0 {
            return Ok(None);
        }
        let b = match self.first.take() {
            Some(b) => b,
            None => {
                let mut buf = vec![0; UPLOAD_CHUNK.min(self.left as usize)];
                match self.rx.read(&mut buf).await.map_err(ClientError::Transfer)? {
                    Some(n) => {
                        buf.truncate(n);
                        Bytes::from(buf)
                    }
                    None => return Err(ClientError::Transfer(format!("the download ended {} bytes early", self.left))),
                }
            }
        };
        if b.len() as u64 > self.left {
            return Err(ClientError::Protocol("more bytes than the download announced".into()));
        }
        self.left -= b.len() as u64;
        Ok(Some(b))
    }

    /// All the remaining bytes, in memory.
    pub async fn bytes(mut self) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::with_capacity(self.left as usize);
        while let Some(b) = self.chunk().await? {
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    /// Writes the remaining bytes to `out`; how many.
    pub async fn write_to<W: AsyncWrite + Unpin>(mut self, out: &mut W) -> Result<u64, ClientError> {
        let mut n = 0;
        while let Some(b) = self.chunk().await? {
            out.write_all(&b).await.map_err(|e| ClientError::Transfer(format!("writing: {e}")))?;
            n += b.len() as u64;
        }
        out.flush().await.map_err(|e| ClientError::Transfer(format!("writing: {e}")))?;
        Ok(n)
    }
}

impl Client {
    /// Opens a transfer stream on the current connection and writes its header.
    async fn open_transfer(&self, body: Body) -> Result<(SendHalf, FrameReader), ClientError> {
        let conn = self.shared_conn().ok_or(ClientError::Disconnected)?;
        let (mut tx, rx) = conn.open_bi().await.map_err(ClientError::Transfer)?;
        let frame =
            v1::ClientFrame { kind: Some(v1::client_frame::Kind::Command(v1::Command { id: 1, body: Some(body) })) };
        tx.write_frame(&frame).await.map_err(ClientError::Transfer)?;
        Ok((tx, FrameReader::new(rx)))
    }

    /// Uploads `size` bytes read from `data` as a file `name` of type
    /// `media_type` to a conversation the user belongs to; `progress` is
    /// called with the bytes sent so far and `size`. Returns the stored
    /// attachment (send its id with [`Client::send_with_attachments`]). The
    /// server's refusals (type, size, rate) come as [`ClientError::Server`].
    pub async fn upload<R: AsyncRead + Unpin>(
        &self,
        conversation_id: u64,
        name: &str,
        media_type: &str,
        size: u64,
        mut data: R,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<v1::Attachment, ClientError> {
        let start = v1::UploadStart { conversation_id, name: name.into(), media_type: media_type.into(), size };
        let (mut tx, mut rx) = self.open_transfer(Body::UploadStart(start)).await?;
        let mut buf = vec![0; UPLOAD_CHUNK];
        let mut sent = 0u64;
        // A write fails when the server refused mid-stream: its answer says why.
        let mut refused = false;
        while sent < size {
            let want = UPLOAD_CHUNK.min((size - sent) as usize);
            let n = data.read(&mut buf[..want]).await.map_err(|e| ClientError::Transfer(format!("reading: {e}")))?;
            if n == 0 {
                tx.reset();
                return Err(ClientError::Transfer(format!("the data ended after {sent} of {size} bytes")));
            }
            if tx.write_all(&buf[..n]).await.is_err() {
                refused = true;
                break;
            }
            sent += n as u64;
            progress(sent, size);
        }
        if !refused {
            tx.finish();
        }
        match answer(&mut rx).await? {
            reply::Result::Upload(ok) => {
                ok.attachment.ok_or_else(|| ClientError::Protocol("UploadOk without attachment".into()))
            }
            _ => Err(ClientError::Protocol("reply is not an UploadOk".into())),
        }
    }

    /// [`Client::upload`] of bytes in memory, without progress.
    pub async fn upload_bytes(
        &self,
        conversation_id: u64,
        name: &str,
        media_type: &str,
        data: &[u8],
    ) -> Result<v1::Attachment, ClientError> {
        self.upload(conversation_id, name, media_type, data.len() as u64, data, |_, _| {}).await
    }

    /// Starts a download of `attachment_id` of a conversation the user
    /// belongs to: `length` bytes (0: to the end) from `offset` (to resume),
    /// of the file or (`thumbnail`) of its preview.
    pub async fn download(
        &self,
        conversation_id: u64,
        attachment_id: &str,
        offset: u64,
        length: u64,
        thumbnail: bool,
    ) -> Result<Download, ClientError> {
        let start =
            v1::DownloadStart { conversation_id, attachment_id: attachment_id.into(), offset, length, thumbnail };
        self.fetch(Body::DownloadStart(start), "DownloadOk", |r| match r {
            reply::Result::Download(ok) => Some((ok.length, ok)),
            _ => None,
        })
        .await
    }

    /// Starts a GDPR export of `user_id`'s data (empty: the caller's own;
    /// another user's: system admins only) as a tar archive: `profile.json`,
    /// `conversations.json`, `messages.jsonl`, `attachments/...`,
    /// `audit.jsonl` and `manifest.json` (sizes and SHA-256s).
    pub async fn export_user_data(&self, user_id: &str) -> Result<Export, ClientError> {
        let start = v1::ExportUserData { user_id: user_id.into() };
        self.fetch(Body::ExportUserData(start), "ExportOk", |r| match r {
            reply::Result::Exported(ok) => Some((ok.length, ok)),
            _ => None,
        })
        .await
    }

    /// Opens a transfer stream that only receives: `body`, then the header
    /// reply (`pick` takes it and the length of what follows; else not `what`).
    async fn fetch<H>(
        &self,
        body: Body,
        what: &str,
        pick: impl FnOnce(reply::Result) -> Option<(u64, H)>,
    ) -> Result<Transfer<H>, ClientError> {
        let (mut tx, mut rx) = self.open_transfer(body).await?;
        tx.finish();
        let (length, ok) = pick(answer(&mut rx).await?)
            .ok_or_else(|| ClientError::Protocol(format!("reply is not the {what} expected")))?;
        let (rx, rest) = rx.into_parts();
        let first = (!rest.is_empty()).then(|| BytesMut::freeze(rest));
        Ok(Transfer { ok, rx, first, left: length })
    }

    /// Sends a text message carrying attachments uploaded to that conversation.
    pub async fn send_with_attachments(
        &self,
        conversation_id: u64,
        text: impl Into<String>,
        attachment_ids: Vec<String>,
    ) -> Result<v1::SendMessageOk, ClientError> {
        self.send(v1::SendMessage {
            conversation_id,
            client_msg_id: String::new(),
            body: Some(v1::MessageBody { content: Some(Content::Text(text.into())) }),
            reply_to: 0,
            attachment_ids,
        })
        .await
    }
}

/// The one reply on a transfer stream: its result, or the server's error.
async fn answer(rx: &mut FrameReader) -> Result<reply::Result, ClientError> {
    let frame = rx.next().await.map_err(|e| ClientError::Transfer(format!("{e:?}")))?;
    let Some(v1::ServerFrame { kind: Some(server_frame::Kind::Reply(r)) }) = frame else {
        return Err(ClientError::Transfer("the transfer stream ended without an answer".into()));
    };
    match r.result {
        Some(reply::Result::Error(e)) => Err(ClientError::Server(WireError::from_proto(&e))),
        Some(r) => Ok(r),
        None => Err(ClientError::Protocol("empty reply".into())),
    }
}
