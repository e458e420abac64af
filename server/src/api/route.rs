//! The server API's routes (sans-IO): each request line read into one
//! [`Route`] (a type per operation, with its path parameters), the scope
//! it needs, and the precise refusal of an unknown path or method. The
//! OpenAPI document lists exactly these (a test holds them in step).

use crate::store::service_accounts::Scope;
use hyper::Method;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Where the API lives on the web endpoint.
pub const BASE: &str = "/api/v1";

/// One operation of the API and its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /openapi.json` (no credential needed).
    OpenApi,
    /// `POST /users`: provision (or update) a user.
    ProvisionUser,
    /// `POST /users/{id}/deactivate`.
    DeactivateUser(String),
    /// `POST /users/{id}/reactivate`.
    ReactivateUser(String),
    /// `GET /cases/{case_id}/conversations`.
    CaseConversations(String),
    /// `POST /cases/{case_id}/conversations`.
    CreateCaseConversation(String),
    /// `PUT /cases/{case_id}/members`.
    SetCaseMembers(String),
    /// `POST /cases/{case_id}/archive`.
    ArchiveCase(String),
    /// `GET /conversations/{id}`.
    Conversation(u64),
    /// `GET /conversations/{id}/messages`.
    History(u64),
    /// `POST /conversations/{id}/messages`.
    PostMessage(u64),
    /// `GET /conversations/{id}/transcript`.
    Transcript(u64),
    /// `GET /cases/{case_id}/transcript`: every conversation of the case.
    CaseTranscript(String),
    /// `GET /conversations/{id}/attachments/{attachment_id}`: a file's bytes.
    Attachment(u64, String),
    /// `GET /webhooks`: this account's event webhooks.
    Webhooks,
    /// `POST /webhooks`: subscribe.
    CreateWebhook,
    /// `DELETE /webhooks/{id}`.
    DeleteWebhook(String),
}

/// Why a request line names no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No such path (or a malformed parameter in it).
    NotFound(String),
    /// The path exists; these methods are allowed on it.
    Method(&'static str),
}

/// The path templates with their methods, as the OpenAPI document has them.
pub const PATHS: &[(&str, &[&str])] = &[
    ("/openapi.json", &["get"]),
    ("/users", &["post"]),
    ("/users/{id}/deactivate", &["post"]),
    ("/users/{id}/reactivate", &["post"]),
    ("/cases/{case_id}/conversations", &["get", "post"]),
    ("/cases/{case_id}/members", &["put"]),
    ("/cases/{case_id}/archive", &["post"]),
    ("/conversations/{id}", &["get"]),
    ("/conversations/{id}/messages", &["get", "post"]),
    ("/conversations/{id}/transcript", &["get"]),
    ("/conversations/{id}/attachments/{attachment_id}", &["get"]),
    ("/cases/{case_id}/transcript", &["get"]),
    ("/webhooks", &["get", "post"]),
    ("/webhooks/{id}", &["delete"]),
];

impl Route {
    /// The route of `method` on `path` (the whole path, `/api/v1/...`).
    pub fn parse(method: &Method, path: &str) -> Result<Route, NoRoute> {
        let not_found = || NoRoute::NotFound(format!("no API path {path}; see {BASE}/openapi.json"));
        let rest = path.strip_prefix(BASE).ok_or_else(not_found)?;
        let segs: Vec<&str> = rest.strip_prefix('/').ok_or_else(not_found)?.split('/').collect();
        let m = method.as_str();
        let pick = |allowed: &'static str, r: &[(&str, Route)]| {
            r.iter().find(|(mm, _)| *mm == m).map(|(_, r)| r.clone()).ok_or(NoRoute::Method(allowed))
        };
        let text = |s: &str| decode(s).filter(|d| !d.is_empty()).ok_or_else(not_found);
        let conv = |s: &str| s.parse::<u64>().ok().filter(|&c| c != 0).ok_or_else(not_found);
        match segs.as_slice() {
            ["openapi.json"] => pick("GET", &[("GET", Route::OpenApi)]),
            ["users"] => pick("POST", &[("POST", Route::ProvisionUser)]),
            ["users", id, "deactivate"] => pick("POST", &[("POST", Route::DeactivateUser(text(id)?))]),
            ["users", id, "reactivate"] => pick("POST", &[("POST", Route::ReactivateUser(text(id)?))]),
            ["cases", case, "conversations"] => {
                let case = text(case)?;
                pick(
                    "GET, POST",
                    &[("GET", Route::CaseConversations(case.clone())), ("POST", Route::CreateCaseConversation(case))],
                )
            }
            ["cases", case, "members"] => pick("PUT", &[("PUT", Route::SetCaseMembers(text(case)?))]),
            ["cases", case, "archive"] => pick("POST", &[("POST", Route::ArchiveCase(text(case)?))]),
            ["cases", case, "transcript"] => pick("GET", &[("GET", Route::CaseTranscript(text(case)?))]),
            ["conversations", id, "transcript"] => pick("GET", &[("GET", Route::Transcript(conv(id)?))]),
            ["conversations", id, "attachments", att] => {
                pick("GET", &[("GET", Route::Attachment(conv(id)?, text(att)?))])
            }
            ["conversations", id] => pick("GET", &[("GET", Route::Conversation(conv(id)?))]),
            ["conversations", id, "messages"] => {
                let id = conv(id)?;
                pick("GET, POST", &[("GET", Route::History(id)), ("POST", Route::PostMessage(id))])
            }
            ["webhooks"] => pick("GET, POST", &[("GET", Route::Webhooks), ("POST", Route::CreateWebhook)]),
            ["webhooks", id] => pick("DELETE", &[("DELETE", Route::DeleteWebhook(text(id)?))]),
            _ => Err(not_found()),
        }
    }

    /// The scope a service account needs for it (None: no credential needed).
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Route::OpenApi => None,
            Route::ProvisionUser | Route::DeactivateUser(_) | Route::ReactivateUser(_) => Some(Scope::Admin),
            Route::CaseConversations(_)
            | Route::Conversation(_)
            | Route::History(_)
            | Route::Transcript(_)
            | Route::CaseTranscript(_)
            | Route::Attachment(..) => Some(Scope::Read),
            // An account is told only what it may read anyway.
            Route::Webhooks | Route::CreateWebhook | Route::DeleteWebhook(_) => Some(Scope::Read),
            Route::CreateCaseConversation(_)
            | Route::SetCaseMembers(_)
            | Route::ArchiveCase(_)
            | Route::PostMessage(_) => Some(Scope::Write),
        }
    }

    /// Whether it takes a JSON body.
    pub fn has_body(&self) -> bool {
        matches!(
            self,
            Route::ProvisionUser
                | Route::DeactivateUser(_)
                | Route::ReactivateUser(_)
                | Route::CreateCaseConversation(_)
                | Route::SetCaseMembers(_)
                | Route::PostMessage(_)
                | Route::CreateWebhook
        )
    }

    /// The conversation it is about, if one (for the audit trail).
    pub fn conversation(&self) -> u64 {
        match self {
            Route::Conversation(c)
            | Route::History(c)
            | Route::PostMessage(c)
            | Route::Transcript(c)
            | Route::Attachment(c, _) => *c,
            _ => 0,
        }
    }
}

