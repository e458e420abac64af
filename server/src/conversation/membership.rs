//! The rules of the membership and metadata operations (join, leave, add,
//! remove, set role, archive, set retention, created, and who may list the members): pure
//! functions that decide, from what the owner knows, whether an operation is
//! allowed and what it takes: a [`Plan`] of store writes and of what to tell
//! whom afterwards. The driver performs the writes and hands each one to the
//! owner once it is durable; the owner then announces. Nothing here does I/O
//! or keeps state.
//!
//! [`plan`] is the one place that decides: every check and every error message
//! of an admin operation is in it, in the order they apply.

use super::summary;
use crate::ids::Caller;
use crate::ids::ConvId;
use crate::shard::AdminOp;
use crate::store::{ConversationRecord, MemberRecord, UserRecord};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ConversationKind, ErrorCode, MemberRole, MembershipChange, Role};
use std::collections::HashMap;
use std::sync::Arc;

/// What the rules look at: the owner's view of the conversation.
#[derive(Debug, Clone, Copy)]
pub struct Roster<'a> {
    /// The conversation's record.
    pub rec: &'a ConversationRecord,
    /// Its members by user id.
    pub members: &'a HashMap<Arc<str>, MemberRecord>,
    /// Its highest durable seq (new members start there).
    pub committed: u64,
    /// `limits.max_members`.
    pub max_members: usize,
}

impl Roster<'_> {
    fn id(&self) -> ConvId {
        self.rec.id
    }

    fn kind(&self) -> ConversationKind {
        ConversationKind::try_from(self.rec.kind).unwrap_or(ConversationKind::Unspecified)
    }

    fn is_member(&self, user: &str) -> bool {
        self.members.contains_key(user)
    }

    /// Whether `m` accepted the conversation ([`crate::presence::accepted`]):
    /// until then, nothing about their devices (presence, delivery) is shown.
    pub fn accepted(&self, m: &MemberRecord) -> bool {
        crate::presence::accepted(self.rec, m)
    }

    fn role_of(&self, user: &str) -> Option<MemberRole> {
        self.members.get(user).map(|m| MemberRole::try_from(m.role).unwrap_or(MemberRole::Member))
    }

    /// A membership starting at the current head (earlier messages are history).
    fn new_member(&self, user: &str, role: MemberRole, now_ms: u64) -> MemberRecord {
        MemberRecord {
            conversation_id: self.id(),
            user_id: user.to_string(),
            role: role as i32,
            joined_at_ms: now_ms,
            delivered_seq: self.committed,
            read_seq: self.committed,
        }
    }
}

/// One store write of a plan, applied to the owner once durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Add or replace these memberships, all at once (one fsync).
    PutMembers(Vec<MemberRecord>),
    /// Remove a membership.
    RemoveMember(Arc<str>),
    /// Replace the conversation's record.
    UpdateConversation(ConversationRecord),
}

/// What the owner tells once every write of a plan is durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A membership line to the subscribers.
    Line {
        /// Whose membership changed.
        user: Arc<str>,
        /// How.
        change: MembershipChange,
        /// Who did it.
        by: Arc<str>,
        /// The role it gives.
        role: MemberRole,
    },
    /// Tell a user's sessions they were added to (or removed from) the conversation.
    Tell {
        /// Who.
        user: Arc<str>,
        /// Added (true) or removed.
        added: bool,
    },
    /// Push the new metadata (archive, support pick-up) to every member.
    Metadata,
}

/// What an allowed operation takes: writes in order, then notices in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Store writes, performed one after the other; a failure stops the rest.
    pub writes: Vec<Write>,
    /// Announcements, once every write is durable.
    pub notices: Vec<Notice>,
}

fn forbidden<T>(why: &str) -> Result<T, WireError> {
    Err(WireError::new(ErrorCode::Forbidden, why.to_string()))
}

fn not_a_member<T>(user: &str) -> Result<T, WireError> {
    Err(WireError::new(ErrorCode::NotFound, format!("{user} is not a member")))
}

