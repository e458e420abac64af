//! Encryption at rest of message content (AES-256-GCM with `ring`), over any
//! backend: [`AtRest`] seals what [`Store`](super::Store) appends (messages,
//! an event's new latest state of its target, the kept versions) and opens
//! what it reads, so the backends only ever hold sealed content. Key
//! hierarchy: a master key ([`master::KeyWrap`]: from a file or the
//! environment, a KMS later) wraps one random data key per conversation,
//! stored by [`DataKeyStore`] and cached unwrapped in a bounded, sharded
//! cache. Rotation re-wraps every data key under a new master key while the
//! server serves; shredding a conversation's data key leaves its content
//! unreadable for good. What stays plaintext: ids, seqs, senders, times,
//! kinds, reactions, membership, the user directory, templates, the audit
//! trail's metadata and the search index (SECURITY.md says why).

pub mod error;
pub mod master;
pub mod seal;

pub use error::AtRestError;

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ring::aead::LessSafeKey;

use self::master::{KeyWrap, Keyring, LocalMasterKey, wrapped_parts};
use self::seal::{Slot, Writer, key_of, new_key};
use super::data_keys::DataKeyStore;
use super::error::StoreResult;
use super::records::{MessageVersion, NewMessage};
use crate::config::EncryptionConfig;

/// The id of the check key (no conversation has id 0).
const CHECK_ID: u64 = 0;

/// The id of the blob key-encryption key (conversation ids stay below 2^53).
const BLOBS_ID: u64 = u64::MAX;

/// What a destroyed data key is replaced by (crypto-shredding): not a
/// wrapped key, so nothing opens with it and no new key is made in its
/// place. Written whether or not encryption is on, so an erased
/// conversation stays erased if encryption is turned on later.
pub const DESTROYED: &[u8] = b"destroyed";

/// Unwrapped data keys kept in memory at most.
const CACHED_KEYS: usize = 100_000;

/// Data keys read or re-wrapped per page by a rotation.
const ROTATE_PAGE: usize = 500;

/// Passes a rotation makes at most (the last finds nothing left to re-wrap).
const ROTATE_PASSES: usize = 5;

/// The associated data of a wrapped data key: its conversation.
fn owner(conversation_id: u64) -> [u8; 23] {
    let mut out = [0u8; 23];
    out[..15].copy_from_slice(b"chatd data key\0");
    out[15..].copy_from_slice(&conversation_id.to_be_bytes());
    out
}

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rotated {
    /// The new master key's id.
    pub master_key: String,
    /// Data keys re-wrapped under it (the check key included).
    pub rewrapped: u64,
    /// Data keys that were wrapped under it already.
    pub already: u64,
}

/// Encryption at rest: the keyring and the cache of unwrapped data keys.
pub struct AtRest {
    ring: RwLock<Arc<Keyring>>,
    keys: quick_cache::sync::Cache<u64, Arc<LessSafeKey>>,
}

impl AtRest {
    /// Over `ring` (not yet checked against a store: [`AtRest::check`]).
    pub fn new(ring: Keyring) -> Self {
        Self { ring: RwLock::new(Arc::new(ring)), keys: quick_cache::sync::Cache::new(CACHED_KEYS) }
    }

    /// The configured keyring (None: encryption is off).
    pub fn from_config(cfg: &EncryptionConfig) -> Result<Option<Self>, AtRestError> {
        let current: Arc<dyn KeyWrap> = match (&cfg.master_key_file, cfg.master_key.as_str()) {
            (None, "") => return Ok(None),
            (Some(path), _) => Arc::new(LocalMasterKey::from_file(path)?),
            (None, text) => Arc::new(LocalMasterKey::from_hex(text, "encryption.master_key")?),
        };
        let previous = cfg
            .previous_master_key_files
            .iter()
            .map(|p| LocalMasterKey::from_file(p).map(|k| Arc::new(k) as Arc<dyn KeyWrap>))
            .collect::<Result<_, _>>()?;
        Ok(Some(Self::new(Keyring { current, previous })))
    }

