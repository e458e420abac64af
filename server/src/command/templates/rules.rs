//! The rules of templates, sans-IO: who may manage which scope, what a name
//! and a body may be (the fixed set of placeholders), the limits on how many
//! a user and the firm keep, the plan of a save (create or optimistic
//! update) over the templates already stored, rendering with the values of
//! a conversation, and the list's pages. Time comes in as an argument; no
//! store, no clock, no sockets.

use chat_protocol::WireError;
use chat_protocol::limits::ValidationError;
use chat_protocol::v1::{self, ErrorCode, Role, TemplateScope};
use prost::Message as _;

use crate::store::templates::TemplateRecord;

/// The placeholders a body may name, in the order the docs list them.
pub const PLACEHOLDERS: [&str; 5] = ["client_name", "case_id", "conversation_title", "my_name", "date"];

/// Bytes of templates in one list page at most (encoded), far below the frame limit.
pub const PAGE_BYTES: usize = 1 << 20;

/// The limits in force (from `limits.*` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Personal templates one user keeps at most (`limits.templates_per_user`).
    pub per_user: usize,
    /// Firm templates at most (`limits.firm_templates`).
    pub firm: usize,
    /// Longest name in bytes (`limits.template_name_bytes`).
    pub name_bytes: usize,
    /// Longest body in bytes (`limits.max_text_bytes`).
    pub body_bytes: usize,
}

/// A refused template command, precise enough to fix the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The scope is neither PERSONAL nor FIRM.
    #[error("template scope must be PERSONAL or FIRM")]
    BadScope,
    /// A non-admin tried to change a firm template.
    #[error("only admins create, update or delete firm templates")]
    FirmNeedsAdmin,
    /// The name is empty.
    #[error("template name is empty")]
    EmptyName,
    /// The name is over the limit.
    #[error("template name is {len} bytes, over the {max}-byte limit")]
    NameTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds something other than `[a-z0-9_-]`.
    #[error("template name {0:?} may hold only a-z, 0-9, `_` and `-`")]
    NameChars(String),
    /// The body is empty.
    #[error("template body is empty")]
    EmptyBody,
    /// The body is too long or holds a forbidden character.
    #[error("template body: {0}")]
    Body(ValidationError),
    /// The body names a placeholder outside [`PLACEHOLDERS`].
    #[error(
        "unknown placeholder {{{0}}}; known placeholders: {{client_name}}, {{case_id}}, {{conversation_title}}, \
         {{my_name}}, {{date}}"
    )]
    UnknownPlaceholder(String),
    /// Another template of the same scope and owner has this name.
    #[error("a template named {0:?} exists already in this scope")]
    NameTaken(String),
    /// The user keeps as many personal templates as allowed.
    #[error("at most {0} personal templates per user; delete one first")]
    TooManyPersonal(usize),
    /// The firm keeps as many templates as allowed.
    #[error("at most {0} firm templates; delete one first")]
    TooManyFirm(usize),
    /// No such template among the caller's own or the firm's.
    #[error("template {0} not found")]
    NotFound(u64),
    /// The stored template is not the version the update names.
    #[error("template {id} was changed (updated_at_ms {stored}, not {expected}); reload it and try again")]
    Stale {
        /// The template.
        id: u64,
        /// The version stored.
        stored: u64,
        /// The version the update named.
        expected: u64,
    },
}

impl TemplateError {
    /// The error frame a client gets.
    pub fn to_wire(&self) -> WireError {
        let msg = self.to_string();
        match self {
            Self::Body(e) if matches!(e, ValidationError::TextTooLong { .. }) => e.to_wire(),
            Self::FirmNeedsAdmin => WireError::new(ErrorCode::Forbidden, msg),
            Self::NotFound(_) => WireError::new(ErrorCode::NotFound, msg),
            Self::NameTaken(_) | Self::Stale { .. } => WireError::new(ErrorCode::Conflict, msg),
            Self::NameTooLong { .. } => {
                WireError::limited(ErrorCode::InvalidArgument, "template_name_bytes", msg, None)
            }
            Self::TooManyPersonal(_) => WireError::limited(ErrorCode::InvalidArgument, "templates_per_user", msg, None),
            Self::TooManyFirm(_) => WireError::limited(ErrorCode::InvalidArgument, "firm_templates", msg, None),
            _ => WireError::new(ErrorCode::InvalidArgument, msg),
        }
    }
}