/// Decides an admin operation: the refusal, or what it takes.
pub fn plan(r: &Roster<'_>, caller: &Caller, op: AdminOp, now_ms: u64) -> Result<Plan, WireError> {
    let kind = r.kind();
    let my_role = r.role_of(&caller.user);
    let line = |user: &Arc<str>, change: MembershipChange, role: MemberRole| Notice::Line {
        user: user.clone(),
        change,
        by: caller.user.clone(),
        role,
    };
    let tell = |user: &Arc<str>, added: bool| Notice::Tell { user: user.clone(), added };
    let me = &caller.user;
    // Membership first: to someone who is not in it, a conversation answers
    // exactly as one that does not exist, whatever the operation (its kind,
    // its roles, even its existence are not theirs to learn). Only staff
    // picking up a support request come in from outside.
    let staff_pickup = matches!(op, AdminOp::Join) && kind == ConversationKind::Support && caller.role == Role::Admin;
    // Firm admins set any conversation's retention and erase any conversation
    // (records policy, not membership).
    let firm_retention = matches!(op, AdminOp::SetRetention(_) | AdminOp::Erase) && caller.role == Role::Admin;
    if my_role.is_none() && !staff_pickup && !firm_retention && !matches!(op, AdminOp::Created) {
        return Err(summary::no_access(r.id()));
    }
    let plan = match op {
        AdminOp::Created => Plan { writes: Vec::new(), notices: r.members.keys().map(|u| tell(u, true)).collect() },
        AdminOp::Join => {
            if r.is_member(me) {
                return Err(WireError::new(ErrorCode::Conflict, "already a member"));
            }
            let mut writes = vec![Write::PutMembers(vec![r.new_member(me, MemberRole::Admin, now_ms)])];
            if r.rec.support_state == v1::SupportState::Waiting as i32 {
                let rec = ConversationRecord { support_state: v1::SupportState::Assigned as i32, ..r.rec.clone() };
                writes.push(Write::UpdateConversation(rec));
            }
            let notices = vec![line(me, MembershipChange::Joined, MemberRole::Admin), tell(me, true), Notice::Metadata];
            Plan { writes, notices }
        }
        AdminOp::Leave => {
            if kind == ConversationKind::Private {
                return forbidden("a private conversation cannot be left; archive it instead");
            }
            Plan {
                writes: vec![Write::RemoveMember(me.clone())],
                notices: vec![line(me, MembershipChange::Left, MemberRole::Unspecified), tell(me, false)],
            }
        }
        AdminOp::Add(users) => {
            if kind == ConversationKind::Private {
                return forbidden("a private conversation has exactly two members");
            }
            if !matches!(my_role, Some(MemberRole::Admin | MemberRole::Moderator)) {
                return forbidden("only conversation admins and moderators add members");
            }
            if r.members.len() + users.len() > r.max_members {
                return Err(WireError::limited(
                    ErrorCode::TooManyMembers,
                    "max_members",
                    format!("at most {} members", r.max_members),
                    None,
                ));
            }
            let mut new: Vec<Arc<str>> = users.into_iter().filter(|u| !r.is_member(u)).map(Arc::from).collect();
            new.sort();
            new.dedup();
            let recs = new.iter().map(|u| r.new_member(u, MemberRole::Member, now_ms)).collect();
            let notices = new
                .iter()
                .flat_map(|u| [line(u, MembershipChange::Added, MemberRole::Member), tell(u, true)])
                .collect();
            Plan { writes: vec![Write::PutMembers(recs)], notices }
        }
        AdminOp::Remove(user) => {
            if kind == ConversationKind::Private {
                return forbidden("a private conversation has exactly two members");
            }
            if my_role != Some(MemberRole::Admin) {
                return forbidden("only conversation admins remove members");
            }
            if !r.is_member(&user) {
                return not_a_member(&user);
            }
            let user: Arc<str> = user.into();
            Plan {
                writes: vec![Write::RemoveMember(user.clone())],
                notices: vec![line(&user, MembershipChange::Removed, MemberRole::Unspecified), tell(&user, false)],
            }
        }
        AdminOp::SetRole(user, role) => {
            if my_role != Some(MemberRole::Admin) {
                return forbidden("only conversation admins change roles");
            }
            if role == MemberRole::Unspecified {
                return Err(WireError::new(ErrorCode::InvalidArgument, "role must be member, moderator or admin"));
            }
            let Some(m) = r.members.get(user.as_str()) else { return not_a_member(&user) };
            let rec = MemberRecord { role: role as i32, ..m.clone() };
            let user: Arc<str> = user.into();
            Plan {
                writes: vec![Write::PutMembers(vec![rec])],
                notices: vec![line(&user, MembershipChange::Role, role)],
            }
        }
        AdminOp::Archive(archive) => {
            let allowed =
                my_role == Some(MemberRole::Admin) || (kind == ConversationKind::Private && my_role.is_some());
            if !allowed {
                return forbidden("only conversation admins archive");
            }
            let rec = ConversationRecord { archived_at_ms: if archive { now_ms } else { 0 }, ..r.rec.clone() };
            Plan { writes: vec![Write::UpdateConversation(rec)], notices: vec![Notice::Metadata] }
        }
        AdminOp::Erase => {
            if caller.role != Role::Admin {
                return forbidden("only system admins erase conversations");
            }
            let archived_at_ms = if r.rec.archived_at_ms == 0 { now_ms } else { r.rec.archived_at_ms };
            let rec = ConversationRecord { archived_at_ms, ..r.rec.clone() };
            Plan { writes: vec![Write::UpdateConversation(rec)], notices: vec![Notice::Metadata] }
        }
        AdminOp::SetRetention(days) => {
            if my_role != Some(MemberRole::Admin) && caller.role != Role::Admin {
                return forbidden("only conversation admins and system admins set retention");
            }
            let rec = ConversationRecord { retention_days: days, ..r.rec.clone() };
            Plan { writes: vec![Write::UpdateConversation(rec)], notices: vec![Notice::Metadata] }
        }
    };
    Ok(plan)
}

