//! The operations of a [`Device`] that talk to the server: publish
//! KeyPackages, create an E2E conversation and its group, add and remove
//! members, update this device's keys, send a message, and catch up on what
//! the device has not applied. Each makes its MLS part with `ops` and sends
//! it; when the server answers `STALE_EPOCH` (another member's commit was
//! sequenced first) the device applies what it missed and makes it again.

use chat_protocol::v1::{self, ErrorCode};

use super::ops::Change;
use super::{Device, MlsError, Received, identity, mls};
use crate::{Client, ClientError};

/// Times a message or commit is made again after `STALE_EPOCH`.
const REBASES: usize = 5;
/// History read per page when catching up.
const PAGE: u32 = 200;
/// How far the server's clock may be ahead of the device's, ms.
const CLOCK_SLACK_MS: u64 = 24 * 3600 * 1000;
/// Users named per KeyPackage claim (the server's cap).
const CLAIM_USERS: usize = 50;

fn is_stale(e: &ClientError) -> bool {
    matches!(e, ClientError::Server(w) if w.code() == Some(ErrorCode::StaleEpoch))
}

impl Device {
    /// Publishes KeyPackages until this device holds `target` in the directory; returns how many it holds.
    pub async fn replenish(&mut self, client: &Client, target: u32) -> Result<u32, MlsError> {
        let held = client.count_key_packages(self.device.clone()).await?;
        if held >= target {
            return Ok(held);
        }
        let packages = self.new_key_packages((target - held) as usize)?;
        Ok(client.publish_key_packages(self.device.clone(), packages).await?)
    }

    /// Creates an E2E conversation with `members` and its group, and adds
    /// their devices (and this user's other devices) with the first commit.
    pub async fn create_conversation(
        &mut self,
        client: &Client,
        kind: v1::ConversationKind,
        title: &str,
        case_id: &str,
        members: &[&str],
    ) -> Result<u64, MlsError> {
        let names = members.iter().map(|s| s.to_string()).collect();
        let ok = client.create_e2e_conversation(kind, title, case_id, names).await?;
        let conv = ok.summary.and_then(|s| s.conversation).map(|c| c.id).ok_or_else(|| mls("no conversation"))?;
        self.start_group(conv)?;
        let me = self.user.clone();
        let mut users: Vec<&str> = members.to_vec();
        users.push(&me);
        self.add_devices(client, conv, &users).await?;
        Ok(conv)
    }

    /// Adds `users` to the conversation (on the server, then every device
    /// of theirs to the group).
    pub async fn add_members(&mut self, client: &Client, conv: u64, users: &[&str]) -> Result<(), MlsError> {
        client.add_members(conv, users.iter().map(|s| s.to_string()).collect()).await?;
        self.add_devices(client, conv, users).await
    }

    /// Claims a KeyPackage of each device of `users` and commits them into the group.
    async fn add_devices(&mut self, client: &Client, conv: u64, users: &[&str]) -> Result<(), MlsError> {
        let key_packages = claim_ready(client, users.iter().map(|s| s.to_string()).collect(), Vec::new()).await?;
        if key_packages.is_empty() {
            return Ok(());
        }
        self.commit(client, conv, Change::Add(v1::ClaimedKeyPackages { key_packages, ..Default::default() })).await
    }

    /// Adds the devices of the conversation's members that are not in the
    /// group yet: a member's new device, or one that had no KeyPackage left
    /// when its user was added. Returns how many were added. The claim
    /// skips the devices the group has, so it takes nothing of theirs: apps
    /// may call this on every membership change and now and then.
    pub async fn add_new_devices(&mut self, client: &Client, conv: u64) -> Result<usize, MlsError> {
        let roster: Vec<String> = client.get_members(conv).await?.members.into_iter().map(|m| m.user_id).collect();
        let leaves = self.members(conv)?;
        let mut fresh = v1::ClaimedKeyPackages::default();
        for users in roster.chunks(CLAIM_USERS) {
            let skip = leaves.iter().filter(|(u, _)| users.contains(u)).map(|(u, d)| format!("{u}/{d}")).collect();
            fresh.key_packages.extend(claim_ready(client, users.to_vec(), skip).await?);
        }
        let n = fresh.key_packages.len();
        if n > 0 {
            self.commit(client, conv, Change::Add(fresh)).await?;
        }
        Ok(n)
    }

    /// Removes `user` from the conversation (on the server) and every
    /// device of theirs from the group, so nothing sent after it can be
    /// read by them.
    pub async fn remove_member(&mut self, client: &Client, conv: u64, user: &str) -> Result<(), MlsError> {
        client.remove_member(conv, user.to_string()).await?;
        self.commit(client, conv, Change::Remove(user.to_owned())).await
    }

    /// Renews this device's leaf keys (post-compromise security).
    pub async fn update(&mut self, client: &Client, conv: u64) -> Result<(), MlsError> {
        self.commit(client, conv, Change::Update).await
    }

