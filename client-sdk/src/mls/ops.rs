//! The group operations of a [`Device`] that touch no network: start a
//! group, make a commit (add claimed devices, remove a user's devices,
//! renew this device's keys) and keep it pending until the server has
//! stored it (then [`Device::confirm`]) or refused it ([`Device::discard`]),
//! and encrypt a message. The async operations in `group` send what these
//! make; a caller with its own I/O (the load generator) may use them
//! directly.

use chat_protocol::v1;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls::treesync::LeafNodeParameters;
use prost::Message as _;

use super::{CIPHERSUITE, Device, MlsError, PAST_EPOCHS, group_id, mls, parse_identity};

/// A change to a group's members or keys.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add the devices whose KeyPackages were claimed (this device's own left out).
    Add(v1::ClaimedKeyPackages),
    /// Remove every device of a user.
    Remove(String),
    /// Renew this device's leaf keys.
    Update,
}

/// A commit's bytes and its Welcome's (empty: none).
type Made = (Vec<u8>, Vec<u8>);

fn bytes(m: &MlsMessageOut) -> Result<Vec<u8>, MlsError> {
    m.tls_serialize_detached().map_err(mls)
}

impl Device {
    /// Makes the group of `conv` with this device alone (epoch 0), unless it has one.
    pub fn start_group(&mut self, conv: u64) -> Result<(), MlsError> {
        if self.peek(conv, |_| ()).is_ok() {
            return Ok(());
        }
        let g = MlsGroup::builder()
            .with_group_id(group_id(conv))
            .ciphersuite(CIPHERSUITE)
            .use_ratchet_tree_extension(true)
            .max_past_epochs(PAST_EPOCHS)
            .build(&self.provider, &self.signer, self.credential())
            .map_err(mls)?;
        self.put(conv, g);
        self.save()
    }

    /// The claimed KeyPackages, each checked to name the user and device it
    /// was claimed for (this device's own, and devices `g` has already, left
    /// out: another member may have added them first).
    fn accept_claimed(&self, g: &MlsGroup, claimed: &v1::ClaimedKeyPackages) -> Result<Vec<KeyPackage>, MlsError> {
        let have: std::collections::HashSet<(String, String)> =
            g.members().filter_map(|m| parse_identity(&m.credential)).collect();
        let mut packages = Vec::new();
        for c in &claimed.key_packages {
            let kp = KeyPackageIn::tls_deserialize_exact(c.key_package.as_ref())
                .map_err(mls)?
                .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                .map_err(mls)?;
            let named = parse_identity(kp.leaf_node().credential());
            if named.as_ref() != Some(&(c.user_id.clone(), c.device_id.clone())) {
                return Err(MlsError::Identity(format!(
                    "a KeyPackage claimed for {}/{} names {named:?}",
                    c.user_id, c.device_id
                )));
            }
            let mine = (c.user_id.as_str(), c.device_id.as_str()) == (self.user.as_str(), self.device.as_str());
            if !mine && !have.contains(&(c.user_id.clone(), c.device_id.clone())) {
                packages.push(kp);
            }
        }
        Ok(packages)
    }

    /// Makes the commit of `change` for the group's epoch and keeps it
    /// pending; None when there is nothing to commit.
    pub fn prepare(&mut self, conv: u64, change: &Change) -> Result<Option<v1::E2eCiphertext>, MlsError> {
        let mut g = self.take(conv)?;
        let epoch = g.epoch().as_u64();
        let made = self.make(&mut g, change);
        self.put(conv, g);
        let Some((commit, welcome)) = made? else { return Ok(None) };
        self.save()?;
        Ok(Some(v1::E2eCiphertext { epoch, mls: commit.into(), commit: true, welcome: welcome.into() }))
    }

    /// The commit of `change` in `g` and its Welcome (None: nothing to commit).
    fn make(&self, g: &mut MlsGroup, change: &Change) -> Result<Option<Made>, MlsError> {
        Ok(Some(match change {
            Change::Add(claimed) => {
                let packages = self.accept_claimed(g, claimed)?;
                if packages.is_empty() {
                    return Ok(None);
                }
                let (commit, welcome, _) = g.add_members(&self.provider, &self.signer, &packages).map_err(mls)?;
                (bytes(&commit)?, bytes(&welcome)?)
            }
            Change::Remove(user) => {
                let leaves: Vec<LeafNodeIndex> = g
                    .members()
                    .filter(|m| parse_identity(&m.credential).is_some_and(|(u, _)| u == *user))
                    .map(|m| m.index)
                    .collect();
                if leaves.is_empty() {
                    return Ok(None);
                }
                (bytes(&g.remove_members(&self.provider, &self.signer, &leaves).map_err(mls)?.0)?, Vec::new())
            }
            Change::Update => {
                let bundle = g.self_update(&self.provider, &self.signer, LeafNodeParameters::default()).map_err(mls)?;
                (bytes(&bundle.into_messages().0)?, Vec::new())
            }
        }))
    }