/// Whether `caller` may list the members: members, and staff on a support conversation.
pub fn may_list_members(r: &Roster<'_>, caller: &Caller) -> Result<(), WireError> {
    let ok = r.is_member(&caller.user) || (caller.role == Role::Admin && r.kind() == ConversationKind::Support);
    if ok { Ok(()) } else { Err(summary::no_access(r.id())) }
}

/// The member list with display names and system roles from `users`
/// (a member without a user record shows their id), sorted by user id.
pub fn member_list(r: &Roster<'_>, users: Vec<UserRecord>, viewer: &str) -> Vec<v1::Member> {
    let users: HashMap<String, UserRecord> = users.into_iter().map(|u| (u.id.clone(), u)).collect();
    let mut out: Vec<v1::Member> = r
        .members
        .values()
        .map(|m| {
            let u = users.get(&m.user_id);
            v1::Member {
                user_id: m.user_id.clone(),
                display_name: u.map(|u| u.display_name.clone()).unwrap_or_else(|| m.user_id.clone()),
                role: m.role,
                joined_at_ms: m.joined_at_ms,
                // What reached the device of someone who did not accept is theirs alone.
                delivered_seq: if r.accepted(m) || m.user_id == viewer { m.delivered_seq } else { 0 },
                read_seq: m.read_seq,
                user_role: u.map_or(0, |u| u.role),
            }
        })
        .collect();
    out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A conversation record for tests (the owner's too).
    pub(crate) fn record(id: ConvId, kind: ConversationKind) -> ConversationRecord {
        ConversationRecord {
            id,
            kind: kind as i32,
            title: String::new(),
            case_id: String::new(),
            created_by: "ann".into(),
            created_at_ms: 1,
            archived_at_ms: 0,
            support_state: 0,
            e2e: false,
            retention_days: 0,
            legal_hold: false,
        }
    }

    /// A membership for tests, with both watermarks at `seq`.
    pub(crate) fn member(id: ConvId, user: &str, role: MemberRole, seq: u64) -> MemberRecord {
        MemberRecord {
            conversation_id: id,
            user_id: user.into(),
            role: role as i32,
            joined_at_ms: 1,
            delivered_seq: seq,
            read_seq: seq,
        }
    }

    fn rec(kind: ConversationKind) -> ConversationRecord {
        record(5, kind)
    }

    fn roster(roles: &[(&str, MemberRole)]) -> HashMap<Arc<str>, MemberRecord> {
        roles.iter().map(|&(u, role)| (Arc::from(u), member(5, u, role, 0))).collect()
    }

    fn caller(user: &str, role: Role) -> Caller {
        Caller { user: user.into(), role }
    }

    /// The refusal of `op` by `who`: (code, message).
    fn refusal(r: &Roster<'_>, who: &Caller, op: AdminOp) -> (ErrorCode, String) {
        let e = plan(r, who, op, 99).expect_err("refused");
        (e.code, e.message)
    }

    #[test]
    fn retention_is_set_by_conversation_admins_and_system_admins_only() {
        let group = rec(ConversationKind::Group);
        let members = roster(&[("ann", MemberRole::Admin), ("mo", MemberRole::Moderator)]);
        let r = Roster { rec: &group, members: &members, committed: 3, max_members: 7 };
        let by_mo = refusal(&r, &caller("mo", Role::Advocate), AdminOp::SetRetention(30));
        assert_eq!(by_mo, (ErrorCode::Forbidden, "only conversation admins and system admins set retention".into()));
        assert_eq!(refusal(&r, &caller("zed", Role::Client), AdminOp::SetRetention(30)).0, ErrorCode::NotFound);
        for who in [caller("ann", Role::Client), caller("root", Role::Admin)] {
            let p = plan(&r, &who, AdminOp::SetRetention(30), 9).expect("allowed");
            let [Write::UpdateConversation(updated)] = &p.writes[..] else { panic!("{p:?}") };
            assert_eq!(updated.retention_days, 30);
            assert_eq!(p.notices, [Notice::Metadata]);
        }
    }

    #[test]
    fn add_checks_kind_role_and_size_then_adds_only_newcomers_once() {
        let group = rec(ConversationKind::Group);
        let members = roster(&[("ann", MemberRole::Admin), ("mo", MemberRole::Moderator), ("bo", MemberRole::Member)]);
        let r = Roster { rec: &group, members: &members, committed: 12, max_members: 7 };
        let add = |users: &[&str]| AdminOp::Add(users.iter().map(|u| u.to_string()).collect());
        let by_bo = refusal(&r, &caller("bo", Role::Client), add(&["x"]));
        assert_eq!(by_bo, (ErrorCode::Forbidden, "only conversation admins and moderators add members".into()));
        let too_many = plan(&r, &caller("mo", Role::Client), add(&["x", "y", "z", "w", "v"]), 99).unwrap_err();
        assert_eq!((too_many.code, too_many.limit), (ErrorCode::TooManyMembers, Some("max_members")));
        let p = plan(&r, &caller("mo", Role::Client), add(&["zed", "bo", "al", "zed"]), 99).unwrap();
        let [Write::PutMembers(recs)] = &p.writes[..] else { panic!("{p:?}") };
        let added: Vec<_> = recs.iter().map(|m| (m.user_id.as_str(), m.read_seq, m.joined_at_ms)).collect();
        assert_eq!(added, vec![("al", 12, 99), ("zed", 12, 99)], "sorted, deduplicated, from the head on");
        assert_eq!(p.notices.len(), 4, "a line and a tell each: {:?}", p.notices);
        let private = rec(ConversationKind::Private);
        let r = Roster { rec: &private, ..r };
        let in_private = refusal(&r, &caller("ann", Role::Advocate), add(&["x"]));
        assert_eq!(in_private, (ErrorCode::Forbidden, "a private conversation has exactly two members".into()));
    }

    #[test]
    fn join_leave_remove_role_and_archive_keep_their_rules() {
        let mut support = rec(ConversationKind::Support);
        support.support_state = v1::SupportState::Waiting as i32;
        let members = roster(&[("cli", MemberRole::Admin), ("bo", MemberRole::Member)]);
        let r = Roster { rec: &support, members: &members, committed: 3, max_members: 10 };
        assert_eq!(refusal(&r, &caller("cli", Role::Client), AdminOp::Join).0, ErrorCode::Conflict);
        // Anyone else is told what a stranger is told of any conversation.
        let no_access = (ErrorCode::NotFound, summary::no_access(5).message);
        assert_eq!(refusal(&r, &caller("adv", Role::Advocate), AdminOp::Join), no_access);
        let join = plan(&r, &caller("staff", Role::Admin), AdminOp::Join, 7).unwrap();
        assert!(matches!(&join.writes[..], [Write::PutMembers(m), Write::UpdateConversation(c)]
            if m[0].role == MemberRole::Admin as i32 && c.support_state == v1::SupportState::Assigned as i32));
        assert_eq!(join.notices.last(), Some(&Notice::Metadata));
        assert_eq!(
            refusal(&r, &caller("zed", Role::Client), AdminOp::Leave),
            (ErrorCode::NotFound, summary::no_access(5).message)
        );
        let remove = refusal(&r, &caller("cli", Role::Client), AdminOp::Remove("nobody".into()));
        assert_eq!(remove, (ErrorCode::NotFound, "nobody is not a member".into()));
        let by_member = refusal(&r, &caller("bo", Role::Client), AdminOp::Remove("cli".into()));
        assert_eq!(by_member, (ErrorCode::Forbidden, "only conversation admins remove members".into()));
        let unspecified =
            refusal(&r, &caller("cli", Role::Client), AdminOp::SetRole("bo".into(), MemberRole::Unspecified));
        assert_eq!(unspecified.0, ErrorCode::InvalidArgument);
        assert_eq!(refusal(&r, &caller("bo", Role::Client), AdminOp::Archive(true)).0, ErrorCode::Forbidden);
        let archive = plan(&r, &caller("cli", Role::Client), AdminOp::Archive(true), 42).unwrap();
        assert!(matches!(&archive.writes[..], [Write::UpdateConversation(c)] if c.archived_at_ms == 42));
        // Only system admins erase, members or not; the conversation is archived for good.
        assert_eq!(refusal(&r, &caller("cli", Role::Advocate), AdminOp::Erase).0, ErrorCode::Forbidden);
        let erase = plan(&r, &caller("root", Role::Admin), AdminOp::Erase, 43).unwrap();
        assert!(matches!(&erase.writes[..], [Write::UpdateConversation(c)] if c.archived_at_ms == 43));
        assert_eq!(erase.notices, [Notice::Metadata], "members see it archived");
        // Either member of a private conversation archives it, and nobody leaves it.
        let private = rec(ConversationKind::Private);
        let r = Roster { rec: &private, ..r };
        assert!(plan(&r, &caller("bo", Role::Client), AdminOp::Archive(false), 42).is_ok());
        assert_eq!(refusal(&r, &caller("bo", Role::Client), AdminOp::Leave).0, ErrorCode::Forbidden);
    }

    #[test]
    fn strangers_learn_nothing_from_any_operation() {
        // Every refusal a non-member could get says "no such conversation for
        // you", whatever the kind, the operation or the caller's own role.
        let no_access = (ErrorCode::NotFound, summary::no_access(5).message);
        for kind in [ConversationKind::Private, ConversationKind::Group, ConversationKind::Support] {
            let rec = rec(kind);
            let members = roster(&[("ann", MemberRole::Admin), ("bo", MemberRole::Member)]);
            let r = Roster { rec: &rec, members: &members, committed: 3, max_members: 10 };
            for op in [
                AdminOp::Leave,
                AdminOp::Add(vec!["x".into()]),
                AdminOp::Remove("bo".into()),
                AdminOp::SetRole("bo".into(), MemberRole::Moderator),
                AdminOp::Archive(true),
            ] {
                for role in [Role::Client, Role::Advocate, Role::Admin] {
                    assert_eq!(refusal(&r, &caller("eve", role), op.clone()), no_access, "{kind:?} {op:?} {role:?}");
                }
            }
            if kind != ConversationKind::Support {
                assert_eq!(refusal(&r, &caller("eve", Role::Admin), AdminOp::Join), no_access, "{kind:?}");
            }
        }
    }

    #[test]
    fn members_are_listed_to_members_and_to_staff_on_support() {
        let support = rec(ConversationKind::Support);
        let members = roster(&[("cli", MemberRole::Admin)]);
        let r = Roster { rec: &support, members: &members, committed: 0, max_members: 10 };
        assert!(may_list_members(&r, &caller("cli", Role::Client)).is_ok());
        assert!(may_list_members(&r, &caller("staff", Role::Admin)).is_ok());
        assert_eq!(may_list_members(&r, &caller("adv", Role::Advocate)).unwrap_err().code, ErrorCode::NotFound);
        let users = vec![UserRecord {
            id: "cli".into(),
            display_name: "Client".into(),
            role: Role::Client as i32,
            ..UserRecord::default()
        }];
        assert_eq!(member_list(&r, users, "staff")[0].display_name, "Client");
    }

    /// The opener of a private conversation does not see how far the other
    /// member's devices received until that member read or wrote in it; the
    /// member sees their own.
    #[test]
    fn an_unaccepted_members_delivery_is_shown_to_them_alone() {
        let private = ConversationRecord { created_by: "adv".into(), ..rec(ConversationKind::Private) };
        let mut members = roster(&[("adv", MemberRole::Member), ("cli", MemberRole::Member)]);
        members.get_mut("cli").unwrap().delivered_seq = 5;
        members.get_mut("adv").unwrap().delivered_seq = 5;
        let delivered = |members: &HashMap<Arc<str>, MemberRecord>, viewer: &str| {
            let r = Roster { rec: &private, members, committed: 5, max_members: 10 };
            member_list(&r, vec![], viewer).iter().map(|m| (m.user_id.clone(), m.delivered_seq)).collect::<Vec<_>>()
        };
        assert_eq!(delivered(&members, "adv"), [("adv".to_string(), 5), ("cli".to_string(), 0)]);
        assert_eq!(delivered(&members, "cli"), [("adv".to_string(), 5), ("cli".to_string(), 5)]);
        members.get_mut("cli").unwrap().read_seq = 1;
        assert_eq!(delivered(&members, "adv"), [("adv".to_string(), 5), ("cli".to_string(), 5)], "once accepted");
    }
}
