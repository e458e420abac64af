//! The hash chain, sans-IO: the canonical encoding an entry's hash commits
//! to ([`entry_hash`]), the head that appends events ([`Head`]), when a
//! checkpoint is due ([`Cadence`]) and what it signs ([`checkpoint_bytes`]),
//! and the walk that checks a stored chain ([`Verifier`]), naming the first
//! entry that was altered, removed or reordered. No store, clock or key file
//! here: callers pass entries, times and keys in.

use ring::digest::{Context, SHA256};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::event::AuditEvent;
use crate::store::audit::{AuditRecord, CheckpointRecord};

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn put_str(ctx: &mut Context, s: &str) {
    ctx.update(&(s.len() as u64).to_be_bytes());
    ctx.update(s.as_bytes());
}

/// SHA-256 (hex) of an entry's canonical encoding: a version tag, then every
/// field but `hash` in declaration order, strings length-prefixed (u64 BE),
/// integers u64 BE. `details` is hashed as the exact text stored.
pub fn entry_hash(e: &AuditRecord) -> String {
    let mut ctx = Context::new(&SHA256);
    put_str(&mut ctx, "chat.audit.entry.v1");
    put_str(&mut ctx, &e.chain);
    ctx.update(&e.seq.to_be_bytes());
    ctx.update(&e.at_ms.to_be_bytes());
    put_str(&mut ctx, &e.kind);
    put_str(&mut ctx, &e.actor);
    ctx.update(&e.conversation_id.to_be_bytes());
    put_str(&mut ctx, &e.target_user);
    put_str(&mut ctx, &e.details);
    put_str(&mut ctx, &e.prev_hash);
    hex::encode(ctx.finish().as_ref())
}

/// The bytes a checkpoint's signature covers: tag, chain, seq, hash, time.
pub fn checkpoint_bytes(chain: &str, seq: u64, hash: &str, at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + chain.len() + hash.len());
    for s in ["chat.audit.checkpoint.v1", chain] {
        out.extend_from_slice(&(s.len() as u64).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(hash.len() as u64).to_be_bytes());
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(&at_ms.to_be_bytes());
    out
}

/// Signs the chain's state at `(seq, hash)`.
pub fn sign_checkpoint(key: &Ed25519KeyPair, chain: &str, seq: u64, hash: &str, at_ms: u64) -> CheckpointRecord {
    let sig = key.sign(&checkpoint_bytes(chain, seq, hash, at_ms));
    CheckpointRecord {
        chain: chain.to_owned(),
        seq,
        hash: hash.to_owned(),
        at_ms,
        public_key: hex::encode(key.public_key().as_ref()),
        signature: hex::encode(sig.as_ref()),
    }
}

/// Whether a checkpoint's signature is good under its recorded key.
pub fn checkpoint_signed(cp: &CheckpointRecord) -> bool {
    let (Ok(key), Ok(sig)) = (hex::decode(&cp.public_key), hex::decode(&cp.signature)) else { return false };
    UnparsedPublicKey::new(&ED25519, key).verify(&checkpoint_bytes(&cp.chain, cp.seq, &cp.hash, cp.at_ms), &sig).is_ok()
}

/// When a checkpoint is due: after `every` entries, or `interval_ms` after
/// the last one if entries came since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Entries between checkpoints at most.
    pub every: u64,
    /// Milliseconds between checkpoints at most (while entries come).
    pub interval_ms: u64,
}

/// A chain's head, owned by its one writer: the last seq and hash, and what
/// came since the last checkpoint.
#[derive(Debug, Clone)]
pub struct Head {
    chain: String,
    seq: u64,
    hash: String,
    unsigned: u64,
    last_checkpoint_ms: u64,
}

