//! The outgoing queue of a WebSocket: bounded in messages and in bytes, with
//! a share of it for transfer data so control frames always find room.

use super::error::TransportError;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Messages queued towards one WebSocket peer; past it writers wait (and a
/// write that waits too long makes the session close the peer as a slow consumer).
const WS_OUT_QUEUE: usize = 64;
/// Bytes queued towards one WebSocket peer at most, whatever the number of
/// messages (without it 64 history pages of 2 MiB each could wait here for a
/// peer that never reads). A larger message waits until the queue is empty.
const WS_OUT_BYTES: usize = 1 << 20;
/// Bytes of transfer data (multiplexed streams) queued towards one peer at
/// most: the rest of [`WS_OUT_BYTES`] stays free for the control stream.
const WS_OUT_BULK_BYTES: usize = WS_OUT_BYTES / 4;
/// A message on its way out, holding its share of the byte budget (and of
/// the transfer budget, for transfer data) until the socket has taken it.
pub(super) type Queued = (Bytes, OwnedSemaphorePermit, Option<OwnedSemaphorePermit>);

/// The sending side of a WebSocket: a queue bounded in messages and in bytes.
#[derive(Clone)]
pub struct WsOut {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    /// The part of the budget transfer data may hold, so that control
    /// frames (chat lines, pushes) always find room beside a download.
    bulk: Arc<Semaphore>,
}

impl WsOut {
    pub(super) fn new() -> (Self, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(WS_OUT_QUEUE);
        let out = Self {
            tx,
            budget: Arc::new(Semaphore::new(WS_OUT_BYTES)),
            bulk: Arc::new(Semaphore::new(WS_OUT_BULK_BYTES)),
        };
        (out, rx)
    }

    /// Queues one binary message, waiting for room (in messages and bytes).
    pub(super) async fn send(&self, msg: Bytes) -> Result<(), TransportError> {
        self.queue(msg, None).await
    }

    /// Queues transfer data: as [`Self::send`], and within the transfer budget.
    pub(super) async fn send_bulk(&self, msg: Bytes) -> Result<(), TransportError> {
        let share = u32::try_from(msg.len().clamp(1, WS_OUT_BULK_BYTES)).unwrap_or(u32::MAX);
        let bulk = self.bulk.clone().acquire_many_owned(share).await.map_err(|_| closed())?;
        self.queue(msg, Some(bulk)).await
    }

    async fn queue(&self, msg: Bytes, bulk: Option<OwnedSemaphorePermit>) -> Result<(), TransportError> {
        let share = u32::try_from(msg.len().clamp(1, WS_OUT_BYTES)).unwrap_or(u32::MAX);
        let permit = self.budget.clone().acquire_many_owned(share).await.map_err(|_| closed())?;
        self.tx.send((msg, permit, bulk)).await.map_err(|_| closed())
    }
}

fn closed() -> TransportError {
    TransportError("websocket closed".into())
}
