//! Event webhooks of service accounts: what happened in a conversation
//! ([`HookEvent`]) is queued without waiting ([`Hooks::emit`]; a full queue
//! drops it, counted), and on a thread of its own each event is matched to
//! the webhooks of the service accounts that are members of the
//! conversation (active, with the read scope; by kind and case id) and
//! posted to each, signed and retried as offline notifications are; a
//! webhook that failed every attempt is skipped for a minute. A
//! service account is never told of its own doings. Payloads carry ids and
//! metadata; a message's text only for a webhook that asks for it.

use super::{http, post_signed};
use crate::config::ApiConfig;
use crate::metrics::NotifyMetrics;
use crate::store::service_accounts::{HookKind, Scope, ServiceAccountStore, Webhook};
use crate::store::{MessageStore, Store};
use bytes::Bytes;
use chat_protocol::v1;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};

/// Requests in flight at once per node.
const CONCURRENCY: usize = 16;
/// How long a webhook whose event was given up is skipped (its events dropped, counted).
const DOWN_FOR: Duration = Duration::from_secs(60);
/// The user ids of service accounts start with this.
pub const SERVICE_PREFIX: &str = "svc:";

/// Something that happened in a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    /// Where.
    pub conversation_id: u64,
    /// What.
    pub kind: HookKind,
    /// Who did it (the sender, the member who added or removed, the uploader).
    pub actor: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// What the kind carries: a message's seq, kind and text; a member's id;
    /// an attachment's metadata (a JSON object; `text` is removed unless the
    /// webhook includes content).
    pub details: Value,
}

impl HookEvent {
    /// A stored message (a person's or a system message).
    pub fn posted(m: &v1::Message) -> Self {
        let kind = if m.kind == v1::MessageKind::System as i32 { "system" } else { "user" };
        let text = match m.body.as_ref().and_then(|b| b.content.as_ref()) {
            Some(v1::message_body::Content::Text(t)) => Value::from(t.as_str()),
            _ => Value::Null,
        };
        let attachments: Vec<Value> = m.attachments.iter().map(attachment).collect();
        HookEvent {
            conversation_id: m.conversation_id,
            kind: HookKind::MessagePosted,
            actor: m.sender_id.clone(),
            at_ms: m.server_time_ms,
            details: json!({"seq": m.seq, "kind": kind, "reply_to": m.reply_to, "text": text, "attachments": attachments}),
        }
    }

    /// A file uploaded into `conversation_id` by `uploader`.
    pub fn uploaded(a: &v1::Attachment) -> Self {
        HookEvent {
            conversation_id: a.conversation_id,
            kind: HookKind::AttachmentUploaded,
            actor: a.uploader_id.clone(),
            at_ms: a.uploaded_at_ms,
            details: attachment(a),
        }
    }
}

/// An attachment's metadata in a payload (never its bytes).
fn attachment(a: &v1::Attachment) -> Value {
    json!({"attachment_id": a.attachment_id, "name": a.name, "size": a.size, "media_type": a.media_type, "sha256": a.sha256})
}

/// The sending half, held by the server.
#[derive(Clone)]
pub struct Hooks {
    tx: mpsc::Sender<HookEvent>,
    metrics: NotifyMetrics,
}

impl Hooks {
    /// Starts the dispatcher thread over `store`.
    pub fn start(cfg: &ApiConfig, store: Arc<Store>, metrics: NotifyMetrics) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(cfg.webhook_queue.max(1));
        let (cfg, m) = (Arc::new(cfg.clone()), metrics.clone());
        std::thread::Builder::new().name("chatd-hooks".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(run(rx, cfg, store, m)),
                Err(e) => tracing::error!(error = %e, "webhook thread cannot start"),
            }
        })?;
        Ok(Self { tx, metrics })
    }

    /// Queues `ev` without waiting; a full queue drops it (counted).
    pub fn emit(&self, ev: HookEvent) {
        if self.tx.try_send(ev).is_err() {
            self.metrics.dropped.increment(1);
            tracing::warn!("webhook queue full; one event dropped");
        }
    }
}

