//! The end-to-end encrypted commands of the `jsonl` client: one MLS device
//! of the signed-in user (kept in memory, or in `--mls-state`), fed every
//! ciphertext entry of the events stream in order, and the commands that
//! drive it. What it decrypts comes out as `{"event":"e2e",...}` lines.
//!
//! `{"cmd":"e2e-create","title":"t","users":["bob"]}` (a group and its
//! members' devices), `{"cmd":"e2e-send","conv":1,"text":"hi"}`,
//! `{"cmd":"e2e-add","conv":1,"users":["carol"]}`, `{"cmd":"e2e-new-devices","conv":1}`,
//! `{"cmd":"e2e-catch-up","conv":1}`, `{"cmd":"e2e-safety","conv":1}`,
//! `{"cmd":"e2e-send-file","conv":1,"text":"t","name":"a.txt","media_type":"text/plain","content":"..."}`
//! and `{"cmd":"e2e-download","conv":1,"name":"a.txt"}` (a file received under that name; its content as text).

use std::collections::HashMap;
use std::sync::Arc;

use chat_client::Client;
use chat_client::mls::{Device, MlsError, Received};
use chat_client::v1::{self, ConversationKind};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// KeyPackages the device keeps published.
const KEY_PACKAGES: u32 = 10;

/// The device and the files it received (by name), shared by the events task and the commands.
pub type Shared = Arc<Mutex<State>>;

/// What the `e2e-*` commands work on.
pub struct State {
    device: Device,
    files: HashMap<String, v1::E2eFile>,
}

/// The device of `user` called `device`: reopened from `path` if it exists,
/// made (and saved there, if a path is given) otherwise; KeyPackages published.
pub async fn open(client: &Client, user: &str, device: &str, path: Option<&str>) -> Result<Shared, MlsError> {
    let mut d = match path {
        Some(p) if std::path::Path::new(p).exists() => Device::open(p)?,
        Some(p) => Device::create(p, user, device)?,
        None => Device::in_memory(user, device)?,
    };
    d.replenish(client, KEY_PACKAGES).await?;
    Ok(Arc::new(Mutex::new(State { device: d, files: HashMap::new() })))
}

/// What an applied entry was, as an output line (None: nothing to say).
pub fn received_json(conv: u64, r: &Received) -> Option<Value> {
    Some(match r {
        Received::Text { seq, sender, device, text, files } => json!({
            "event": "e2e", "conv": conv, "seq": seq, "sender": sender, "device": device, "text": text,
            "files": files.iter().map(|f| f.name.clone()).collect::<Vec<_>>()
        }),
        Received::Joined { seq } => json!({"event": "e2e-joined", "conv": conv, "seq": seq}),
        Received::Committed { epoch, removed } => {
            json!({"event": "e2e-committed", "conv": conv, "epoch": epoch, "removed": removed})
        }
        Received::Refused { seq, why } => json!({"event": "e2e-refused", "conv": conv, "seq": seq, "why": why}),
        Received::Skipped => return None,
    })
}

/// Applies an entry from the events stream; what it was, as an output line.
pub async fn on_message(state: &Shared, m: &v1::Message) -> Option<Value> {
    let mut s = state.lock().await;
    let r = s.device.receive(m);
    match r {
        Ok(r) => {
            if let Received::Text { files, .. } = &r {
                s.files.extend(files.iter().map(|f| (f.name.clone(), f.clone())));
            }
            received_json(m.conversation_id, &r)
        }
        Err(e) => Some(json!({"event": "e2e-error", "conv": m.conversation_id, "seq": m.seq, "error": e.to_string()})),
    }
}

/// Runs an `e2e-*` command; None if `name` is not one.
pub async fn run(client: &Client, state: &Shared, name: &str, cmd: &Value) -> Option<Result<Value, MlsError>> {
    let conv = cmd["conv"].as_u64().unwrap_or(0);
    let users: Vec<String> = cmd["users"]
        .as_array()
        .map(|a| a.iter().filter_map(|u| u.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let s = |k: &str| cmd[k].as_str().unwrap_or("");
    let text = s("text");
    let mut guard = state.lock().await;
    let State { device: d, files } = &mut *guard;
    let r = match name {
        "e2e-create" => d
            .create_conversation(client, ConversationKind::Group, s("title"), "", &names)
            .await
            .map(|c| json!({"conv": c})),
        "e2e-send" => d.send_text(client, conv, text).await.map(|ok| json!({"conv": conv, "seq": ok.seq})),
        "e2e-add" => d.add_members(client, conv, &names).await.map(|()| json!({})),
        "e2e-new-devices" => d.add_new_devices(client, conv).await.map(|n| json!({"added": n})),
        "e2e-catch-up" => d
            .catch_up(client, conv)
            .await
            .map(|all| json!({"received": all.iter().filter_map(|r| received_json(conv, r)).collect::<Vec<_>>()})),
        "e2e-send-file" => {
            let file = (s("name"), s("media_type"), s("content").as_bytes());
            d.send_file(client, conv, text, file).await.map(|ok| json!({"conv": conv, "seq": ok.seq}))
        }
        "e2e-download" => match files.get(s("name")) {
            Some(f) => d
                .download_file(client, conv, f)
                .await
                .map(|bytes| json!({"size": bytes.len(), "content": String::from_utf8_lossy(&bytes)})),
            None => Ok(json!({"missing": s("name")})),
        },
        "e2e-safety" => d.safety_numbers(conv).map(|all| {
            let numbers: Vec<Value> = all
                .into_iter()
                .map(|(user, device, number)| json!({"user": user, "device": device, "number": number}))
                .collect();
            json!({"numbers": numbers, "epoch": d.epoch(conv)})
        }),
        _ => return None,
    };
    Some(r)
}
