//! The audit trail on [`Client`], for system admins: one filtered page
//! ([`Client::read_audit`]) or every page ([`Client::read_audit_all`]).
//! Anyone else is refused with FORBIDDEN; see `ReadAudit` in
//! `schemas/chat/v1/chat.proto` for the filters.

use crate::client::{Client, want};
use crate::error::ClientError;
use chat_protocol::v1::{self, command::Body, reply};

impl Client {
    /// One page of the audit trail (`cursor` from the previous page's `next`).
    pub async fn read_audit(&self, read: v1::ReadAudit) -> Result<v1::AuditPage, ClientError> {
        let r = self.request(Body::ReadAudit(read)).await?;
        want(r, "audit page", |r| match r {
            reply::Result::Audit(p) => Some(p),
            _ => None,
        })
    }

    /// Every entry that passes the filters of `read`, page after page.
    pub async fn read_audit_all(&self, mut read: v1::ReadAudit) -> Result<Vec<v1::AuditEntry>, ClientError> {
        let mut all = Vec::new();
        loop {
            let page = self.read_audit(read.clone()).await?;
            all.extend(page.entries);
            if page.next.is_empty() {
                return Ok(all);
            }
            read.cursor = page.next;
            // Only the first page of an export records it.
            read.export_format.clear();
        }
    }
}