    /// The pending commit was stored at `seq`: the group moves to the next
    /// epoch. What was applied stays where it was (but a group's first
    /// commit marks it and what came before as read: nobody else could
    /// write in the group before it): messages of the old epoch
    /// sequenced before the commit may still be on their way, and open with
    /// that epoch's kept secrets; the commit is skipped when read back.
    pub fn confirm(&mut self, conv: u64, seq: u64) -> Result<(), MlsError> {
        let mut g = self.take(conv)?;
        let merged = g.merge_pending_commit(&self.provider).map_err(mls);
        self.put(conv, g);
        merged?;
        self.applied.entry(conv).or_insert(seq);
        self.save()
    }

    /// The pending commit was refused: the group stays where it was.
    pub fn discard(&mut self, conv: u64) -> Result<(), MlsError> {
        let mut g = self.take(conv)?;
        let cleared = g.clear_pending_commit(self.provider.storage()).map_err(mls);
        self.put(conv, g);
        cleared?;
        self.save()
    }

    /// Encrypts `content` for the group in its current epoch.
    pub fn encrypt(&mut self, conv: u64, content: &v1::E2eContent) -> Result<v1::E2eCiphertext, MlsError> {
        let mut g = self.take(conv)?;
        let epoch = g.epoch().as_u64();
        let message = g.create_message(&self.provider, &self.signer, &content.encode_to_vec()).map_err(mls);
        self.put(conv, g);
        let message = message?;
        self.save()?;
        Ok(v1::E2eCiphertext { epoch, mls: bytes(&message)?.into(), ..Default::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mls::Received;

    const CONV: u64 = 7;

    fn entry(seq: u64, sender: &str, ct: v1::E2eCiphertext) -> v1::Message {
        let body = v1::MessageBody { content: Some(v1::message_body::Content::Ciphertext(ct)) };
        v1::Message { conversation_id: CONV, seq, sender_id: sender.into(), body: Some(body), ..Default::default() }
    }

    fn text(t: &str) -> v1::E2eContent {
        v1::E2eContent { text: t.into(), files: Vec::new() }
    }

    #[test]
    fn a_message_of_the_old_epoch_sequenced_before_a_commit_still_opens() {
        let mut alice = Device::in_memory("alice", "a").unwrap();
        let mut bob = Device::in_memory("bob", "b").unwrap();
        alice.start_group(CONV).unwrap();
        let kp = bob.new_key_packages(1).unwrap().remove(0);
        let claimed = v1::ClaimedKeyPackages {
            key_packages: vec![v1::ClaimedKeyPackage {
                user_id: "bob".into(),
                device_id: "b".into(),
                key_package: kp.into(),
            }],
            ..Default::default()
        };
        let add = alice.prepare(CONV, &Change::Add(claimed)).unwrap().unwrap();
        alice.confirm(CONV, 1).unwrap();
        assert_eq!(bob.receive(&entry(1, "alice", add)).unwrap(), Received::Joined { seq: 1 });

        // bob writes in epoch 1 (stored at seq 2) while alice's update is made and stored at seq 3.
        let early = bob.encrypt(CONV, &text("sent while you committed")).unwrap();
        let update = alice.prepare(CONV, &Change::Update).unwrap().unwrap();
        alice.confirm(CONV, 3).unwrap();
        assert_eq!(alice.epoch(CONV), Some(2));
        match alice.receive(&entry(2, "bob", early)).unwrap() {
            Received::Text { text, .. } => assert_eq!(text, "sent while you committed"),
            other => panic!("alice could not read bob's message of epoch 1: {other:?}"),
        }
        assert_eq!(alice.receive(&entry(3, "alice", update.clone())).unwrap(), Received::Skipped);
        assert_eq!(bob.receive(&entry(3, "alice", update)).unwrap(), Received::Committed { epoch: 2, removed: false });
        let after = alice.encrypt(CONV, &text("epoch 2")).unwrap();
        assert!(
            matches!(bob.receive(&entry(4, "alice", after)).unwrap(), Received::Text { text, .. } if text == "epoch 2")
        );
    }
}
