//! The `[metrics]` section: where the Prometheus `/metrics` endpoint listens.
//! Off by default, so `chatd serve` binds nothing more than it did.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The Prometheus endpoint (`GET /metrics`, plain HTTP) on an address of its
/// own, for the scraper only: never the public web port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the endpoint, e.g. `127.0.0.1:9464` (port 0: any free
    /// port). Unset (default): no endpoint, nothing recorded.
    pub listen: Option<SocketAddr>,
}