impl Head {
    /// The head after `last`, the chain's last stored entry (None: a new
    /// chain). `now_ms` starts the checkpoint interval.
    pub fn new(chain: &str, last: Option<&AuditRecord>, now_ms: u64) -> Self {
        let (seq, hash) = last.map_or((0, GENESIS.to_owned()), |e| (e.seq, e.hash.clone()));
        // Entries left unsigned by a previous run get the next checkpoint.
        Self { chain: chain.to_owned(), seq, hash, unsigned: u64::from(seq > 0), last_checkpoint_ms: now_ms }
    }

    /// The chain id.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The last seq (0: empty).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The entry for `ev` at `at_ms`, chained after the head, which moves on.
    pub fn append(&mut self, ev: &AuditEvent, at_ms: u64) -> AuditRecord {
        let mut e = AuditRecord {
            chain: self.chain.clone(),
            seq: self.seq + 1,
            at_ms,
            kind: ev.kind.as_str().to_owned(),
            actor: ev.actor.clone(),
            conversation_id: ev.conversation_id,
            target_user: ev.target_user.clone(),
            details: ev.details.to_string(),
            prev_hash: self.hash.clone(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        self.seq = e.seq;
        self.hash = e.hash.clone();
        self.unsigned += 1;
        e
    }

    /// Whether a checkpoint is due at `now_ms`.
    pub fn checkpoint_due(&self, cadence: Cadence, now_ms: u64) -> bool {
        self.unsigned > 0
            && (self.unsigned >= cadence.every || now_ms.saturating_sub(self.last_checkpoint_ms) >= cadence.interval_ms)
    }

    /// Signs the head; the cadence restarts at `now_ms`.
    pub fn checkpoint(&mut self, key: &Ed25519KeyPair, now_ms: u64) -> CheckpointRecord {
        self.unsigned = 0;
        self.last_checkpoint_ms = now_ms;
        sign_checkpoint(key, &self.chain, self.seq, &self.hash, now_ms)
    }
}

/// What is wrong with a stored chain: the first bad entry and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The entry's content no longer matches its hash, or the next entry's
    /// link (an entry re-hashed after a change).
    #[error("chain {chain} seq {seq}: altered ({why})")]
    Altered {
        /// The chain.
        chain: String,
        /// The entry.
        seq: u64,
        /// What does not match.
        why: String,
    },
    /// The entry is missing: the chain goes on past it, or a checkpoint signed it.
    #[error("chain {chain} seq {seq}: removed ({why})")]
    Removed {
        /// The chain.
        chain: String,
        /// The missing entry.
        seq: u64,
        /// What shows it.
        why: String,
    },
    /// The entry is stored out of its place.
    #[error("chain {chain} seq {seq}: reordered ({why})")]
    Reordered {
        /// The chain.
        chain: String,
        /// The entry.
        seq: u64,
        /// Where it was found.
        why: String,
    },
    /// A checkpoint's signature, key or hash is wrong.
    #[error("chain {chain} checkpoint at seq {seq}: {why}")]
    Checkpoint {
        /// The chain.
        chain: String,
        /// The checkpoint's seq.
        seq: u64,
        /// What is wrong.
        why: String,
    },
}

/// A chain found whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The chain.
    pub chain: String,
    /// Entries walked.
    pub entries: u64,
    /// Checkpoints checked (signature and hash).
    pub checkpoints: u64,
    /// Entries after the last checkpoint (not yet signed).
    pub unsigned: u64,
}

/// Walks one chain's stored entries in storage order (ascending key), in
/// constant memory besides the checkpoints: [`push`](Self::push) each, then
/// [`finish`](Self::finish). The first fault is final.
#[derive(Debug)]
pub struct Verifier {
    chain: String,
    expected: u64,
    prev_hash: String,
    /// A seq the walk skipped over: removed, unless it turns up later (reordered).
    missing: Option<(u64, u64)>,
    checkpoints: Vec<CheckpointRecord>,
    next_cp: usize,
    trusted_key: Option<String>,
}

