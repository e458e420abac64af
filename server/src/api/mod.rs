//! The server API (`/api/v1` on the web endpoint): HTTPS + JSON for the
//! firm's own systems (its case-management system first), described by the
//! OpenAPI document `openapi.json` beside this file and served at
//! `/api/v1/openapi.json`.
//!
//! It owns one request's way through: the route ([`route`]), the service
//! account's credential ([`credential`], checked against the store on every
//! call, so a revocation holds at once), the route's scope, the account's
//! rate (`api.requests_per_minute`, counted at its home shard), the bounded
//! JSON body, the audit record of every authenticated call (`api.call`),
//! and errors as problem details ([`problem`]). The operations
//! ([`handlers`]) run the same commands as the apps do, as the service
//! account (`svc:<id>`, [`Role::Service`]): it sees and changes only the
//! conversations it created or was given, and its messages are system
//! messages. Service accounts themselves are made and revoked by
//! [`accounts`] (in `crate::command::service_accounts`, with their credentials). It does not own HTTP serving (that is `crate::web`).

pub use crate::command::service_accounts::{accounts, credential};

mod bundle;
mod exports;
mod handlers;
mod json;
pub mod problem;
pub mod route;
mod webhooks;

use crate::audit::{AuditEvent, EventKind};
use crate::command::Requester;
use crate::ids::Caller;
use crate::shard::{ShardCtx, UserRate};
use crate::store::service_accounts::{ServiceAccountRecord, ServiceAccountStore};
use bytes::Bytes;
use chat_protocol::WireError;
use chat_protocol::v1::{ErrorCode, Role};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use problem::Out;
use route::{NoRoute, OPENAPI, Route};
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A response body: whole, or streamed from a producer (an export).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
/// A response of the web endpoint.
pub type Resp = Response<Body>;

/// A body of these bytes.
fn whole(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// A body of what `rx` yields until it closes; an error aborts the response.
fn streamed(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Body {
    let frames =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item.map(Frame::data), rx)) },
        );
    StreamBody::new(frames).boxed_unsync()
}

/// Serves one request under `/api/v1`.
pub async fn serve(ctx: Rc<ShardCtx>, req: Request<Incoming>) -> Resp {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let route = match Route::parse(&method, &path) {
        Ok(r) => r,
        Err(NoRoute::NotFound(why)) => return problem(&WireError::new(ErrorCode::NotFound, why)),
        Err(NoRoute::Method(allowed)) => return method_not_allowed(&method, allowed),
    };
    let Some(scope) = route.scope() else {
        return respond(StatusCode::OK, "application/json", OPENAPI);
    };
    let account = match authenticate(&ctx, req.headers()).await {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(%path, error = %e.message, "API request refused");
            return problem(&e);
        }
    };
    let caller = Caller { user: Arc::from(credential::user_id(&account.id)), role: Role::Service };
    let call = Requester { session: ctx.shared.next_session_id(), ctx, caller };
    let answer = run_checked(&call, &account, scope, &route, req).await;
    let (status, code) = match &answer {
        Ok(Out::Json(s, _)) => (*s, ""),
        Ok(Out::File { .. } | Out::Stream { .. }) => (StatusCode::OK, ""),
        Err(e) => (problem::status_of(e.code), e.code.as_str_name()),
    };
    // Calls past the rate are not recorded one by one: a flood of them
    // must not become a flood of audit writes (they are logged).
    if status == StatusCode::TOO_MANY_REQUESTS {
        tracing::debug!(account = %call.caller.user, %path, "API call over the rate");
    } else {
        let details =
            serde_json::json!({"method": method.as_str(), "path": path, "status": status.as_u16(), "code": code});
        let ev =
            AuditEvent::new(EventKind::ApiCall, &*call.caller.user).conversation(route.conversation()).details(details);
        crate::command::audit::record(&call.ctx, ev).await;
    }
    match answer {
        Ok(Out::Json(status, doc)) => respond(status, "application/json", doc.to_string()),
        Ok(Out::File { media_type, name, bytes }) => file(media_type, &name, whole(Bytes::from(bytes))),
        Ok(Out::Stream { media_type, name, rx }) => file(media_type, &name, streamed(rx)),
        Err(e) => problem(&e),
    }
}

