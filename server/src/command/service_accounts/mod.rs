//! Service accounts of the server API (`crate::api`): their credentials
//! ([`credential`], sans-IO), the operations on them with their audit
//! ([`accounts`]: what `chatd service-accounts` runs too), and the commands
//! through which system admins manage them from the apps (here).

pub mod accounts;
pub mod credential;

use super::request::{Requester, err};
use crate::store::service_accounts::{Scope, ServiceAccountRecord};
use accounts::{AccountError, Done, Op};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role, reply};

fn to_wire(a: &ServiceAccountRecord) -> v1::ServiceAccount {
    v1::ServiceAccount {
        id: a.id.clone(),
        display_name: a.display_name.clone(),
        scopes: a.scopes.iter().map(|s| s.name().to_string()).collect(),
        created_at_ms: a.created_at_ms,
        created_by: a.created_by.clone(),
        revoked_at_ms: a.revoked_at_ms,
        revoked_by: a.revoked_by.clone(),
        webhooks: u32::try_from(a.webhooks.len()).unwrap_or(u32::MAX),
    }
}

fn account_err(e: AccountError) -> WireError {
    let code = match &e {
        AccountError::Invalid(_) => ErrorCode::InvalidArgument,
        AccountError::Exists(_) | AccountError::Conflict(_) => ErrorCode::Conflict,
        AccountError::NotFound(_) | AccountError::Revoked(_) => ErrorCode::NotFound,
        AccountError::Store(_) => ErrorCode::Unavailable,
    };
    WireError::new(code, e.to_string())
}

/// Runs a service-account command of a system admin.
pub async fn run(req: &Requester, body: v1::command::Body) -> Result<reply::Result, WireError> {
    use v1::command::Body as B;
    if req.caller.role != Role::Admin {
        return Err(err(ErrorCode::Forbidden, "only system admins manage service accounts"));
    }
    let op = match body {
        B::ListServiceAccounts(_) => Op::List,
        B::CreateServiceAccount(c) => {
            let scopes = c
                .scopes
                .iter()
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        err(ErrorCode::InvalidArgument, format!("unknown scope {s:?}: read, write or admin"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Op::Create { id: c.id, display_name: c.display_name, scopes }
        }
        B::RotateServiceAccount(r) => Op::Rotate { id: r.id },
        B::RevokeServiceAccount(r) => Op::Revoke { id: r.id },
        _ => return Err(err(ErrorCode::UnknownCommand, "not a service-account command")),
    };
    let now_ms = chat_protocol::unix_ms(std::time::SystemTime::now());
    let shared = &req.ctx.shared;
    match accounts::apply(&shared.store, &shared.audit, &req.caller.user, op, now_ms).await.map_err(account_err)? {
        Done::Accounts(all) => {
            Ok(reply::Result::ServiceAccounts(v1::ServiceAccounts { accounts: all.iter().map(to_wire).collect() }))
        }
        Done::Revoked(a) => Ok(reply::Result::ServiceAccounts(v1::ServiceAccounts { accounts: vec![to_wire(&a)] })),
        Done::Credential { account, credential } => {
            Ok(reply::Result::ServiceAccountCredential(v1::ServiceAccountCredential {
                account: Some(to_wire(&account)),
                credential,
            }))
        }
    }
}
