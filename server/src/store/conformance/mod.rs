//! The conformance suite every [`MessageStore`] backend must pass.
//!
//! Written against the trait only. A backend provides a [`ConformanceFactory`]
//! and invokes [`conformance_tests!`](crate::conformance_tests) with it in an
//! integration test; that expands to one `#[tokio::test]` per case, so each
//! case is reported on its own:
//!
//! ```ignore
//! mod embedded {
//!     chat_server::conformance_tests!(crate::EmbeddedFactory::default());
//! }
//! ```
//!
//! Each case takes the factory and makes the stores it needs; the cases panic
//! (as tests do) when the backend breaks the contract. The cases live by
//! subject: `messages` (appends, reads, seqs, concurrency), `idempotency`
//! (client message ids, lookups and duplicates refused by the append),
//! `records` (conversations, members, watermarks, users, epoch, reopening),
//! `lists` (users' conversations by activity, the support queue, paged),
//! `versions` (events rewriting their target, the versions kept),
//! `templates` (the [`TemplateStore`](crate::store::templates::TemplateStore) part)
//! `attachments` (the [`AttachmentStore`](crate::store::attachments::AttachmentStore) part)
//! and `audit` (the [`AuditStore`](crate::store::audit::AuditStore) part).
//! `retention` (the [`RetentionStore`](crate::store::retention::RetentionStore) part)
//! `at_rest` (the [`DataKeyStore`](crate::store::data_keys::DataKeyStore) part and
//! encryption at rest over the backend), `service_accounts` (the
//! [`ServiceAccountStore`](crate::store::service_accounts::ServiceAccountStore) part)
//! and `key_packages` (the
//! [`KeyPackageStore`](crate::store::key_packages::KeyPackageStore) part).

mod at_rest;
mod attachments;
mod audit;
mod harness;
mod idempotency;
mod key_packages;
mod lists;
mod messages;
mod records;
mod retention;
mod service_accounts;
mod templates;
mod versions;

pub use at_rest::*;
pub use attachments::*;
pub use audit::*;
pub use harness::{ConformanceFactory, TestKeyspaces, report_skip};
pub use idempotency::*;
pub use key_packages::*;
pub use lists::*;
pub use messages::*;
pub use records::*;
pub use retention::*;
pub use service_accounts::*;
pub use templates::*;
pub use versions::*;

/// Expands to one `#[tokio::test]` per conformance case, each run against a
/// store made by the given factory expression (a [`ConformanceFactory`]).
///
/// The invoking crate needs `tokio` with the `macros` and `rt-multi-thread`
/// features.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            append_then_read_back,
            read_forward_pages,
            read_backward_pages,
            read_range_bounds,
            last_seq_follows_appends,
            seq_taken_writes_nothing,
            idempotency_lookup,
            idempotency_answers_only_stored_messages,
            duplicates_write_nothing_and_are_named,
            a_lost_seq_leaves_no_duplicate,
            a_duplicate_fails_only_its_call,
            concurrent_appends_all_land,
            concurrent_duplicate_seq_one_wins,
            create_if_absent,
            conversation_ids_lists_every_conversation,
            update_conversation_replaces,
            member_indexes_in_step,
            watermarks_only_move_forward,
            append_moves_sender_watermarks,
            support_queue_follows_state,
            lists_page_by_activity,
            touch_moves_every_members_list,
            users_upsert_and_get,
            users_directory_pages,
            epoch_per_store,
            reopen_keeps_everything,
            events_rewrite_their_target_and_keep_versions,
            events_in_one_append_apply_in_order,
            a_refused_event_changes_nothing,
            templates_put_is_compare_and_set,
            templates_list_by_scope_and_owner,
            concurrent_template_updates_one_wins,
            attachments_by_conversation_and_id,
            attachments_page_by_conversation,
            attachments_walk_of_every_conversation,
            audit_entries_append_and_scan,
            audit_entries_read_across_buckets,
            purge_removes_through_the_mark_only,
            legal_holds_set_list_release,
            attachment_records_are_deleted,
            versions_of_one_message_are_forgotten,
            a_stripped_message_keeps_its_metadata_only,
            data_keys_insert_replace_delete_page,
            content_is_sealed_at_rest,
            service_accounts_put_is_compare_and_set,
            key_packages_are_claimed_once,
        );
    };
    (@cases $factory:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let mut factory = $factory;
                if let Some(why) = $crate::store::conformance::ConformanceFactory::skip(&factory) {
                    $crate::store::conformance::report_skip(stringify!($case), &why);
                    return;
                }
                $crate::store::conformance::$case(&mut factory).await;
                $crate::store::conformance::ConformanceFactory::cleanup(&mut factory).await;
            }
        )+
    };
}