/// A file to save: its type, and its name with anything but safe
/// characters replaced (`Content-Disposition: attachment`).
fn file(media_type: &'static str, name: &str, body: Body) -> Resp {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let mut r = respond(StatusCode::OK, media_type, Bytes::new());
    *r.body_mut() = body;
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// The checks after authentication (scope, rate, body), then the handler.
async fn run_checked(
    call: &Requester,
    account: &ServiceAccountRecord,
    scope: crate::store::service_accounts::Scope,
    route: &Route,
    req: Request<Incoming>,
) -> Result<Out, WireError> {
    if !account.scopes.contains(&scope) {
        let msg = format!("this service account lacks the {} scope this call needs", scope.name());
        return Err(WireError::new(ErrorCode::Forbidden, msg));
    }
    call.ctx.check_user_rate(UserRate::Api, &call.caller.user).await?;
    let query = req.uri().query().map(str::to_owned);
    let body = if route.has_body() { read_body(&call.ctx, req).await? } else { Bytes::new() };
    handlers::run(call, account, route, query.as_deref(), &body).await
}

/// The service account of the request's credential, active and with this secret.
async fn authenticate(ctx: &ShardCtx, headers: &hyper::HeaderMap) -> Result<ServiceAccountRecord, WireError> {
    let unauthenticated = |m: &str| WireError::new(ErrorCode::Unauthenticated, m);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthenticated("an Authorization: Bearer chatd_sa_... header is required"));
    };
    let presented = value.to_str().ok().and_then(credential::parse).ok_or_else(|| {
        unauthenticated("the Authorization header holds no service account credential (Bearer chatd_sa_...)")
    })?;
    let stored =
        ctx.shared.store.get_service_account(&presented.id).await.map_err(crate::command::request::store_err)?;
    let account = stored
        .filter(|a| credential::matches(&presented.secret, &a.secret_sha256))
        .ok_or_else(|| unauthenticated("unknown service account or wrong secret"))?;
    if !account.active() {
        return Err(unauthenticated("this service account was revoked"));
    }
    Ok(account)
}

/// The request's body, at most `api.max_body_bytes`.
async fn read_body(ctx: &ShardCtx, req: Request<Incoming>) -> Result<Bytes, WireError> {
    let max = ctx.shared.cfg.api.max_body_bytes;
    let too_large = || {
        WireError::limited(
            ErrorCode::FrameTooLarge,
            "max_body_bytes",
            format!("a request body is at most {max} bytes"),
            None,
        )
    };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > max
    {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(WireError::new(ErrorCode::Malformed, format!("the request body could not be read: {e}"))),
    }
}

/// A response with the headers every response of the web endpoint carries
/// (the CSP is added by it); `cache`: its `Cache-Control`.
pub fn respond_with(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    body: impl Into<Bytes>,
) -> Resp {
    let mut r = Response::new(whole(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// An API response: never stored by caches (it may carry privileged content).
fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    respond_with(status, content_type, "no-store", body)
}

/// An error as problem details, with `Retry-After` for a rate refusal and
/// `WWW-Authenticate` for a missing or bad credential.
fn problem(e: &WireError) -> Resp {
    let status = problem::status_of(e.code);
    let mut r = respond(status, "application/problem+json", problem::body(e).to_string());
    if let Some(wait) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"chatd\""));
    }
    r
}

fn method_not_allowed(method: &hyper::Method, allowed: &'static str) -> Resp {
    let e = WireError::new(ErrorCode::UnknownCommand, format!("{method} is not served on this path; {allowed}"));
    let mut r = respond(StatusCode::METHOD_NOT_ALLOWED, "application/problem+json", {
        let mut doc = problem::body(&e);
        doc["status"] = 405.into();
        doc["title"] = "Method Not Allowed".into();
        doc.to_string()
    });
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed));
    r
}
