//! End-to-end encryption with MLS (RFC 9420, openmls) for one device of one
//! user: [`Device`] holds the device's signing key, its KeyPackages' private
//! parts and its groups (one per E2E conversation, group id from the
//! conversation id), kept in a file the app chooses (mode 0600, replaced
//! whole at each save). The ciphersuite is
//! MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, the one the browser
//! interoperates with. A leaf's identity is `user/device` (a basic
//! credential); a claimed KeyPackage is taken only if it names the user it
//! was claimed for, and a decrypted message only if its MLS sender is the
//! user the server says sent it.
//!
//! This file owns the device and what arrives ([`Device::receive`], in the
//! conversation's seq order); `group` the operations that talk to the
//! server (create, add, remove, update, send, catch up), making their MLS
//! parts with `ops` (no I/O: usable by a caller with its own); `files` the files
//! of E2E messages (encrypted here with a key per file that travels inside
//! the MLS message); `state_file` the device file.

mod files;
mod group;
mod ops;
mod state_file;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chat_protocol::v1::{self, message_body::Content};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use prost::Message as _;

pub use ops::Change;

/// The ciphersuite of every E2E group.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Epochs whose message secrets a group keeps, so a message sequenced just
/// before a commit still opens after it (ts-mls keeps as many).
pub const PAST_EPOCHS: usize = 4;

/// What went wrong with end-to-end encryption.
#[derive(Debug, thiserror::Error)]
pub enum MlsError {
    /// The MLS library refused (a message it cannot decrypt or verify, a bad KeyPackage...).
    #[error("mls: {0}")]
    Mls(String),
    /// The device file cannot be read or written.
    #[error("device file {path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// The server refused or the connection failed.
    #[error(transparent)]
    Client(#[from] crate::ClientError),
    /// This device is not in the conversation's group (not added yet, or removed).
    #[error("this device is not in the group of conversation {0}")]
    NotInGroup(u64),
    /// A KeyPackage or a message names someone else than the server says.
    #[error("identity mismatch: {0}")]
    Identity(String),
}

fn mls(e: impl std::fmt::Display) -> MlsError {
    MlsError::Mls(e.to_string())
}

/// What one stored entry of an E2E conversation was to this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A message, decrypted: from `sender`'s `device`.
    Text {
        /// Its seq.
        seq: u64,
        /// The sender's user id.
        sender: String,
        /// The sender's device id.
        device: String,
        /// The text.
        text: String,
        /// Files sent with it (open them with [`Device::download_file`]).
        files: Vec<v1::E2eFile>,
    },
    /// This device joined the group from the Welcome of the commit at `seq`.
    Joined {
        /// The commit's seq.
        seq: u64,
    },
    /// A commit was applied: the group is at `epoch`; `removed` if it removed this device.
    Committed {
        /// The group's epoch now.
        epoch: u64,
        /// This device is no longer in the group.
        removed: bool,
    },
    /// Nothing for this device: not E2E, already applied, or from before it joined.
    Skipped,
    /// An entry that cannot be applied (not an MLS message of this group, a
    /// forged sender, a commit that does not verify): passed over, `why`.
    Refused {
        /// Its seq.
        seq: u64,
        /// Why.
        why: String,
    },
}

/// The MLS group id of a conversation.
pub fn group_id(conversation_id: u64) -> GroupId {
    let mut id = b"chatd/conversation/".to_vec();
    id.extend_from_slice(&conversation_id.to_be_bytes());
    GroupId::from_slice(&id)
}

/// A leaf's identity: `user/device`.
pub fn identity(user: &str, device: &str) -> Vec<u8> {
    format!("{user}/{device}").into_bytes()
}

/// The `(user, device)` a credential names.
pub fn parse_identity(credential: &Credential) -> Option<(String, String)> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    let s = std::str::from_utf8(basic.identity()).ok()?;
    let (user, device) = s.split_once('/')?;
    Some((user.to_owned(), device.to_owned()))
}

/// Twelve groups of five digits from SHA-256(identity, signing key).
pub fn safety_number(identity: &[u8], signature_key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"chatd safety number\0");
    ctx.update(identity);
    ctx.update(b"\0");
    ctx.update(signature_key);
    let d = ctx.finish();
    let groups: Vec<String> = d
        .as_ref()
        .chunks(2)
        .take(12)
        .map(|c| format!("{:05}", u32::from(u16::from_be_bytes([c[0], c[1]])) % 100_000))
        .collect();
    groups.join(" ")
}

/// One device's MLS state.
pub struct Device {
    user: String,
    device: String,
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    /// Per conversation: the highest seq applied (or read while in no group there).
    applied: BTreeMap<u64, u64>,
    /// When the device was made (ms since the Unix epoch; 0: not recorded):
    /// no Welcome for it is older.
    created_ms: u64,
    /// Where it is saved (None: kept in memory only).
    path: Option<PathBuf>,
    /// The groups in use, as loaded (openmls writes every change through to
    /// the storage, so this cache never holds anything the file does not).
    groups: HashMap<u64, MlsGroup>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("user", &self.user).field("device", &self.device).finish_non_exhaustive()
    }
}