/// The scope of a request, PERSONAL or FIRM.
pub fn scope_of(scope: i32) -> Result<TemplateScope, TemplateError> {
    match TemplateScope::try_from(scope) {
        Ok(s @ (TemplateScope::Personal | TemplateScope::Firm)) => Ok(s),
        _ => Err(TemplateError::BadScope),
    }
}

/// The partition `(scope, owner)` a user's templates of `scope` live in.
pub fn partition(scope: TemplateScope, user: &str) -> (i32, String) {
    match scope {
        TemplateScope::Firm => (TemplateScope::Firm as i32, String::new()),
        _ => (TemplateScope::Personal as i32, user.to_owned()),
    }
}

/// Whether `role` may create, update or delete templates of `scope`: anyone
/// their own personal ones, admins the firm's.
pub fn may_manage(scope: TemplateScope, role: Role) -> Result<(), TemplateError> {
    if scope == TemplateScope::Firm && role != Role::Admin {
        return Err(TemplateError::FirmNeedsAdmin);
    }
    Ok(())
}

/// Checks a name: 1 to `max` bytes of `[a-z0-9_-]`.
pub fn check_name(name: &str, max: usize) -> Result<(), TemplateError> {
    if name.is_empty() {
        return Err(TemplateError::EmptyName);
    }
    if name.len() > max {
        return Err(TemplateError::NameTooLong { len: name.len(), max });
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        return Err(TemplateError::NameChars(name.to_owned()));
    }
    Ok(())
}

/// The placeholders of `body`: `(byte range of `{name}`, name)`, in order. A
/// placeholder is `{` + ASCII letters, digits or `_` + `}`; other braces are text.
pub fn placeholders(body: &str) -> impl Iterator<Item = (std::ops::Range<usize>, &str)> {
    let bytes = body.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(open) = bytes[at..].iter().position(|&b| b == b'{').map(|i| at + i) {
            let len = bytes[open + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
            let close = open + 1 + len;
            if len > 0 && bytes.get(close) == Some(&b'}') {
                at = close + 1;
                return Some((open..close + 1, &body[open + 1..close]));
            }
            at = open + 1;
        }
        None
    })
}

/// Checks a body: not empty, a valid text within the limit, and naming only
/// known placeholders.
pub fn check_body(body: &str, limits: &TemplateLimits) -> Result<(), TemplateError> {
    if body.trim().is_empty() {
        return Err(TemplateError::EmptyBody);
    }
    let text = chat_protocol::Limits { max_text_bytes: limits.body_bytes, ..chat_protocol::Limits::default() };
    text.check_text(body).map_err(TemplateError::Body)?;
    match placeholders(body).find(|(_, name)| !PLACEHOLDERS.contains(name)) {
        Some((_, name)) => Err(TemplateError::UnknownPlaceholder(name.to_owned())),
        None => Ok(()),
    }
}

/// A checked save: the record to write and the version it must replace
/// (None: none may exist, a create).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPut {
    /// What to write.
    pub record: TemplateRecord,
    /// The stored `updated_at_ms` it replaces (None: a create).
    pub expected: Option<u64>,
}

/// Who saves, and when.
#[derive(Debug, Clone, Copy)]
pub struct Saver<'a> {
    /// User id.
    pub user: &'a str,
    /// System role.
    pub role: Role,
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
}