    /// The keyring now.
    pub fn ring(&self) -> Arc<Keyring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Checks that the keyring opens the store's check key (made under the
    /// current master key on first use): a wrong or missing master key is
    /// refused here, at start, not at the first read.
    pub async fn check(&self, store: &impl DataKeyStore) -> StoreResult<()> {
        self.key(store, CHECK_ID, true).await.map(drop)
    }

    /// A conversation's data key; made and stored if it has none and `make`.
    async fn key(&self, store: &impl DataKeyStore, conv: u64, make: bool) -> StoreResult<Option<Arc<LessSafeKey>>> {
        if let Some(k) = self.keys.get(&conv) {
            return Ok(Some(k));
        }
        let ring = self.ring();
        let wrapped = match store.data_key(conv).await? {
            Some(w) => w,
            None if make => store.insert_data_key(conv, &ring.current.wrap(&owner(conv), &new_key().0)?).await?,
            None => return Ok(None),
        };
        if wrapped == DESTROYED {
            return if make { Err(AtRestError::Erased { conversation_id: conv }.into()) } else { Ok(None) };
        }
        let key = Arc::new(key_of(&ring.unwrap(&owner(conv), &wrapped)?));
        self.keys.insert(conv, key.clone());
        Ok(Some(key))
    }

    /// A conversation's data key, made if it has none (refused when destroyed).
    async fn made_key(&self, store: &impl DataKeyStore, conv: u64) -> StoreResult<Arc<LessSafeKey>> {
        let key = self.key(store, conv, true).await?;
        key.ok_or_else(|| AtRestError::Erased { conversation_id: conv }.into())
    }

    /// The key that wraps each sealed attachment's own key (made on first
    /// use; a master key rotation re-wraps it with the conversations' keys).
    pub async fn blob_key(&self, store: &impl DataKeyStore) -> StoreResult<Arc<LessSafeKey>> {
        self.made_key(store, BLOBS_ID).await
    }

    /// Seals the content of an append's messages (and of an event's target
    /// write) in place.
    pub async fn seal_append(&self, store: &impl DataKeyStore, msgs: &mut [NewMessage]) -> StoreResult<()> {
        for m in msgs {
            let conv = m.conversation_id;
            let key = self.made_key(store, conv).await?;
            if let Some(s) = seal::seal(&key, conv, Slot::Message(m.seq), Writer::Append(m.seq), &m.encoded)? {
                m.encoded = Bytes::from(s);
            }
            if let Some(t) = m.target.as_deref_mut() {
                if let Some(s) = seal::seal(&key, conv, Slot::Message(t.seq), Writer::Latest(m.seq), &t.latest)? {
                    t.latest = Bytes::from(s);
                }
                let slot = Slot::Version { target: t.seq, event: m.seq };
                if let Some(s) = seal::seal(&key, conv, slot, Writer::Version(m.seq), &t.version.prior)? {
                    t.version.prior = s;
                }
            }
        }
        Ok(())
    }

    /// Opens read messages in place. A conversation whose key was shredded
    /// reads as its messages' metadata, without content.
    pub async fn open_rows(&self, store: &impl DataKeyStore, conv: u64, rows: &mut [(u64, Bytes)]) -> StoreResult<()> {
        let mut key = None;
        for (seq, body) in rows {
            if let Some(opened) = self.open_one(store, conv, Slot::Message(*seq), body, &mut key).await? {
                *body = Bytes::from(opened);
            }
        }
        Ok(())
    }

    /// Opens kept versions in place (a shredded key: without content).
    pub async fn open_versions(
        &self,
        store: &impl DataKeyStore,
        conv: u64,
        versions: &mut [MessageVersion],
    ) -> StoreResult<()> {
        let mut key = None;
        for v in versions {
            let slot = Slot::Version { target: v.target_seq, event: v.event_seq };
            if let Some(opened) = self.open_one(store, conv, slot, &v.prior, &mut key).await? {
                v.prior = opened;
            }
        }
        Ok(())
    }

