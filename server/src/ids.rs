//! The ground floor: the small value types every layer names — conversation
//! and node ids, the live set of nodes, a frame encoded once, and who asks.
//! It imports nothing of the server.

use bytes::Bytes;
use chat_protocol::v1::Role;
use std::sync::Arc;

/// A conversation id.
pub type ConvId = u64;

/// A frame encoded once (length-delimited `ServerFrame`) and shared by every
/// connection it is written to.
pub type Frame = Bytes;

/// A node's id (cluster).
pub type NodeId = Arc<str>;

/// The live nodes, sorted (empty: a single node).
pub type LiveSet = Arc<[NodeId]>;

/// Who asks (from their verified token).
#[derive(Debug, Clone)]
pub struct Caller {
    /// User id.
    pub user: Arc<str>,
    /// System role.
    pub role: Role,
}