    /// Makes the commit of `change`, sends it for the group's epoch and
    /// merges it once stored; after `STALE_EPOCH` drops it, catches up and
    /// makes it again.
    async fn commit(&mut self, client: &Client, conv: u64, change: Change) -> Result<(), MlsError> {
        for _ in 0..REBASES {
            let Some(ct) = self.prepare(conv, &change)? else { return Ok(()) };
            match client.send_ciphertext(conv, ct).await {
                Ok(ok) => return self.confirm(conv, ok.seq),
                Err(e) if is_stale(&e) => {
                    self.discard(conv)?;
                    self.catch_up(client, conv).await?;
                }
                Err(e) => {
                    self.discard(conv)?;
                    return Err(e.into());
                }
            }
        }
        Err(mls(format!("conversation {conv}: still stale after {REBASES} tries")))
    }

    /// Encrypts `text` for the group and sends it; after `STALE_EPOCH`
    /// catches up and encrypts it again in the new epoch.
    pub async fn send_text(&mut self, client: &Client, conv: u64, text: &str) -> Result<v1::SendMessageOk, MlsError> {
        self.send_content(client, conv, v1::E2eContent { text: text.to_owned(), files: Vec::new() }).await
    }

    /// Encrypts `content` for the group and sends it (with the attachment
    /// ids of its files); after `STALE_EPOCH` catches up and encrypts it
    /// again in the new epoch.
    pub(super) async fn send_content(
        &mut self,
        client: &Client,
        conv: u64,
        content: v1::E2eContent,
    ) -> Result<v1::SendMessageOk, MlsError> {
        let attachment_ids = content.files.iter().map(|f| f.attachment_id.clone()).collect::<Vec<_>>();
        for _ in 0..REBASES {
            let ct = self.encrypt(conv, &content)?;
            let send = v1::SendMessage {
                conversation_id: conv,
                body: Some(v1::MessageBody { content: Some(v1::message_body::Content::Ciphertext(ct)) }),
                attachment_ids: attachment_ids.clone(),
                ..Default::default()
            };
            match client.send(send).await {
                Ok(ok) => return Ok(ok),
                Err(e) if is_stale(&e) => {
                    self.catch_up(client, conv).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(mls(format!("conversation {conv}: still stale after {REBASES} tries")))
    }

    /// Reads the conversation's history past what this device applied and
    /// applies it, in order; returns what each entry was. In a conversation
    /// it has read nothing of, it starts from when the device was made (a
    /// Welcome for it is no older), however far back that is.
    pub async fn catch_up(&mut self, client: &Client, conv: u64) -> Result<Vec<Received>, MlsError> {
        let mut out = Vec::new();
        if !self.applied.contains_key(&conv) {
            let back = since(client, conv, self.created_ms.saturating_sub(CLOCK_SLACK_MS)).await?;
            for m in &back {
                out.push(self.receive(m)?);
            }
            let Some(last) = back.last().map(|m| m.seq) else { return Ok(out) };
            let applied = self.applied.entry(conv).or_insert(0);
            *applied = (*applied).max(last);
        }
        loop {
            let after = self.applied.get(&conv).copied().unwrap_or(0);
            let page = client.history(conv, 0, after, PAGE).await?;
            let Some(last) = page.messages.last().map(|m| m.seq) else { return Ok(out) };
            for m in &page.messages {
                out.push(self.receive(m)?);
            }
            // A page from before this device joined applies nothing: move past it.
            let applied = self.applied.entry(conv).or_insert(0);
            *applied = (*applied).max(last);
        }
    }

    /// This device's identity as a leaf (`user/device`).
    pub fn leaf_identity(&self) -> Vec<u8> {
        identity(&self.user, &self.device)
    }
}

/// What a claim took; none when no device of theirs has one ready
/// (`NO_KEY_PACKAGES`: this user alone, say).
async fn claim_ready(
    client: &Client,
    users: Vec<String>,
    skip: Vec<String>,
) -> Result<Vec<v1::ClaimedKeyPackage>, MlsError> {
    match client.claim_key_packages_skipping(users, skip).await {
        Ok(c) => Ok(c.key_packages),
        Err(ClientError::Server(w)) if w.code() == Some(ErrorCode::NoKeyPackages) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The entries of `conv` from the last one before `since_ms` (server time)
/// to the newest, in seq order: pages read backward from the newest.
async fn since(client: &Client, conv: u64, since_ms: u64) -> Result<Vec<v1::Message>, MlsError> {
    let mut pages = Vec::new();
    let mut before = 0;
    loop {
        let page = client.history(conv, before, 0, PAGE).await?;
        let first = page.messages.first().map(|m| (m.seq, m.server_time_ms));
        pages.push(page.messages);
        match first {
            Some((seq, at)) if page.has_more && at >= since_ms => before = seq,
            _ => return Ok(pages.into_iter().rev().flatten().collect()),
        }
    }
}
