//! A non-interactive client on the SDK for tools and tests: JSON-lines
//! commands on stdin, JSON-lines events and replies on stdout.
//!
//! `cargo run -p chat-client --features mls --example jsonl -- --addr 127.0.0.1:4433 --cert-hash <hex> --token <jwt> [--webtransport] [--mls-device rs] [--mls-state FILE]`
//!
//! Commands (one JSON object per line; `id` is echoed in the reply):
//! `{"id":1,"cmd":"private","user":"bob"}`, `{"id":2,"cmd":"send","conv":1,"text":"hi"}`,
//! `{"cmd":"typing","conv":1,"on":true}`, `{"cmd":"read","conv":1,"seq":3}`,
//! `{"cmd":"list"}`, `{"cmd":"history","conv":1,"limit":50}`, `{"cmd":"members","conv":1}`,
//! `{"id":3,"cmd":"e2e-group","title":"t","users":["bob"]}` (an end-to-end encrypted group),
//! the end-to-end encrypted `e2e-*` commands of one MLS device (see `e2e.rs`),
//! `{"cmd":"quit"}`. Commands run concurrently: wait for a reply before sending a
//! command that must come after it.
//! Output: `{"event":"connected",...}`, `{"event":"message","conv":1,"seq":2,"sender":"bob","text":"..."}`,
//! `{"event":"receipt",...}`, `{"event":"typing",...}`, `{"event":"presence",...}`,
//! `{"event":"reply","id":1,"ok":true,...}` or `{"event":"reply","id":1,"ok":false,"error":"..."}`.

mod e2e;

use chat_client::v1::{self, ConversationKind, message_body::Content};
use chat_client::{Client, ClientConfig, Event, Transport, Trust};
use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "JSON-lines client of the chat service")]
struct Args {
    /// Server address, host:port.
    #[arg(long, default_value = "127.0.0.1:4433")]
    addr: String,
    /// SHA-256 of the server's certificate (hex).
    #[arg(long, env = "CHAT_CERT_HASH")]
    cert_hash: String,
    /// The JWT to authenticate with.
    #[arg(long, env = "CHAT_TOKEN")]
    token: String,
    /// Use WebTransport instead of raw QUIC.
    #[arg(long)]
    webtransport: bool,
    /// This client's MLS device id (for the `e2e-*` commands).
    #[arg(long, default_value = "rs")]
    mls_device: String,
    /// The file of the MLS device (made if missing; default: kept in memory).
    #[arg(long)]
    mls_state: Option<String>,
}

fn text(m: &v1::Message) -> String {
    match m.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(Content::Text(t)) => t.clone(),
        _ => String::new(),
    }
}

fn message_json(m: &v1::Message) -> Value {
    json!({"conv": m.conversation_id, "seq": m.seq, "sender": m.sender_id, "text": text(m), "kind": m.kind})
}

fn event_json(e: &Event) -> Value {
    match e {
        Event::Connected { session_id, node, resumed } => {
            json!({"event": "connected", "session": session_id, "node": node, "resumed": resumed})
        }
        Event::Disconnected { reason, error, will_retry } => json!({
            "event": "disconnected", "reason": reason, "error": error.as_ref().map(|e| e.to_string()), "will_retry": will_retry
        }),
        Event::Message(m) => {
            let mut v = message_json(m);
            v["event"] = json!("message");
            v
        }
        Event::Changed(m) => {
            let mut v = message_json(m);
            v["event"] = json!("changed");
            v["target"] = json!(m.target_seq);
            if let Some(r) = &m.reaction {
                v["emoji"] = json!(r.emoji);
                v["on"] = json!(r.on);
            }
            v
        }
        Event::Receipt(r) => json!({
            "event": "receipt", "conv": r.conversation_id, "user": r.user_id,
            "kind": if r.kind == v1::ReceiptKind::Read as i32 { "read" } else { "delivered" }, "seq": r.seq
        }),
        Event::Typing(t) => {
            json!({"event": "typing", "conv": t.conversation_id, "user": t.user_id, "typing": t.typing})
        }
        Event::Presence(p) => json!({"event": "presence", "user": p.user_id, "online": p.online, "devices": p.devices}),
        Event::Membership(m) => {
            json!({"event": "membership", "conv": m.conversation_id, "user": m.user_id, "change": m.change})
        }
        Event::Conversation(s) => json!({
            "event": "conversation", "conv": s.conversation.as_ref().map(|c| c.id), "unread": s.unread_count
        }),
        Event::CaughtUp => json!({"event": "caught_up"}),
        Event::Resync { reason } => json!({"event": "resync", "reason": reason}),
    }
}

fn conv_id(ok: &v1::ConversationOk) -> u64 {
    ok.summary.as_ref().and_then(|s| s.conversation.as_ref()).map_or(0, |c| c.id)
}