    /// `stored` opened for `slot` of `conv` (a shredded key: its metadata
    /// only); None: not sealed. `key` holds the conversation's key once looked up.
    async fn open_one(
        &self,
        store: &impl DataKeyStore,
        conv: u64,
        slot: Slot,
        stored: &[u8],
        key: &mut Option<Option<Arc<LessSafeKey>>>,
    ) -> StoreResult<Option<Vec<u8>>> {
        if !seal::is_sealed(stored)? {
            return Ok(None);
        }
        if key.is_none() {
            *key = Some(self.key(store, conv, false).await?);
        }
        Ok(Some(match key.as_ref().and_then(Option::as_ref) {
            Some(k) => seal::open(k, conv, slot, stored)?,
            None => seal::strip(stored)?,
        }))
    }

    /// Makes `new` the current master key (the old ones stay accepted) and
    /// re-wraps every data key under it, while the store serves: each key is
    /// replaced only if unchanged since read (a concurrent rotation or
    /// shredding wins), in passes until one finds every key under `new`.
    /// Idempotent: a repeat re-wraps nothing.
    pub async fn rotate(&self, store: &impl DataKeyStore, new: Arc<dyn KeyWrap>) -> StoreResult<Rotated> {
        let ring = {
            let mut guard = self.ring.write().unwrap_or_else(|p| p.into_inner());
            let old = guard.clone();
            let previous =
                std::iter::once(&old.current).chain(&old.previous).filter(|k| k.id() != new.id()).cloned().collect();
            *guard = Arc::new(Keyring { current: new.clone(), previous });
            guard.clone()
        };
        let mut done = Rotated { master_key: new.id().to_owned(), ..Rotated::default() };
        // A key made with the old master key while the first pass ran may
        // sit behind its page: passes go on until one re-wraps nothing.
        for pass in 0..ROTATE_PASSES {
            let (rewrapped, already) = self.rewrap_pass(store, &ring, new.as_ref()).await?;
            done.rewrapped += rewrapped;
            if pass == 0 {
                done.already = already;
            }
            if rewrapped == 0 {
                break;
            }
        }
        Ok(done)
    }

    /// One pass over every data key: re-wraps those not under `new`; what it
    /// re-wrapped, and how many were under it already.
    async fn rewrap_pass(
        &self,
        store: &impl DataKeyStore,
        ring: &Keyring,
        new: &dyn KeyWrap,
    ) -> StoreResult<(u64, u64)> {
        let (mut rewrapped, mut already, mut after) = (0, 0, None);
        loop {
            let page = store.data_keys_page(after, ROTATE_PAGE).await?;
            let Some(&(last, _)) = page.last() else { break };
            for (conv, wrapped) in page {
                if wrapped == DESTROYED {
                    continue;
                }
                if wrapped_parts(&wrapped)?.0 == new.id() {
                    already += 1;
                    continue;
                }
                let fresh = new.wrap(&owner(conv), &ring.unwrap(&owner(conv), &wrapped)?)?;
                if store.replace_data_key(conv, &wrapped, &fresh).await? {
                    rewrapped += 1;
                }
            }
            after = Some(last);
        }
        Ok((rewrapped, already))
    }

    /// Forgets a conversation's cached key (after [`destroy_key`]).
    pub fn evict(&self, conv: u64) {
        self.keys.remove(&conv);
    }
}

/// Replaces a conversation's data key by [`DESTROYED`] (crypto-shredding;
/// a conversation without one gets the marker all the same, so none is made
/// later): its sealed content can never be read again. Whether a key was
/// destroyed (false: there was none, or it was destroyed before).
/// Compare-and-set, so a key made meanwhile is destroyed too.
pub async fn destroy_key(store: &impl DataKeyStore, conv: u64) -> StoreResult<bool> {
    loop {
        match store.data_key(conv).await? {
            Some(w) if w == DESTROYED => return Ok(false),
            Some(w) => {
                if store.replace_data_key(conv, &w, DESTROYED).await? {
                    return Ok(true);
                }
            }
            None => {
                if store.insert_data_key(conv, DESTROYED).await? == DESTROYED {
                    return Ok(false);
                }
            }
        }
    }
}

/// Refuses a store that holds encrypted content when no master key is
/// configured (its check key exists).
pub async fn refuse_if_encrypted(store: &impl DataKeyStore) -> StoreResult<()> {
    match store.data_key(CHECK_ID).await? {
        None => Ok(()),
        Some(w) => Err(AtRestError::NotConfigured { id: wrapped_parts(&w)?.0.to_owned() }.into()),
    }
}