/// A path segment or query value, percent-decoded (None: malformed or not UTF-8).
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of `name` in a query string (`a=1&b=2`), decoded.
pub fn query<'a>(q: Option<&'a str>, name: &str) -> Option<Result<String, &'a str>> {
    q?.split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(&v.replace('+', " ")).ok_or(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(p: &str) -> Result<Route, NoRoute> {
        Route::parse(&Method::GET, p)
    }

    #[test]
    fn paths_read_into_routes_with_their_parameters() {
        assert_eq!(get("/api/v1/openapi.json"), Ok(Route::OpenApi));
        assert_eq!(get("/api/v1/cases/M%2F2024%2017/conversations"), Ok(Route::CaseConversations("M/2024 17".into())));
        assert_eq!(
            Route::parse(&Method::POST, "/api/v1/cases/M-1/conversations"),
            Ok(Route::CreateCaseConversation("M-1".into()))
        );
        assert_eq!(Route::parse(&Method::PUT, "/api/v1/cases/M-1/members"), Ok(Route::SetCaseMembers("M-1".into())));
        assert_eq!(get("/api/v1/conversations/42/messages"), Ok(Route::History(42)));
        assert_eq!(Route::parse(&Method::POST, "/api/v1/conversations/42/messages"), Ok(Route::PostMessage(42)));
        assert_eq!(
            Route::parse(&Method::POST, "/api/v1/users/ann/deactivate"),
            Ok(Route::DeactivateUser("ann".into()))
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_refused_precisely() {
        assert!(matches!(get("/api/v1/nothing"), Err(NoRoute::NotFound(_))));
        assert!(matches!(get("/api/v1/conversations/abc"), Err(NoRoute::NotFound(_))), "not a number");
        assert!(matches!(get("/api/v1/conversations/0"), Err(NoRoute::NotFound(_))), "no conversation 0");
        assert!(matches!(get("/api/v1/cases/%zz/conversations"), Err(NoRoute::NotFound(_))), "bad escape");
        assert!(matches!(get("/api/v1/cases//conversations"), Err(NoRoute::NotFound(_))), "empty case id");
        assert!(matches!(get("/api/v2/users"), Err(NoRoute::NotFound(_))));
        assert_eq!(get("/api/v1/users"), Err(NoRoute::Method("POST")));
        assert_eq!(
            Route::parse(&Method::DELETE, "/api/v1/conversations/1/messages"),
            Err(NoRoute::Method("GET, POST"))
        );
    }

    #[test]
    fn each_route_needs_its_scope() {
        assert_eq!(Route::OpenApi.scope(), None);
        assert_eq!(Route::ProvisionUser.scope(), Some(Scope::Admin));
        assert_eq!(Route::History(1).scope(), Some(Scope::Read));
        assert_eq!(Route::PostMessage(1).scope(), Some(Scope::Write));
        assert_eq!(Route::ArchiveCase("c".into()).scope(), Some(Scope::Write));
    }

    #[test]
    fn queries_are_decoded() {
        let q = Some("after=5&page=a%2Bb&flag&x=%zz");
        assert_eq!(query(q, "after"), Some(Ok("5".into())));
        assert_eq!(query(q, "page"), Some(Ok("a+b".into())));
        assert_eq!(query(q, "flag"), Some(Ok(String::new())));
        assert_eq!(query(q, "x"), Some(Err("%zz")));
        assert_eq!(query(q, "nope"), None);
        assert_eq!(query(None, "after"), None);
    }
}