/// Plans a save of `put` by `who` over `stored` (every template of the
/// partition it goes to). `new_id` is the id a create gets.
pub fn plan_put(
    limits: &TemplateLimits,
    who: Saver<'_>,
    put: &v1::PutTemplate,
    stored: &[TemplateRecord],
    new_id: u64,
) -> Result<PlannedPut, TemplateError> {
    let scope = scope_of(put.scope)?;
    may_manage(scope, who.role)?;
    check_name(&put.name, limits.name_bytes)?;
    check_body(&put.body, limits)?;
    let (scope_n, owner) = partition(scope, who.user);
    if stored.iter().any(|t| t.name == put.name && t.id != put.id) {
        return Err(TemplateError::NameTaken(put.name.clone()));
    }
    let (id, expected, updated_at_ms) = if put.id == 0 {
        match scope {
            TemplateScope::Firm if stored.len() >= limits.firm => return Err(TemplateError::TooManyFirm(limits.firm)),
            TemplateScope::Personal if stored.len() >= limits.per_user => {
                return Err(TemplateError::TooManyPersonal(limits.per_user));
            }
            _ => {}
        }
        (new_id, None, who.now_ms)
    } else {
        let current = stored.iter().find(|t| t.id == put.id).ok_or(TemplateError::NotFound(put.id))?;
        if put.expected_updated_at_ms != 0 && put.expected_updated_at_ms != current.updated_at_ms {
            return Err(TemplateError::Stale {
                id: put.id,
                stored: current.updated_at_ms,
                expected: put.expected_updated_at_ms,
            });
        }
        // Every save moves the version, even within one millisecond.
        (put.id, Some(current.updated_at_ms), who.now_ms.max(current.updated_at_ms + 1))
    };
    let record = TemplateRecord {
        id,
        scope: scope_n,
        owner,
        name: put.name.clone(),
        body: put.body.clone(),
        updated_at_ms,
        updated_by: who.user.to_owned(),
    };
    Ok(PlannedPut { record, expected })
}

/// The values of a conversation's placeholders (None or empty: no value there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fills {
    /// Display names of the members whose system role is client.
    pub client_names: Vec<String>,
    /// The conversation's case id.
    pub case_id: String,
    /// The conversation's title.
    pub conversation_title: String,
    /// The caller's display name.
    pub my_name: String,
    /// Now, ms since the Unix epoch (for `{date}`).
    pub now_ms: u64,
}

impl Fills {
    fn value(&self, name: &str) -> Option<String> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        match name {
            "client_name" => (!self.client_names.is_empty()).then(|| self.client_names.join(", ")),
            "case_id" => some(&self.case_id),
            "conversation_title" => some(&self.conversation_title),
            "my_name" => some(&self.my_name),
            "date" => Some(iso_date(self.now_ms)),
            _ => None,
        }
    }
}

/// The UTC day of `unix_ms`, ISO 8601 (`2026-12-03`).
pub fn iso_date(unix_ms: u64) -> String {
    let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => t.date().to_string(),
        Err(_) => String::from("9999-12-31"),
    }
}

/// `body` with every placeholder that has a value filled in, and the names
/// of those that have none (each once, in order), left as written.
pub fn render(body: &str, fills: &Fills) -> (String, Vec<String>) {
    let mut out = String::with_capacity(body.len());
    let mut missing: Vec<String> = Vec::new();
    let mut at = 0;
    for (range, name) in placeholders(body) {
        out.push_str(&body[at..range.start]);
        match fills.value(name) {
            Some(v) => out.push_str(&v),
            None => {
                out.push_str(&body[range.clone()]);
                if !missing.iter().any(|m| m == name) {
                    missing.push(name.to_owned());
                }
            }
        }
        at = range.end;
    }
    out.push_str(&body[at..]);
    (out, missing)
}

/// A template as the wire carries it.
pub fn to_wire(t: &TemplateRecord) -> v1::Template {
    v1::Template {
        id: t.id,
        scope: t.scope,
        owner: t.owner.clone(),
        name: t.name.clone(),
        body: t.body.clone(),
        updated_at_ms: t.updated_at_ms,
        updated_by: t.updated_by.clone(),
    }
}

