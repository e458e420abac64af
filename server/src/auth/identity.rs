//! Who a verified token says the user is ([`Identity`]), whichever way it
//! was verified (development secret, public key, or identity provider).

use chat_protocol::WireError;
use chat_protocol::v1::{ErrorCode, Role};

/// Who a verified token says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub user_id: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// When the token lapses (`exp`, seconds since the Unix epoch): a session
    /// opened with it ends then.
    pub expires_at: u64,
}

impl Identity {
    /// The lapse time a live session takes from `fresh`, a token it was
    /// handed by `RefreshToken`: only one for the same user and role (a
    /// session's permissions are fixed when it opens).
    pub fn refreshed_by(&self, fresh: &Identity) -> Result<u64, WireError> {
        if fresh.user_id != self.user_id {
            return Err(WireError::new(ErrorCode::Forbidden, "the new token is for another user; connect with it"));
        }
        if fresh.role != self.role {
            return Err(WireError::new(ErrorCode::Forbidden, "the new token carries another role; connect with it"));
        }
        Ok(fresh.expires_at)
    }
}

/// Parses a role name.
pub fn parse_role(s: &str) -> Option<Role> {
    match s {
        "advocate" => Some(Role::Advocate),
        "client" => Some(Role::Client),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}
