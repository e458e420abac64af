//! End-to-end encrypted conversations on [`Client`], as the server sees
//! them: creating one, sending an MLS message of a group epoch (the server
//! refuses another epoch's with `STALE_EPOCH`), and the KeyPackage directory
//! (publish, count, claim). The MLS group state itself is the caller's; see
//! `E2eCiphertext` and `PublishKeyPackages` in `schemas/chat/v1/chat.proto`.

use crate::client::{Client, want};
use crate::error::ClientError;
use chat_protocol::v1::{self, command::Body, message_body::Content, reply};

impl Client {
    /// Creates an end-to-end encrypted conversation (for PRIVATE: the pair's
    /// existing E2E one if any; a pair's plain one is another conversation).
    pub async fn create_e2e_conversation(
        &self,
        kind: v1::ConversationKind,
        title: impl Into<String>,
        case_id: impl Into<String>,
        members: Vec<String>,
    ) -> Result<v1::ConversationOk, ClientError> {
        let (title, case_id) = (title.into(), case_id.into());
        self.create(v1::CreateConversation { kind: kind as i32, title, case_id, members, e2e: true }).await
    }

    /// Sends an MLS message (an application message, or a commit with its
    /// Welcome) to an E2E conversation through the outbox, like a text.
    pub async fn send_ciphertext(
        &self,
        conversation_id: u64,
        ciphertext: v1::E2eCiphertext,
    ) -> Result<v1::SendMessageOk, ClientError> {
        self.send(v1::SendMessage {
            conversation_id,
            body: Some(v1::MessageBody { content: Some(Content::Ciphertext(ciphertext)) }),
            ..Default::default()
        })
        .await
    }

    /// Publishes KeyPackages of this device; returns how many it holds.
    pub async fn publish_key_packages(
        &self,
        device_id: impl Into<String>,
        key_packages: Vec<Vec<u8>>,
    ) -> Result<u32, ClientError> {
        let key_packages = key_packages.into_iter().map(Into::into).collect();
        let r = self
            .request(Body::PublishKeyPackages(v1::PublishKeyPackages { device_id: device_id.into(), key_packages }));
        count(r.await?)
    }

    /// How many KeyPackages this device holds in the directory.
    pub async fn count_key_packages(&self, device_id: impl Into<String>) -> Result<u32, ClientError> {
        count(self.request(Body::CountKeyPackages(v1::CountKeyPackages { device_id: device_id.into() })).await?)
    }

    /// Claims one KeyPackage of each device of each of `user_ids` (each
    /// handed out once); users with none left are named in `unavailable`.
    pub async fn claim_key_packages(&self, user_ids: Vec<String>) -> Result<v1::ClaimedKeyPackages, ClientError> {
        self.claim_key_packages_skipping(user_ids, Vec::new()).await
    }

    /// Like [`Client::claim_key_packages`], leaving out `skip_devices`
    /// (`user/device`: those the caller's group already has).
    pub async fn claim_key_packages_skipping(
        &self,
        user_ids: Vec<String>,
        skip_devices: Vec<String>,
    ) -> Result<v1::ClaimedKeyPackages, ClientError> {
        let r = self.request(Body::ClaimKeyPackages(v1::ClaimKeyPackages { user_ids, skip_devices })).await?;
        want(r, "key_packages", |r| match r {
            reply::Result::KeyPackages(k) => Some(k),
            _ => None,
        })
    }
}

fn count(r: reply::Result) -> Result<u32, ClientError> {
    want(r, "key_package_count", |r| match r {
        reply::Result::KeyPackageCount(c) => Some(c.available),
        _ => None,
    })
}
