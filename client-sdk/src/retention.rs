//! Retention and legal hold on [`Client`]: set a conversation's retention
//! (its admins, or system admins), set, release and list legal holds, and
//! erase a whole conversation (system admins). The rules are the server's; see `SetRetention` and
//! `LegalHold` in `schemas/chat/v1/chat.proto`.

use crate::client::{Client, want};
use crate::error::ClientError;
use chat_protocol::v1::{self, command::Body, reply};

impl Client {
    /// Sets how many days `conversation_id` keeps its messages (0: forever);
    /// returns the conversation as it now is.
    pub async fn set_retention(
        &self,
        conversation_id: u64,
        retention_days: u32,
    ) -> Result<v1::ConversationOk, ClientError> {
        let r = self.request(Body::SetRetention(v1::SetRetention { conversation_id, retention_days })).await?;
        want(r, "conversation", |r| match r {
            reply::Result::Conversation(c) => Some(c),
            _ => None,
        })
    }

    /// Sets (or renews) a legal hold; returns every hold in force.
    pub async fn set_legal_hold(
        &self,
        scope: v1::HoldScope,
        target: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<Vec<v1::LegalHold>, ClientError> {
        let set = v1::SetLegalHold { scope: scope as i32, target: target.into(), reason: reason.into() };
        holds(self.request(Body::SetLegalHold(set)).await?)
    }

    /// Releases a legal hold.
    pub async fn release_legal_hold(&self, scope: v1::HoldScope, target: impl Into<String>) -> Result<(), ClientError> {
        let release = v1::ReleaseLegalHold { scope: scope as i32, target: target.into() };
        self.request(Body::ReleaseLegalHold(release)).await.map(|_| ())
    }

    /// Erases a whole conversation (system admins): archived for good, every
    /// message, attachment and search entry gone, its data key destroyed.
    /// Refused with UNDER_LEGAL_HOLD while a hold covers it.
    pub async fn erase_conversation(
        &self,
        conversation_id: u64,
        reason: impl Into<String>,
    ) -> Result<v1::ConversationErased, ClientError> {
        let e = v1::EraseConversation { conversation_id, reason: reason.into() };
        want(self.request(Body::EraseConversation(e)).await?, "conversation_erased", |r| match r {
            reply::Result::ConversationErased(r) => Some(r),
            _ => None,
        })
    }

    /// Every legal hold in force.
    pub async fn list_legal_holds(&self) -> Result<Vec<v1::LegalHold>, ClientError> {
        holds(self.request(Body::ListLegalHolds(v1::ListLegalHolds {})).await?)
    }
}

fn holds(r: reply::Result) -> Result<Vec<v1::LegalHold>, ClientError> {
    want(r, "legal_holds", |r| match r {
        reply::Result::LegalHolds(l) => Some(l.holds),
        _ => None,
    })
}