/// Why `url` cannot be a webhook's, if it cannot: not http(s), or (unless
/// `allow_private`) an IP address inside the network.
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let t = http::Target::parse(url)?;
    match t.host_port().0.parse::<IpAddr>() {
        Ok(ip) if !allow_private && !is_public(ip) => Err(private(url)),
        _ => Ok(()),
    }
}

fn private(url: &str) -> String {
    format!(
        "the webhook URL {:?} leads inside the network (loopback, private or link-local); \
         api.webhook_allow_private allows it",
        crate::config::redact_url(url)
    )
}

/// Whether `ip` is on the public internet (not loopback, private, link-local,
/// shared, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// The webhook's target, its host resolved now and every address checked
/// (unless `allow_private`), pinned to the first so no later lookup can
/// send the request elsewhere.
async fn resolve(url: &str, allow_private: bool) -> Result<http::Target, String> {
    let t = http::Target::parse(url)?;
    let (host, port) = t.host_port();
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("{host}: {e}"))?.collect();
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(private(url));
    }
    let first = addrs.first().copied().ok_or_else(|| format!("{host} has no address"))?;
    Ok(t.pin(first))
}

async fn run(mut rx: mpsc::Receiver<HookEvent>, cfg: Arc<ApiConfig>, store: Arc<Store>, m: NotifyMetrics) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let down: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    while let Some(ev) = rx.recv().await {
        let targets = match matching(&store, &ev).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, conv = ev.conversation_id, "webhook event not matched; dropped");
                m.failed.increment(1);
                continue;
            }
        };
        for (account, case_id, hook) in targets {
            // A receiver that just failed every attempt is skipped for a
            // while, so one dead receiver cannot hold every slot.
            if down.lock().is_ok_and(|d| d.get(&hook.id).is_some_and(|until| *until > Instant::now())) {
                m.failed.increment(1);
                continue;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let body = Bytes::from(payload(&ev, &account, &case_id, &hook).to_string());
            let (cfg, m, event, down) = (cfg.clone(), m.clone(), ev.kind.name(), down.clone());
            tokio::spawn(async move {
                if !deliver(&cfg, &m, &hook, body, event).await
                    && let Ok(mut d) = down.lock()
                {
                    d.retain(|_, until| *until > Instant::now());
                    d.insert(hook.id.clone(), Instant::now() + DOWN_FOR);
                }
                drop(slot);
            });
        }
    }
}

/// The webhooks `ev` goes to: of the service accounts in its conversation
/// (not the actor), active and allowed to read, subscribed to its kind and case.
async fn matching(store: &Store, ev: &HookEvent) -> Result<Vec<(String, String, Webhook)>, crate::store::StoreError> {
    let members = store.members(ev.conversation_id).await?;
    let mut accounts: Vec<String> = members
        .iter()
        .filter_map(|m| m.user_id.strip_prefix(SERVICE_PREFIX))
        .filter(|id| ev.actor.strip_prefix(SERVICE_PREFIX) != Some(*id))
        .map(str::to_owned)
        .collect();
    if let (HookKind::MemberRemoved, Some(id)) =
        (ev.kind, ev.details["user_id"].as_str().and_then(|u| u.strip_prefix(SERVICE_PREFIX)))
    {
        accounts.retain(|a| a != id);
    }
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let case_id = store.get_conversation(ev.conversation_id).await?.map(|c| c.case_id).unwrap_or_default();
    let mut out = Vec::new();
    for id in accounts {
        let Some(a) = store.get_service_account(&id).await? else { continue };
        if !a.active() || !a.scopes.contains(&Scope::Read) {
            continue;
        }
        for hook in a.webhooks {
            let case_ok = hook.case_ids.is_empty() || hook.case_ids.contains(&case_id);
            if hook.events.contains(&ev.kind) && case_ok {
                out.push((id.clone(), case_id.clone(), hook));
            }
        }
    }
    Ok(out)
}