impl Device {
    /// A new device of `user` called `device` (1-64 of `[A-Za-z0-9_-]`),
    /// with a fresh signing key, saved at `path` (which must not exist).
    pub fn create(path: impl AsRef<Path>, user: &str, device: &str) -> Result<Device, MlsError> {
        let path = path.as_ref().to_path_buf();
        if path.exists() {
            return Err(MlsError::File { path, why: "exists already; open it instead".into() });
        }
        let d = Self::new(user, device, Some(path))?;
        d.save()?;
        Ok(d)
    }

    /// A device kept in memory only (its keys are lost with it): for tools
    /// and load tests, never for a person's device.
    pub fn in_memory(user: &str, device: &str) -> Result<Device, MlsError> {
        Self::new(user, device, None)
    }

    fn new(user: &str, device: &str, path: Option<PathBuf>) -> Result<Device, MlsError> {
        chat_protocol::limits::check_device_id(device).map_err(mls)?;
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(mls)?;
        signer.store(provider.storage()).map_err(mls)?;
        let (user, device, applied, groups) = (user.into(), device.into(), BTreeMap::new(), HashMap::new());
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(Device { user, device, provider, signer, applied, created_ms, path, groups })
    }

    /// The device saved at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Device, MlsError> {
        state_file::load(path.as_ref())
    }

    /// Writes the device's state to its file (if it has one).
    pub fn save(&self) -> Result<(), MlsError> {
        match &self.path {
            Some(path) => state_file::save(self, path),
            None => Ok(()),
        }
    }

    /// The user this device belongs to.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.device
    }

    fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(identity(&self.user, &self.device)).into(),
            signature_key: self.signer.to_public_vec().into(),
        }
    }

    /// `n` new KeyPackages (their private parts kept), serialized to publish.
    pub fn new_key_packages(&mut self, n: usize) -> Result<Vec<Vec<u8>>, MlsError> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let bundle = KeyPackage::builder()
                .build(CIPHERSUITE, &self.provider, &self.signer, self.credential())
                .map_err(mls)?;
            out.push(bundle.key_package().tls_serialize_detached().map_err(mls)?);
        }
        self.save()?;
        Ok(out)
    }

    /// Takes the group of `conv` out of the cache (or the storage) to work
    /// on it; [`Device::put`] gives it back. Err if this device is not in it.
    fn take(&mut self, conv: u64) -> Result<MlsGroup, MlsError> {
        let g = match self.groups.remove(&conv) {
            Some(g) => g,
            None => MlsGroup::load(self.provider.storage(), &group_id(conv))
                .map_err(mls)?
                .ok_or(MlsError::NotInGroup(conv))?,
        };
        if g.is_active() { Ok(g) } else { Err(MlsError::NotInGroup(conv)) }
    }

    /// Gives back a group taken with [`Device::take`].
    fn put(&mut self, conv: u64, g: MlsGroup) {
        self.groups.insert(conv, g);
    }

    /// `f` of the group of `conv`, if this device is in it.
    fn peek<T>(&self, conv: u64, f: impl FnOnce(&MlsGroup) -> T) -> Result<T, MlsError> {
        let loaded;
        let g = match self.groups.get(&conv) {
            Some(g) => g,
            None => {
                loaded = MlsGroup::load(self.provider.storage(), &group_id(conv)).map_err(mls)?;
                loaded.as_ref().ok_or(MlsError::NotInGroup(conv))?
            }
        };
        if g.is_active() { Ok(f(g)) } else { Err(MlsError::NotInGroup(conv)) }
    }

    /// The group's epoch in `conv` (None: not in it).
    pub fn epoch(&self, conv: u64) -> Option<u64> {
        self.peek(conv, |g| g.epoch().as_u64()).ok()
    }

    /// The users and devices of the group of `conv`, by leaf.
    pub fn members(&self, conv: u64) -> Result<Vec<(String, String)>, MlsError> {
        self.peek(conv, |g| g.members().filter_map(|m| parse_identity(&m.credential)).collect())
    }

    /// The safety number of each device in the group of `conv`: digits of
    /// the SHA-256 of its identity and signing key, to compare out of band
    /// (the same on every member's screen, and changed if a key is swapped).
    pub fn safety_numbers(&self, conv: u64) -> Result<Vec<(String, String, String)>, MlsError> {
        self.peek(conv, |g| {
            let mut out = Vec::new();
            for m in g.members() {
                let Some((user, device)) = parse_identity(&m.credential) else { continue };
                out.push((user.clone(), device.clone(), safety_number(&identity(&user, &device), &m.signature_key)));
            }
            out
        })
    }

    /// Applies one stored entry of an E2E conversation, in seq order: joins
    /// from a Welcome meant for this device, applies others' commits,
    /// decrypts messages. An entry already applied is skipped; one that
    /// cannot be applied is [`Received::Refused`] and passed over. Errors
    /// are this device's own (its file, its storage).
    pub fn receive(&mut self, m: &v1::Message) -> Result<Received, MlsError> {
        let Some(Content::Ciphertext(ct)) = m.body.as_ref().and_then(|b| b.content.as_ref()) else {
            return Ok(Received::Skipped);
        };
        let conv = m.conversation_id;
        if self.applied.get(&conv).is_some_and(|&s| m.seq <= s) {
            return Ok(Received::Skipped);
        }
        let applied = match self.take(conv) {
            Err(MlsError::NotInGroup(_)) if ct.commit && !ct.welcome.is_empty() => self.join(conv, m.seq, ct),
            Err(MlsError::NotInGroup(_)) => Ok(Received::Skipped),
            Err(e) => return Err(e),
            Ok(mut g) => {
                let r = self.apply(&mut g, m, ct);
                self.put(conv, g);
                r
            }
        };
        // What another member sent wrong must not wedge this device: it is
        // passed over (a commit nobody can apply leaves the group behind the
        // server's epoch; docs/E2E.md).
        let out = match applied {
            Ok(r) => r,
            Err(e @ (MlsError::Mls(_) | MlsError::Identity(_))) => Received::Refused { seq: m.seq, why: e.to_string() },
            Err(e) => return Err(e),
        };
        if out != Received::Skipped || self.applied.contains_key(&conv) {
            self.applied.insert(conv, m.seq);
            self.save()?;
        }
        Ok(out)
    }

    /// Joins from a Welcome, if it is for this device.
    fn join(&mut self, conv: u64, seq: u64, ct: &v1::E2eCiphertext) -> Result<Received, MlsError> {
        let welcome = match MlsMessageIn::tls_deserialize_exact(ct.welcome.as_ref()).map_err(mls)?.extract() {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => return Err(MlsError::Mls("the welcome field holds no Welcome".into())),
        };
        let config =
            MlsGroupJoinConfig::builder().use_ratchet_tree_extension(true).max_past_epochs(PAST_EPOCHS).build();
        match StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None) {
            Ok(staged) => {
                let g = staged.into_group(&self.provider).map_err(mls)?;
                self.put(conv, g);
                Ok(Received::Joined { seq })
            }
            // Someone else was added.
            Err(WelcomeError::NoMatchingKeyPackage) => Ok(Received::Skipped),
            Err(e) => Err(mls(e)),
        }
    }

    /// Applies a commit or decrypts a message of a group this device is in.
    fn apply(&mut self, g: &mut MlsGroup, m: &v1::Message, ct: &v1::E2eCiphertext) -> Result<Received, MlsError> {
        // Made before this device's group got here: its own commit, or one
        // from before it joined.
        let past = ct.epoch < g.epoch().as_u64();
        if past && ct.commit {
            return Ok(Received::Skipped);
        }
        let msg = MlsMessageIn::tls_deserialize_exact(ct.mls.as_ref()).map_err(mls)?;
        let protocol = msg.try_into_protocol_message().map_err(mls)?;
        let processed = match g.process_message(&self.provider, protocol) {
            Ok(p) => p,
            // A message of an earlier epoch opens with that epoch's kept
            // secrets (it was sequenced before a commit this device made or
            // applied); from before this device joined, or too old, it is skipped.
            Err(_) if past => return Ok(Received::Skipped),
            Err(e) => return Err(mls(e)),
        };
        let (sender, device) = parse_identity(processed.credential())
            .ok_or_else(|| MlsError::Identity("a sender without a user/device identity".into()))?;
        if sender != m.sender_id {
            return Err(MlsError::Identity(format!(
                "MLS sender {sender} in a message the server says {} sent",
                m.sender_id
            )));
        }
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(a) => {
                let content = v1::E2eContent::decode(a.into_bytes().as_slice()).map_err(mls)?;
                Ok(Received::Text { seq: m.seq, sender, device, text: content.text, files: content.files })
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                g.merge_staged_commit(&self.provider, *staged).map_err(mls)?;
                Ok(Received::Committed { epoch: g.epoch().as_u64(), removed: !g.is_active() })
            }
            // This device's own message or commit (read back from history): it knows them.
            ProcessedMessageContent::OwnPrivateMessage | ProcessedMessageContent::OwnPendingCommit => {
                Ok(Received::Skipped)
            }
            // Standalone proposals are not used: members commit directly.
            ProcessedMessageContent::ProposalMessage(_) | ProcessedMessageContent::ExternalJoinProposalMessage(_) => {
                Ok(Received::Skipped)
            }
        }
    }
}
