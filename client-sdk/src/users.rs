//! The user directory and session control on [`Client`]: search people by
//! name or id (everyone), provision users, disable and enable them, revoke
//! their sessions (admins). A revoked or disabled user's client ends with
//! `Event::Disconnected` carrying `SESSION_REVOKED` or `USER_DISABLED`, and
//! does not reconnect by itself. See `SearchUsers` and `PutUser` in
//! `schemas/chat/v1/chat.proto`.

use crate::client::{Client, want};
use crate::error::ClientError;
use chat_protocol::v1::{self, command::Body, reply};

impl Client {
    /// One page of people matching `query` (each word in the display name
    /// or id); pass a page's `next` back as `page`. `limit` 0: 20, at most 50.
    pub async fn search_users(
        &self,
        query: impl Into<String>,
        limit: u32,
        page: impl Into<String>,
    ) -> Result<v1::UserList, ClientError> {
        let q = v1::SearchUsers { query: query.into(), limit, page: page.into() };
        let r = self.request(Body::SearchUsers(q)).await?;
        want(r, "user list", |r| match r {
            reply::Result::Users(l) => Some(l),
            _ => None,
        })
    }

    /// Admins: creates or replaces a user of the directory.
    pub async fn put_user(
        &self,
        id: impl Into<String>,
        display_name: impl Into<String>,
        role: v1::Role,
    ) -> Result<v1::DirectoryUser, ClientError> {
        let p = v1::PutUser { id: id.into(), display_name: display_name.into(), role: role as i32 };
        directory_user(self.request(Body::PutUser(p)).await?)
    }

    /// Admins: disables a user (refused at connect; live sessions closed with `USER_DISABLED`).
    pub async fn disable_user(
        &self,
        user_id: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<v1::DirectoryUser, ClientError> {
        let d = v1::DisableUser { user_id: user_id.into(), reason: reason.into() };
        directory_user(self.request(Body::DisableUser(d)).await?)
    }

    /// Admins: lets a disabled user sign in again.
    pub async fn enable_user(
        &self,
        user_id: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<v1::DirectoryUser, ClientError> {
        let e = v1::EnableUser { user_id: user_id.into(), reason: reason.into() };
        directory_user(self.request(Body::EnableUser(e)).await?)
    }

    /// Admins: closes every live session of a user with `SESSION_REVOKED`
    /// (they may sign in again).
    pub async fn revoke_sessions(
        &self,
        user_id: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<(), ClientError> {
        let r = v1::RevokeSessions { user_id: user_id.into(), reason: reason.into() };
        self.request(Body::RevokeSessions(r)).await.map(|_| ())
    }

    /// Admins: erases a user (GDPR; a reason is required): their messages
    /// become erased tombstones, their attachments go, their profile is
    /// pseudonymised and disabled, their sessions close. Answers with what
    /// it erased and what legal holds kept.
    pub async fn erase_user(
        &self,
        user_id: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<v1::EraseResult, ClientError> {
        let e = v1::EraseUser { user_id: user_id.into(), reason: reason.into() };
        want(self.request(Body::EraseUser(e)).await?, "erase result", |r| match r {
            reply::Result::Erased(r) => Some(r),
            _ => None,
        })
    }
}

/// The directory user a reply carries.
fn directory_user(r: reply::Result) -> Result<v1::DirectoryUser, ClientError> {
    want(r, "directory user", |r| match r {
        reply::Result::User(u) => Some(u),
        _ => None,
    })
}