/// The JSON posted for `ev` to `hook` of `account`.
pub fn payload(ev: &HookEvent, account: &str, case_id: &str, hook: &Webhook) -> Value {
    let mut details = ev.details.clone();
    if !hook.include_content
        && let Some(d) = details.as_object_mut()
    {
        d.remove("text");
    }
    json!({
        "event": ev.kind.name(),
        "id": format!("{:032x}", rand::random::<u128>()),
        "webhook_id": hook.id,
        "service_account": account,
        "conversation_id": ev.conversation_id.to_string(),
        "case_id": case_id,
        "actor": ev.actor,
        "at_ms": ev.at_ms,
        "details": details,
    })
}

async fn deliver(cfg: &ApiConfig, m: &NotifyMetrics, hook: &Webhook, body: Bytes, event: &str) -> bool {
    let target = match resolve(&hook.url, cfg.webhook_allow_private).await {
        Ok(t) => t,
        Err(why) => {
            m.failed.increment(1);
            tracing::warn!(webhook = %hook.id, why, "webhook event not sent");
            return false;
        }
    };
    let timeout = Duration::from_millis(cfg.webhook_timeout_ms);
    if post_signed(&target, hook.secret.as_bytes(), body, Some(event), timeout, cfg.webhook_attempts).await {
        m.sent.increment(1);
        return true;
    }
    m.failed.increment(1);
    tracing::warn!(webhook = %hook.id, url = %crate::config::redact_url(&hook.url), event, "webhook event given up; the webhook is skipped for a minute");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(include_content: bool) -> Webhook {
        Webhook {
            id: "h1".into(),
            url: "https://cms.example/h".into(),
            events: vec![HookKind::MessagePosted],
            include_content,
            ..Webhook::default()
        }
    }

    #[test]
    fn a_payload_carries_ids_and_text_only_when_asked() {
        let ev = HookEvent {
            conversation_id: 7,
            kind: HookKind::MessagePosted,
            actor: "alice".into(),
            at_ms: 5,
            details: json!({"seq": 3, "kind": "user", "text": "privileged"}),
        };
        let p = payload(&ev, "cms", "M/17", &hook(false));
        assert_eq!(p["event"], "message.posted");
        assert_eq!((p["conversation_id"].as_str(), p["case_id"].as_str()), (Some("7"), Some("M/17")));
        assert_eq!(p["details"], json!({"seq": 3, "kind": "user"}), "no text");
        assert_eq!(p["id"].as_str().map(str::len), Some(32));
        let p = payload(&ev, "cms", "M/17", &hook(true));
        assert_eq!(p["details"]["text"], "privileged");
    }

    #[test]
    fn only_http_urls_are_webhooks_and_not_inside_the_network() {
        assert!(check_url("https://cms.example/hooks", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/h", true).is_ok());
        assert!(check_url("ftp://cms.example/h", false).unwrap_err().contains("http"));
        assert!(check_url("not a url", false).is_err());
        for inside in [
            "https://127.0.0.1/h",
            "https://10.1.2.3/h",
            "https://169.254.169.254/latest",
            "https://[::1]/h",
            "https://[fd00::1]/h",
        ] {
            assert!(check_url(inside, false).unwrap_err().contains("inside the network"), "{inside}");
        }
        assert!(check_url("https://93.184.216.34/h", false).is_ok());
    }

    #[test]
    fn public_addresses_are_told_from_the_network_s_own() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for inside in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip(inside)), "{inside}");
        }
        for outside in ["93.184.216.34", "2606:2800:220:1::1", "::ffff:93.184.216.34"] {
            assert!(is_public(ip(outside)), "{outside}");
        }
    }
}