impl Verifier {
    /// A walk of `chain` against its `checkpoints` (any order); with
    /// `trusted_key` (hex), a checkpoint signed by any other key is a fault.
    pub fn new(chain: &str, mut checkpoints: Vec<CheckpointRecord>, trusted_key: Option<String>) -> Self {
        checkpoints.sort_by_key(|c| c.seq);
        Self {
            chain: chain.to_owned(),
            expected: 1,
            prev_hash: GENESIS.to_owned(),
            missing: None,
            checkpoints,
            next_cp: 0,
            trusted_key,
        }
    }

    fn altered(&self, seq: u64, why: impl Into<String>) -> Fault {
        Fault::Altered { chain: self.chain.clone(), seq, why: why.into() }
    }

    /// Checks the next stored entry.
    pub fn push(&mut self, e: &AuditRecord) -> Result<(), Fault> {
        if let Some((missing, after)) = self.missing {
            // Past a gap only the missing seq matters: found later, it was moved.
            if e.seq == missing {
                let why = format!("stored after seq {after}");
                return Err(Fault::Reordered { chain: self.chain.clone(), seq: missing, why });
            }
            return Ok(());
        }
        if e.seq < self.expected {
            let why = format!("found where seq {} belongs", self.expected);
            return Err(Fault::Reordered { chain: self.chain.clone(), seq: e.seq, why });
        }
        if e.seq > self.expected {
            self.missing = Some((self.expected, e.seq));
            return Ok(());
        }
        if e.chain != self.chain {
            return Err(self.altered(e.seq, format!("it names chain {}", e.chain)));
        }
        if entry_hash(e) != e.hash {
            return Err(self.altered(e.seq, "its content does not match its hash"));
        }
        if e.prev_hash != self.prev_hash {
            if e.seq == 1 {
                return Err(self.altered(1, "the first entry does not start from the genesis hash"));
            }
            let why = format!("its hash is not the one entry {} was chained to", e.seq);
            return Err(self.altered(e.seq - 1, why));
        }
        while let Some(cp) = self.checkpoints.get(self.next_cp).filter(|c| c.seq <= e.seq) {
            self.check_checkpoint(cp, e)?;
            self.next_cp += 1;
        }
        self.expected += 1;
        self.prev_hash = e.hash.clone();
        Ok(())
    }

    fn check_checkpoint(&self, cp: &CheckpointRecord, e: &AuditRecord) -> Result<(), Fault> {
        let fault = |why: &str| Fault::Checkpoint { chain: self.chain.clone(), seq: cp.seq, why: why.to_owned() };
        if !checkpoint_signed(cp) || cp.chain != self.chain {
            return Err(fault("the signature does not verify"));
        }
        if self.trusted_key.as_ref().is_some_and(|k| *k != cp.public_key) {
            return Err(fault("signed by a key other than this node's"));
        }
        if cp.seq != e.seq {
            // Checkpoints are walked in order as their seq is reached: this one names no stored entry.
            return Err(Fault::Removed {
                chain: self.chain.clone(),
                seq: cp.seq,
                why: "a checkpoint signed it".into(),
            });
        }
        if cp.hash != e.hash {
            return Err(self.altered(e.seq, "its hash is not the one a signed checkpoint recorded"));
        }
        Ok(())
    }

    /// The verdict once every entry was pushed.
    pub fn finish(self) -> Result<Verified, Fault> {
        if let Some((seq, after)) = self.missing {
            let why = format!("the chain goes from seq {} to {after}", seq - 1);
            return Err(Fault::Removed { chain: self.chain, seq, why });
        }
        let last = self.expected - 1;
        if let Some(cp) = self.checkpoints.get(self.next_cp) {
            let why = format!("a signed checkpoint names seq {} but the chain ends at {last}", cp.seq);
            return Err(Fault::Removed { chain: self.chain, seq: last + 1, why });
        }
        let signed = self.checkpoints.last().map_or(0, |c| c.seq);
        Ok(Verified {
            chain: self.chain,
            entries: last,
            checkpoints: self.checkpoints.len() as u64,
            unsigned: last - signed.min(last),
        })
    }
}

#[cfg(test)]
mod tests;