/// One page of the caller's templates: personal first, then firm, each by
/// name; those after the cursor `page` (from a previous `next`), up to
/// [`PAGE_BYTES`] encoded (at least one). Returns the page and the next cursor.
pub fn page(mut all: Vec<v1::Template>, page: &str, max_bytes: usize) -> (Vec<v1::Template>, String) {
    all.sort_by(|a, b| (a.scope, &a.name).cmp(&(b.scope, &b.name)));
    let after = page.split_once(':').and_then(|(s, n)| Some((s.parse::<i32>().ok()?, n.to_owned())));
    let start = match &after {
        Some((scope, name)) => all.partition_point(|t| (t.scope, &t.name) <= (*scope, name)),
        None => 0,
    };
    let (mut out, mut bytes): (Vec<v1::Template>, usize) = (Vec::new(), 0);
    for t in all.drain(start..) {
        let len = t.encoded_len() + 4;
        if let Some(last) = out.last().filter(|_| bytes + len > max_bytes) {
            let next = format!("{}:{}", last.scope, last.name);
            return (out, next);
        }
        bytes += len;
        out.push(t);
    }
    (out, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TemplateLimits = TemplateLimits { per_user: 2, firm: 3, name_bytes: 8, body_bytes: 40 };

    fn put(id: u64, scope: TemplateScope, name: &str, body: &str) -> v1::PutTemplate {
        v1::PutTemplate { id, scope: scope as i32, name: name.into(), body: body.into(), expected_updated_at_ms: 0 }
    }

    fn saver(role: Role, now_ms: u64) -> Saver<'static> {
        Saver { user: "ann", role, now_ms }
    }

    fn stored(id: u64, name: &str, at: u64) -> TemplateRecord {
        TemplateRecord { id, scope: 1, owner: "ann".into(), name: name.into(), updated_at_ms: at, ..Default::default() }
    }

    fn plan(who: Saver<'_>, p: &v1::PutTemplate, s: &[TemplateRecord]) -> Result<PlannedPut, TemplateError> {
        plan_put(&LIMITS, who, p, s, 77)
    }

    #[test]
    fn anyone_creates_their_own_personal_template() {
        let planned = plan(saver(Role::Client, 5), &put(0, TemplateScope::Personal, "hi", "Hello {my_name}"), &[]);
        let want = TemplateRecord {
            id: 77,
            scope: 1,
            owner: "ann".into(),
            name: "hi".into(),
            body: "Hello {my_name}".into(),
            updated_at_ms: 5,
            updated_by: "ann".into(),
        };
        assert_eq!(planned, Ok(PlannedPut { record: want, expected: None }));
    }

    #[test]
    fn only_admins_manage_firm_templates() {
        let p = put(0, TemplateScope::Firm, "hi", "Hello");
        for role in [Role::Client, Role::Advocate, Role::Unspecified] {
            assert_eq!(plan(saver(role, 1), &p, &[]), Err(TemplateError::FirmNeedsAdmin), "{role:?}");
        }
        let ok = plan(saver(Role::Admin, 1), &p, &[]).expect("admin");
        assert_eq!((ok.record.scope, ok.record.owner.as_str()), (TemplateScope::Firm as i32, ""));
        assert_eq!(TemplateError::FirmNeedsAdmin.to_wire().code, ErrorCode::Forbidden);
    }

    #[test]
    fn a_scope_is_required() {
        let p = put(0, TemplateScope::Unspecified, "hi", "Hello");
        assert_eq!(plan(saver(Role::Admin, 1), &p, &[]), Err(TemplateError::BadScope));
        let p = v1::PutTemplate { scope: 9, ..p };
        assert_eq!(plan(saver(Role::Admin, 1), &p, &[]), Err(TemplateError::BadScope));
    }

    #[test]
    fn names_are_short_lowercase_words() {
        let who = saver(Role::Advocate, 1);
        let name = |n: &str| plan(who, &put(0, TemplateScope::Personal, n, "x"), &[]).map(|_| ());
        assert_eq!(name(""), Err(TemplateError::EmptyName));
        assert_eq!(name("abcdefghi"), Err(TemplateError::NameTooLong { len: 9, max: 8 }));
        assert_eq!(name("Hi"), Err(TemplateError::NameChars("Hi".into())));
        assert_eq!(name("a b"), Err(TemplateError::NameChars("a b".into())));
        assert_eq!(name("/x"), Err(TemplateError::NameChars("/x".into())));
        assert_eq!(name("a-b_9"), Ok(()));
        let wire = TemplateError::NameTooLong { len: 9, max: 8 }.to_wire();
        assert_eq!((wire.code, wire.limit), (ErrorCode::InvalidArgument, Some("template_name_bytes")));
    }

    #[test]
    fn bodies_are_checked_texts() {
        let who = saver(Role::Advocate, 1);
        let body = |b: &str| plan(who, &put(0, TemplateScope::Personal, "t", b), &[]).map(|_| ());
        assert_eq!(body(" \n"), Err(TemplateError::EmptyBody));
        let long = "x".repeat(41);
        let e = body(&long).unwrap_err();
        assert_eq!(e, TemplateError::Body(ValidationError::TextTooLong { len: 41, max: 40 }));
        assert_eq!(e.to_wire().code, ErrorCode::TextTooLong);
        assert!(matches!(body("a\u{0}b"), Err(TemplateError::Body(ValidationError::ForbiddenChar(0)))));
    }

    #[test]
    fn an_unknown_placeholder_is_refused_with_the_known_ones() {
        let who = saver(Role::Advocate, 1);
        let p = put(0, TemplateScope::Personal, "t", "Dear {client} re {case_id}");
        let e = plan(who, &p, &[]).unwrap_err();
        assert_eq!(e, TemplateError::UnknownPlaceholder("client".into()));
        let msg = e.to_wire().message;
        for known in PLACEHOLDERS {
            assert!(msg.contains(&format!("{{{known}}}")), "{msg}");
        }
        assert!(msg.starts_with("unknown placeholder {client};"), "{msg}");
        // Braces around anything but a word are text.
        assert!(plan(who, &put(0, TemplateScope::Personal, "t", "{ } {a b} {} {{date}}"), &[]).is_ok());
        let p = put(0, TemplateScope::Personal, "t", "{Date}");
        assert_eq!(plan(who, &p, &[]), Err(TemplateError::UnknownPlaceholder("Date".into())));
    }

    #[test]
    fn names_are_unique_within_the_partition() {
        let s = [stored(1, "hi", 10)];
        let who = saver(Role::Advocate, 20);
        let e = plan(who, &put(0, TemplateScope::Personal, "hi", "x"), &s);
        assert_eq!(e, Err(TemplateError::NameTaken("hi".into())));
        assert_eq!(TemplateError::NameTaken("hi".into()).to_wire().code, ErrorCode::Conflict);
        // Renaming to itself is not a clash.
        assert!(plan(who, &put(1, TemplateScope::Personal, "hi", "y"), &s).is_ok());
    }

    #[test]
    fn counts_are_limited_per_user_and_firm_wide() {
        let who = saver(Role::Admin, 1);
        let two = [stored(1, "a", 1), stored(2, "b", 1)];
        let e = plan(who, &put(0, TemplateScope::Personal, "c", "x"), &two).unwrap_err();
        assert_eq!(e, TemplateError::TooManyPersonal(2));
        assert_eq!(e.to_wire().limit, Some("templates_per_user"));
        // An update of one of them is no new template.
        assert!(plan(who, &put(2, TemplateScope::Personal, "b", "x"), &two).is_ok());
        let three = [stored(1, "a", 1), stored(2, "b", 1), stored(3, "c", 1)];
        let e = plan(who, &put(0, TemplateScope::Firm, "d", "x"), &three).unwrap_err();
        assert_eq!(e, TemplateError::TooManyFirm(3));
        assert_eq!(e.to_wire().limit, Some("firm_templates"));
    }

    #[test]
    fn updates_are_optimistic() {
        let s = [stored(4, "hi", 100)];
        let who = saver(Role::Advocate, 100);
        let planned = plan(who, &put(4, TemplateScope::Personal, "hi", "new"), &s).expect("update");
        assert_eq!(planned.expected, Some(100));
        assert_eq!(planned.record.updated_at_ms, 101, "the version moves even within a millisecond");
        let stale = v1::PutTemplate { expected_updated_at_ms: 99, ..put(4, TemplateScope::Personal, "hi", "new") };
        let e = plan(who, &stale, &s).unwrap_err();
        assert_eq!(e, TemplateError::Stale { id: 4, stored: 100, expected: 99 });
        assert_eq!(e.to_wire().code, ErrorCode::Conflict);
        let fresh = v1::PutTemplate { expected_updated_at_ms: 100, ..stale };
        assert!(plan(who, &fresh, &s).is_ok());
        let e = plan(who, &put(5, TemplateScope::Personal, "x", "y"), &s).unwrap_err();
        assert_eq!((e.clone(), e.to_wire().code), (TemplateError::NotFound(5), ErrorCode::NotFound));
    }

    #[test]
    fn render_fills_what_the_conversation_has() {
        // 2026-12-03T23:59:59.999Z, then the next day.
        let day = 1_796_342_399_999;
        let fills = Fills {
            client_names: vec!["Bob Client".into(), "Cy".into()],
            case_id: "CASE-7".into(),
            conversation_title: String::new(),
            my_name: "Ann Advocate".into(),
            now_ms: day,
        };
        let body = "Dear {client_name}, re {case_id} ({conversation_title}) on {date}. {my_name} {conversation_title}";
        let (text, missing) = render(body, &fills);
        assert_eq!(
            text,
            "Dear Bob Client, Cy, re CASE-7 ({conversation_title}) on 2026-12-03. Ann Advocate {conversation_title}"
        );
        assert_eq!(missing, ["conversation_title"]);
        assert_eq!(render("{date}", &Fills { now_ms: day + 1, ..Fills::default() }).0, "2026-12-04");
        let (text, missing) = render("Hi {client_name} \u{e9} {", &Fills::default());
        assert_eq!((text.as_str(), missing), ("Hi {client_name} \u{e9} {", vec!["client_name".to_string()]));
    }

    #[test]
    fn lists_page_personal_first_by_name() {
        let t = |scope: TemplateScope, name: &str, body_len: usize| v1::Template {
            scope: scope as i32,
            name: name.into(),
            body: "x".repeat(body_len),
            ..Default::default()
        };
        let all = vec![
            t(TemplateScope::Firm, "b", 10),
            t(TemplateScope::Personal, "z", 10),
            t(TemplateScope::Firm, "a", 10),
            t(TemplateScope::Personal, "c", 10),
        ];
        let names = |v: &[v1::Template]| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let (one, next) = page(all.clone(), "", usize::MAX);
        assert_eq!((names(&one), next.as_str()), (vec!["c".into(), "z".into(), "a".into(), "b".into()], ""));
        let (first, next) = page(all.clone(), "", 45);
        assert_eq!((names(&first), next.as_str()), (vec!["c".into(), "z".into()], "1:z"));
        let (second, next) = page(all.clone(), &next, 45);
        assert_eq!((names(&second), next.as_str()), (vec!["a".into(), "b".into()], ""));
        // One template over the budget still makes a page.
        let (big, next) = page(vec![t(TemplateScope::Firm, "a", 100)], "", 10);
        assert_eq!((big.len(), next.as_str()), (1, ""));
    }
}