async fn run(client: &Client, device: &e2e::Shared, cmd: &Value) -> Result<Value, String> {
    let name = cmd["cmd"].as_str().unwrap_or("");
    if let Some(r) = e2e::run(client, device, name, cmd).await {
        return r.map_err(|e| e.to_string());
    }
    plain(client, cmd).await.map_err(|e| e.to_string())
}

async fn plain(client: &Client, cmd: &Value) -> Result<Value, chat_client::ClientError> {
    let conv = cmd["conv"].as_u64().unwrap_or(0);
    let users = || -> Vec<String> {
        cmd["users"]
            .as_array()
            .map(|a| a.iter().filter_map(|u| u.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let s = |k: &str| cmd[k].as_str().unwrap_or("").to_string();
    Ok(match cmd["cmd"].as_str().unwrap_or("") {
        "private" => {
            let ok = client.create_conversation(ConversationKind::Private, "", "", vec![s("user")]).await?;
            json!({"conv": conv_id(&ok), "existing": ok.existing})
        }
        "group" => {
            json!({"conv": conv_id(&client.create_conversation(ConversationKind::Group, s("title"), "", users()).await?)})
        }
        "e2e-group" => {
            let ok = client.create_e2e_conversation(ConversationKind::Group, s("title"), "", users()).await?;
            json!({"conv": conv_id(&ok)})
        }
        "send" => {
            let ok = client.send_text(conv, s("text")).await?;
            json!({"conv": ok.conversation_id, "seq": ok.seq, "duplicate": ok.duplicate})
        }
        "typing" => {
            client.set_typing(conv, cmd["on"].as_bool().unwrap_or(true)).await?;
            json!({})
        }
        "read" => {
            client.mark_read(conv, cmd["seq"].as_u64().unwrap_or(0)).await?;
            json!({})
        }
        "list" => {
            let l = client.list_conversations(v1::ListConversations { limit: 200, ..Default::default() }).await?;
            let convs: Vec<Value> = l
                .conversations
                .iter()
                .map(|s| json!({"conv": s.conversation.as_ref().map(|c| c.id), "unread": s.unread_count}))
                .collect();
            json!({"conversations": convs})
        }
        "history" => {
            let h = client.history(conv, 0, 0, cmd["limit"].as_u64().unwrap_or(50) as u32).await?;
            json!({"messages": h.messages.iter().map(message_json).collect::<Vec<_>>(), "has_more": h.has_more})
        }
        "members" => {
            let m = client.get_members(conv).await?;
            let members: Vec<Value> = m
                .members
                .iter()
                .map(|m| json!({"user": m.user_id, "delivered": m.delivered_seq, "read": m.read_seq}))
                .collect();
            json!({"members": members})
        }
        other => json!({"unknown_command": other}),
    })
}

async fn emit(out: &tokio::sync::Mutex<tokio::io::Stdout>, v: Value) {
    let mut line = v.to_string();
    line.push('\n');
    let mut o = out.lock().await;
    let _ = o.write_all(line.as_bytes()).await;
    let _ = o.flush().await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let trust = Trust::cert_hash_hex(&args.cert_hash).map_err(anyhow::Error::msg)?;
    let transport = if args.webtransport { Transport::WebTransport } else { Transport::Quic };
    let cfg = ClientConfig::new(args.addr, args.token, trust).transport(transport);
    let (client, mut events) = Client::connect(cfg).await?;
    let out = std::sync::Arc::new(tokio::sync::Mutex::new(tokio::io::stdout()));
    let user = client.user().map(|u| u.id).unwrap_or_default();
    let device = e2e::open(&client, &user, &args.mls_device, args.mls_state.as_deref()).await?;
    emit(&out, json!({"event": "ready", "user": user})).await;
    let (ev_out, ev_device) = (out.clone(), device.clone());
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            emit(&ev_out, event_json(&e)).await;
            if let Event::Message(m) = &e
                && let Some(v) = e2e::on_message(&ev_device, m).await
            {
                emit(&ev_out, v).await;
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                emit(&out, json!({"event": "reply", "ok": false, "error": format!("bad json: {e}")})).await;
                continue;
            }
        };
        if cmd["cmd"] == "quit" {
            break;
        }
        // Each command runs by itself, so a send waiting for its ack across a
        // reconnect does not block the next line.
        let (client, out, device) = (client.clone(), out.clone(), device.clone());
        tokio::spawn(async move {
            let id = cmd["id"].clone();
            let reply = match run(&client, &device, &cmd).await {
                Ok(mut v) => {
                    v["ok"] = json!(true);
                    v
                }
                Err(e) => json!({"ok": false, "error": e}),
            };
            let mut v = reply;
            v["event"] = json!("reply");
            v["id"] = id;
            emit(&out, v).await;
        });
    }
    client.close().await;
    Ok(())
}
