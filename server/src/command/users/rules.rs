//! The user directory's rules, sans-IO: what a sign-in makes of the
//! directory's record, which users a search matches and in what order, what
//! an admin may provision, the ids a conversation may not name, and the
//! parsing of an import file (CSV or JSON). No store, no sockets: the
//! commands in the parent module perform the effects.

use crate::auth::{Identity, parse_role};
use crate::store::UserRecord;
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role};

/// Longest display name, bytes.
pub const MAX_DISPLAY_NAME: usize = 200;
/// Longest admin reason, bytes.
pub const MAX_REASON: usize = 500;
/// Longest search query, bytes.
pub const MAX_QUERY: usize = 200;
/// Unknown ids named in one error message at most.
const NAMED_AT_MOST: usize = 20;

/// What a sign-in does to the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The user as the session sees them (name and role from the directory).
    pub user: UserRecord,
    /// Whether the directory must be written (a new user, or claims that changed).
    pub write: bool,
}

/// A sign-in with a verified token: refused for a disabled user; a user new
/// to the directory is created from the token's claims; a provisioned one
/// keeps the directory's name and role; one created from claims follows them.
pub fn sign_in(existing: Option<UserRecord>, ident: &Identity) -> Result<SignIn, WireError> {
    let from_claims = UserRecord {
        id: ident.user_id.clone(),
        display_name: ident.display_name.clone(),
        role: ident.role as i32,
        ..UserRecord::default()
    };
    match existing {
        Some(u) if u.disabled => Err(disabled_error()),
        Some(u) if u.provisioned => Ok(SignIn { user: u, write: false }),
        Some(u) => Ok(SignIn { write: u != from_claims, user: from_claims }),
        None => Ok(SignIn { user: from_claims, write: true }),
    }
}

/// The refusal of a disabled user, at connect and for their live sessions.
pub fn disabled_error() -> WireError {
    WireError::new(ErrorCode::UserDisabled, "this user is disabled by an administrator")
}

/// The close of a session whose user's sessions an admin revoked.
pub fn revoked_error() -> WireError {
    WireError::new(ErrorCode::SessionRevoked, "an administrator ended this session; sign in again")
}

