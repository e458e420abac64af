//! The mesh: one bounded mailbox per shard and the senders to all of them.
//! "All shared channels must be bounded": a full mailbox hands the message
//! back ([`MailboxFull`]) to a sender that must not wait (actors), and makes a
//! sender that may wait (sessions) wait for room.

use crate::ids::ConvId;
use crate::shard::msg::{ConvMsg, ShardMsg};
use crate::shard::placement::home_shard;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Senders to every shard's mailbox (bounded).
#[derive(Debug, Clone)]
pub struct Mesh {
    senders: Arc<[mpsc::Sender<ShardMsg>]>,
}

/// Returned when a mailbox is full or gone, with the message handed back.
#[derive(Debug)]
pub struct MailboxFull(pub ShardMsg);

impl Mesh {
    /// A mesh of `n` mailboxes of `capacity` each, with their receivers.
    pub fn new(n: usize, capacity: usize) -> (Self, Vec<mpsc::Receiver<ShardMsg>>) {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(capacity)).unzip();
        (Self { senders: tx.into() }, rx)
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Always false: a mesh has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Messages waiting in each mailbox now (for the metrics).
    pub fn depths(&self) -> Vec<usize> {
        self.senders.iter().map(|s| s.max_capacity() - s.capacity()).collect()
    }

    /// Sends, waiting for room (back-pressure). For sessions, never for actors.
    pub async fn send(&self, shard: usize, msg: ShardMsg) -> Result<(), MailboxFull> {
        self.senders[shard].send(msg).await.map_err(|e| MailboxFull(e.0))
    }

    /// Sends from a thread outside every runtime (the control socket's),
    /// blocking it until there is room.
    pub fn blocking_send(&self, shard: usize, msg: ShardMsg) -> Result<(), MailboxFull> {
        self.senders[shard].blocking_send(msg).map_err(|e| MailboxFull(e.0))
    }

    /// Sends without waiting; a full mailbox hands the message back.
    pub fn try_send(&self, shard: usize, msg: ShardMsg) -> Result<(), MailboxFull> {
        self.senders[shard].try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => MailboxFull(m),
        })
    }

    /// Sends to a conversation's owner, waiting for room.
    pub async fn to_owner(&self, conv: ConvId, msg: ConvMsg) -> Result<(), MailboxFull> {
        self.send(home_shard(conv, self.len()), ShardMsg::Conv(conv, msg)).await
    }
}
