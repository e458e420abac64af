//! Making, rotating, revoking and listing service accounts (an admin's
//! operations, from `chatd service-accounts` over the control socket or on
//! the store directly): [`Op`] in, [`Done`] out, each change recorded on the
//! audit trail. A new or rotated credential is returned once and never
//! stored: only its SHA-256 is.

use super::credential;
use crate::audit::{Audit, AuditEvent, EventKind};
use crate::store::service_accounts::{Scope, ServiceAccountRecord, ServiceAccountStore};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// Longest display name.
const MAX_NAME: usize = 100;

/// An operation on service accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Make `id` with these scopes.
    Create {
        /// Its id (`[a-z0-9-]`, 1-32 bytes).
        id: String,
        /// The name shown beside its messages.
        display_name: String,
        /// What it may do.
        scopes: Vec<Scope>,
    },
    /// Give `id` a new secret (the old one stops working at once).
    Rotate {
        /// The account.
        id: String,
    },
    /// Revoke `id` for good.
    Revoke {
        /// The account.
        id: String,
    },
    /// List every account.
    List,
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Done {
    /// The account and its credential, shown this once.
    Credential {
        /// The account (its secret's hash blanked).
        account: ServiceAccountRecord,
        /// `chatd_sa_<id>_<secret>`.
        credential: String,
    },
    /// The revoked account.
    Revoked(ServiceAccountRecord),
    /// Every account (hashes blanked).
    Accounts(Vec<ServiceAccountRecord>),
}

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A bad id, name or scope list.
    #[error("{0}")]
    Invalid(String),
    /// The id is taken.
    #[error("service account {0:?} exists already")]
    Exists(String),
    /// No such account.
    #[error("no service account {0:?}")]
    NotFound(String),
    /// It was revoked.
    #[error("service account {0:?} is revoked")]
    Revoked(String),
    /// Changed by someone else meanwhile.
    #[error("service account {0:?} changed meanwhile; try again")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An account as shown: no secret hash, no webhook keys.
pub fn shown(mut a: ServiceAccountRecord) -> ServiceAccountRecord {
    a.secret_sha256.clear();
    a.webhooks.iter_mut().for_each(|h| h.secret.clear());
    a
}

fn check(id: &str, display_name: &str, scopes: &[Scope]) -> Result<(), AccountError> {
    credential::check_id(id).map_err(AccountError::Invalid)?;
    if display_name.trim().is_empty() || display_name.len() > MAX_NAME || display_name.chars().any(char::is_control) {
        return Err(AccountError::Invalid(format!("a display name is 1-{MAX_NAME} bytes, no control characters")));
    }
    if scopes.is_empty() {
        return Err(AccountError::Invalid("at least one scope: read, write or admin".into()));
    }
    Ok(())
}

/// Runs `op` as `actor` at `now_ms`, recording changes on `audit`.
pub async fn apply(store: &Store, audit: &Audit, actor: &str, op: Op, now_ms: u64) -> Result<Done, AccountError> {
    match op {
        Op::List => Ok(Done::Accounts(store.service_accounts().await?.into_iter().map(shown).collect())),
        Op::Create { id, display_name, mut scopes } => {
            check(&id, &display_name, &scopes)?;
            scopes.sort();
            scopes.dedup();
            let (credential, secret_sha256) = credential::make(&id, rand::random());
            let rec = ServiceAccountRecord {
                id: id.clone(),
                display_name,
                scopes,
                secret_sha256,
                created_at_ms: now_ms,
                created_by: actor.into(),
                revoked_at_ms: 0,
                revoked_by: String::new(),
                updated_at_ms: now_ms,
                webhooks: Vec::new(),
            };
            if !store.put_service_account(&rec, None).await? {
                return Err(AccountError::Exists(id));
            }
            let names: Vec<&str> = rec.scopes.iter().map(|s| s.name()).collect();
            let details = serde_json::json!({"scopes": names, "display_name": rec.display_name});
            record(audit, actor, EventKind::ServiceAccountCreated, &id, details).await;
            Ok(Done::Credential { account: shown(rec), credential })
        }
        Op::Rotate { id } => {
            let (credential, secret_sha256) = credential::make(&id, rand::random());
            let rec = update(store, &id, now_ms, |rec, _| {
                rec.secret_sha256 = secret_sha256;
                Ok(())
            })
            .await?;
            record(audit, actor, EventKind::ServiceAccountRotated, &id, serde_json::json!({})).await;
            Ok(Done::Credential { account: shown(rec), credential })
        }
        Op::Revoke { id } => {
            let rec = update(store, &id, now_ms, |rec, at| {
                rec.revoked_at_ms = at;
                rec.revoked_by = actor.into();
                Ok(())
            })
            .await?;
            record(audit, actor, EventKind::ServiceAccountRevoked, &id, serde_json::json!({})).await;
            Ok(Done::Revoked(shown(rec)))
        }
    }
}

/// Changes the active account `id` with `change` (given the write time, after
/// the stored one: the compare-and-set token must change) over the version read.
pub async fn update(
    store: &Store,
    id: &str,
    now_ms: u64,
    change: impl FnOnce(&mut ServiceAccountRecord, u64) -> Result<(), AccountError>,
) -> Result<ServiceAccountRecord, AccountError> {
    let old = current(store, id).await?;
    let at = now_ms.max(old.updated_at_ms + 1);
    let mut rec = ServiceAccountRecord { updated_at_ms: at, ..old.clone() };
    change(&mut rec, at)?;
    if !store.put_service_account(&rec, Some(old.updated_at_ms)).await? {
        return Err(AccountError::Conflict(id.into()));
    }
    Ok(rec)
}

/// The active account `id`.
async fn current(store: &Store, id: &str) -> Result<ServiceAccountRecord, AccountError> {
    let a = store.get_service_account(id).await?.ok_or_else(|| AccountError::NotFound(id.into()))?;
    if !a.active() {
        return Err(AccountError::Revoked(id.into()));
    }
    Ok(a)
}

/// Records a change of service account `id` (its user `svc:<id>` the target).
async fn record(audit: &Audit, actor: &str, kind: EventKind, id: &str, mut details: serde_json::Value) {
    details["service_account"] = id.into();
    let ev = AuditEvent::new(kind, actor).target(credential::user_id(id)).details(details);
    if let Err(e) = audit.record(ev).await {
        tracing::error!(error = %e, "a service account change was not recorded on the audit trail");
    }
}