/// The ids of `asked` that are not in `found` (in `asked` order, each once).
pub fn unknown_ids(asked: &[String], found: &[UserRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in asked {
        if !found.iter().any(|u| &u.id == id) && !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// `UNKNOWN_USER`, naming the unknown ids (the first [`NAMED_AT_MOST`]).
pub fn unknown_users_error(ids: &[String]) -> WireError {
    let named: Vec<&str> = ids.iter().take(NAMED_AT_MOST).map(String::as_str).collect();
    let more = ids.len().saturating_sub(NAMED_AT_MOST);
    let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
    WireError::new(
        ErrorCode::UnknownUser,
        format!(
            "not in the user directory: {}{tail}; users exist once they sign in or an admin adds them",
            named.join(", ")
        ),
    )
}

/// A `PutUser` checked: the record to store (not yet disabled; `disabled`
/// is kept from the stored one by the caller).
pub fn check_put(p: &v1::PutUser) -> Result<UserRecord, WireError> {
    chat_protocol::limits::check_user_id(&p.id).map_err(|e| e.to_wire())?;
    check_display_name(&p.display_name)?;
    let role = Role::try_from(p.role).unwrap_or(Role::Unspecified);
    if matches!(role, Role::Unspecified | Role::Service) {
        return Err(WireError::new(ErrorCode::InvalidArgument, "role: advocate, client or admin is required"));
    }
    Ok(UserRecord {
        id: p.id.clone(),
        display_name: p.display_name.clone(),
        role: role as i32,
        disabled: false,
        provisioned: true,
    })
}

/// A display name: at most [`MAX_DISPLAY_NAME`] bytes, no control characters.
fn check_display_name(name: &str) -> Result<(), WireError> {
    if name.len() > MAX_DISPLAY_NAME {
        return Err(WireError::new(
            ErrorCode::InvalidArgument,
            format!("display_name: at most {MAX_DISPLAY_NAME} bytes, got {}", name.len()),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(WireError::new(ErrorCode::InvalidArgument, "display_name: no control characters"));
    }
    Ok(())
}

/// An admin's target and reason checked.
pub fn check_admin_target(user_id: &str, reason: &str) -> Result<(), WireError> {
    chat_protocol::limits::check_user_id(user_id).map_err(|e| e.to_wire())?;
    if reason.len() > MAX_REASON {
        return Err(WireError::new(ErrorCode::InvalidArgument, format!("reason: at most {MAX_REASON} bytes")));
    }
    Ok(())
}

/// A search query split into lowercase words (none: everyone matches).
pub fn query_words(query: &str) -> Result<Vec<String>, WireError> {
    if query.len() > MAX_QUERY {
        return Err(WireError::new(ErrorCode::InvalidArgument, format!("query: at most {MAX_QUERY} bytes")));
    }
    Ok(query.split_whitespace().map(str::to_lowercase).collect())
}

/// How well `u` matches `words`: None if it does not (a disabled user never
/// does); 0 when every word starts the id or a word of the display name,
/// 1 when every word only occurs somewhere in them.
pub fn rank(words: &[String], u: &UserRecord) -> Option<u8> {
    if u.disabled {
        return None;
    }
    let id = u.id.to_lowercase();
    let name = u.display_name.to_lowercase();
    let mut rank = 0;
    for w in words {
        let starts = id.starts_with(w.as_str()) || name.split_whitespace().any(|n| n.starts_with(w.as_str()));
        if !starts {
            if !id.contains(w.as_str()) && !name.contains(w.as_str()) {
                return None;
            }
            rank = 1;
        }
    }
    Some(rank)
}

/// Orders one page of matches: prefix matches first, then by display name, then id.
pub fn order(matches: &mut [(u8, UserRecord)]) {
    matches.sort_by(|(ra, a), (rb, b)| {
        ra.cmp(rb)
            .then_with(|| a.display_name.to_lowercase().cmp(&b.display_name.to_lowercase()))
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// The wire form of a directory user.
pub fn to_wire(u: &UserRecord) -> v1::DirectoryUser {
    v1::DirectoryUser {
        id: u.id.clone(),
        display_name: u.display_name.clone(),
        role: u.role,
        disabled: u.disabled,
        provisioned: u.provisioned,
    }
}

/// A search cursor as given to the client: `"u.<last id looked at>"`.
pub fn next_cursor(last_id: &str) -> String {
    format!("u.{last_id}")
}

/// The id a search cursor names (None: the first page).
pub fn cursor(page: &str) -> Result<Option<String>, WireError> {
    if page.is_empty() {
        return Ok(None);
    }
    let bad =
        || WireError::new(ErrorCode::InvalidArgument, "bad page cursor: pass back the `next` of the previous page");
    let id = page.strip_prefix("u.").ok_or_else(bad)?;
    chat_protocol::limits::check_user_id(id).map_err(|_| bad())?;
    Ok(Some(id.to_string()))
}

/// Why an import file was refused: the line (1-based; 0 for the whole file) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct ImportError {
    /// The line (CSV) or entry (JSON, 1-based) at fault; 0 for the whole file.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

/// One user of a JSON import.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportedUser {
    id: String,
    #[serde(default)]
    display_name: String,
    role: String,
}

/// Parses an import file: a JSON array of `{"id", "display_name", "role"}`
/// (when it starts with `[`), else CSV with the header `id,display_name,role`
/// (fields may be double-quoted). Every user is checked as `PutUser` is; the
/// first bad line refuses the whole file, so nothing is half imported.
pub fn parse_import(text: &str) -> Result<Vec<UserRecord>, ImportError> {
    let rows: Vec<(usize, ImportedUser)> = if text.trim_start().starts_with('[') {
        let list: Vec<ImportedUser> =
            serde_json::from_str(text).map_err(|e| ImportError { line: e.line(), why: e.to_string() })?;
        list.into_iter().enumerate().map(|(i, u)| (i + 1, u)).collect()
    } else {
        parse_csv(text)?
    };
    let mut out: Vec<UserRecord> = Vec::with_capacity(rows.len());
    for (line, u) in rows {
        let bad = |why: String| ImportError { line, why };
        let role =
            parse_role(u.role.trim()).ok_or_else(|| bad(format!("role {:?}: advocate, client or admin", u.role)))?;
        let put = v1::PutUser { id: u.id, display_name: u.display_name, role: role as i32 };
        let rec = check_put(&put).map_err(|e| bad(e.message))?;
        if out.iter().any(|o| o.id == rec.id) {
            return Err(bad(format!("user {:?} is listed twice", rec.id)));
        }
        out.push(rec);
    }
    Ok(out)
}

/// CSV rows after the header `id,display_name,role`.
fn parse_csv(text: &str) -> Result<Vec<(usize, ImportedUser)>, ImportError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map(|(_, l)| split_csv(l)).transpose().map_err(|why| ImportError { line: 1, why })?;
    let want = ["id", "display_name", "role"];
    if header.as_ref().map(|h| h.iter().map(|f| f.trim()).collect::<Vec<_>>()) != Some(want.to_vec()) {
        return Err(ImportError { line: 1, why: "the first line must be the header `id,display_name,role`".into() });
    }
    lines
        .map(|(i, l)| {
            let line = i + 1;
            let f = split_csv(l).map_err(|why| ImportError { line, why })?;
            let [id, display_name, role]: [String; 3] = f
                .try_into()
                .map_err(|f: Vec<String>| ImportError { line, why: format!("3 fields expected, got {}", f.len()) })?;
            Ok((line, ImportedUser { id: id.trim().to_string(), display_name, role }))
        })
        .collect()
}

/// The fields of one CSV line (RFC 4180 quoting within the line).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '"') => return Err("a quote inside an unquoted field".into()),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("an unclosed quote".into());
    }
    out.push(field);
    Ok(out)
}

#[cfg(test)]
mod tests;
