//! Retention and legal hold: the rules of what expires and what a hold
//! covers ([`rules`], sans-IO), the one function every audited retention
//! event goes through ([`audit`]), and the background purge job ([`job`])
//! that removes expired messages with their versions, attachments and
//! search entries, at a bounded rate, resumably and idempotently. The
//! commands that set retention and holds are `crate::command::retention`;
//! the GDPR erasure's rules (what of a user goes, what a hold keeps) are
//! [`erase`], performed by `crate::command::gdpr`; the GDPR export of one
//! user's data into a directory is [`export`]. Attachment bytes that no
//! record names any more are removed by the [`sweep`] the job runs after
//! each pass.

pub mod audit;
pub mod erase;
pub mod export;
pub mod job;
pub mod rules;
pub mod sweep;
