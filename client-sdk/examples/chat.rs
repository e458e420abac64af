//! A terminal chat client on the SDK.
//!
//! `cargo run -p chat-client --example chat -- --addr 127.0.0.1:4433 --cert-hash <hex> --token <jwt> [--webtransport]`
//!
//! Lines starting with `/` are commands (`/help` lists them); other lines are
//! sent to the open conversation.

use chat_client::v1::{self, ConversationKind, message_body::Content};
use chat_client::{Client, ClientConfig, Event, Transport, Trust};
use clap::Parser;
use std::collections::HashMap;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Terminal client of the chat service")]
struct Args {
    /// Server address, host:port.
    #[arg(long, default_value = "127.0.0.1:4433")]
    addr: String,
    /// SHA-256 of the server's certificate (hex, as printed by the server).
    #[arg(long, env = "CHAT_CERT_HASH")]
    cert_hash: String,
    /// The JWT to authenticate with.
    #[arg(long, env = "CHAT_TOKEN")]
    token: String,
    /// TLS server name (raw QUIC).
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Use WebTransport instead of raw QUIC.
    #[arg(long)]
    webtransport: bool,
}

const HELP: &str = "commands:
  /list                          your conversations
  /open <conv-id>                open a conversation (lines you type go there)
  /private <user>                open a private conversation with a user
  /group <title> <user...>       create a group
  /case <case-id> <title> <user...>  create a case conversation
  /support                       open a support conversation (staff: show the queue)
  /join <conv-id>                join a conversation (staff: pick up support)
  /history [n]                   last n messages of the open conversation
  /members                       members of the open conversation
  /add <user>                    add a member to the open conversation
  /read                          mark the open conversation read
  /edit <seq> <text...>          replace the text of your message #seq
  /delete <seq>                  delete message #seq (yours; admins and moderators: anyone's)
  /react <seq> <emoji>           add your reaction to #seq; /unreact <seq> <emoji> takes it away
  /quit                          leave";

/// What the terminal session remembers.
#[derive(Default)]
struct State {
    open: Option<u64>,
    last_seq: HashMap<u64, u64>,
}

fn text(m: &v1::Message) -> String {
    match m.body.as_ref().and_then(|b| b.content.as_ref()) {
        Some(Content::Text(t)) => t.clone(),
        Some(Content::Ciphertext(c)) => format!("<{} encrypted bytes>", c.mls.len()),
        None => String::new(),
    }
}

fn print_message(m: &v1::Message) {
    let sender = if m.sender_id.is_empty() { "*" } else { m.sender_id.as_str() };
    println!("[{}] {}: {}", m.conversation_id, sender, text(m));
}

fn print_summary(s: &v1::ConversationSummary) {
    if let Some(c) = &s.conversation {
        let kind = ConversationKind::try_from(c.kind).map(|k| k.as_str_name()).unwrap_or("?");
        let kind = kind.trim_start_matches("CONVERSATION_KIND_").to_lowercase();
        let archived = if c.archived_at_ms > 0 { " (archived)" } else { "" };
        let case = if c.case_id.is_empty() { String::new() } else { format!(" case {}", c.case_id) };
        println!(
            "  #{} {} \"{}\"{}{} members={} unread={}",
            c.id, kind, c.title, case, archived, c.member_count, s.unread_count
        );
    }
}

fn on_event(ev: Event, st: &mut State) {
    match ev {
        Event::Connected { session_id, node, resumed } => {
            println!("* connected (session {session_id} on {node}{})", if resumed { ", resumed" } else { "" })
        }
        Event::Disconnected { reason, will_retry, .. } => {
            println!("* disconnected: {reason}{}", if will_retry { "; reconnecting" } else { "" })
        }
        Event::Message(m) => {
            st.last_seq.insert(m.conversation_id, m.seq);
            print_message(&m);
        }
        Event::Receipt(r) => {
            let kind = if r.kind == v1::ReceiptKind::Read as i32 { "read" } else { "received" };
            println!("[{}] {} {kind} up to #{}", r.conversation_id, r.user_id, r.seq);
        }
        Event::Typing(t) => {
            if t.typing {
                println!("[{}] {} is typing...", t.conversation_id, t.user_id);
            }
        }
        Event::Presence(p) => {
            println!("* {} is {}", p.user_id, if p.online { "online" } else { "offline" })
        }
        Event::Membership(m) => {
            let change = v1::MembershipChange::try_from(m.change).map(|c| c.as_str_name()).unwrap_or("?");
            let change = change.trim_start_matches("MEMBERSHIP_CHANGE_").to_lowercase();
            println!("[{}] {} {change}", m.conversation_id, m.user_id);
        }
        Event::Conversation(s) => {
            println!("* conversation update:");
            print_summary(&s);
        }
        Event::Changed(m) => {
            let kind = v1::MessageKind::try_from(m.kind).map(|k| k.as_str_name()).unwrap_or("?");
            let kind = kind.trim_start_matches("MESSAGE_KIND_").to_lowercase();
            println!("[{}] {} {kind} of #{}", m.conversation_id, m.sender_id, m.target_seq);
        }
        Event::CaughtUp => println!("* caught up"),
        Event::Resync { reason } => println!("* resync ({reason}); use /list and /history"),
    }
}

fn open_conv(st: &mut State, ok: &v1::ConversationOk) {
    if let Some(c) = ok.summary.as_ref().and_then(|s| s.conversation.as_ref()) {
        st.open = Some(c.id);
        println!("* opened #{} \"{}\"{}", c.id, c.title, if ok.existing { " (existing)" } else { "" });
    }
}

/// Runs one line; false to quit.
async fn on_line(client: &Client, st: &mut State, line: &str) -> anyhow::Result<bool> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(true);
    }
    if !line.starts_with('/') {
        let Some(conv) = st.open else {
            println!("* no open conversation: /list then /open <id>");
            return Ok(true);
        };
        client.send_text(conv, line).await?;
        return Ok(true);
    }
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or_default();
    let args: Vec<String> = words.map(str::to_string).collect();
    let need_open = || st.open.ok_or_else(|| anyhow::anyhow!("no open conversation"));
    match (cmd, args.as_slice()) {
        ("/quit", _) => return Ok(false),
        ("/help", _) => println!("{HELP}"),
        ("/list", _) => {
            let list = client.list_conversations(v1::ListConversations { limit: 50, ..Default::default() }).await?;
            for s in &list.conversations {
                print_summary(s);
            }
            if list.conversations.is_empty() {
                println!("  (none)");
            }
        }
        ("/open", [id]) => {
            let ok = client.get_conversation(id.parse()?).await?;
            open_conv(st, &ok);
        }
        ("/join", [id]) => {
            let id: u64 = id.parse()?;
            client.join(id).await?;
            st.open = Some(id);
            println!("* joined #{id}");
        }
        ("/private", [user]) => {
            let ok = client.create_conversation(ConversationKind::Private, "", "", vec![user.clone()]).await?;
            open_conv(st, &ok);
        }
        ("/group", [title, users @ ..]) => {
            let ok = client.create_conversation(ConversationKind::Group, title, "", users.to_vec()).await?;
            open_conv(st, &ok);
        }
        ("/case", [case_id, title, users @ ..]) => {
            let ok = client.create_conversation(ConversationKind::Case, title, case_id, users.to_vec()).await?;
            open_conv(st, &ok);
        }
        ("/support", _) => {
            let staff = client.user().is_some_and(|u| u.role == v1::Role::Admin as i32);
            if staff {
                let queue = client.support_queue(Default::default()).await?;
                println!("* support queue ({}):", queue.conversations.len());
                for s in &queue.conversations {
                    print_summary(s);
                }
            } else {
                let ok = client.create_conversation(ConversationKind::Support, "Support", "", vec![]).await?;
                open_conv(st, &ok);
            }
        }
        ("/history", rest) => {
            let conv = need_open()?;
            let n = rest.first().map(|n| n.parse()).transpose()?.unwrap_or(20);
            let page = client.history(conv, 0, 0, n).await?;
            for m in &page.messages {
                print_message(m);
            }
            if let Some(last) = page.messages.last() {
                let seen = st.last_seq.entry(conv).or_insert(0);
                *seen = (*seen).max(last.seq);
            }
        }
        ("/members", _) => {
            let members = client.get_members(need_open()?).await?;
            for m in &members.members {
                let role = v1::MemberRole::try_from(m.role).map(|r| r.as_str_name()).unwrap_or("?");
                let role = role.trim_start_matches("MEMBER_ROLE_").to_lowercase();
                println!(
                    "  {} ({}) {role} read={} delivered={}",
                    m.user_id, m.display_name, m.read_seq, m.delivered_seq
                );
            }
        }
        ("/add", [user]) => {
            client.add_members(need_open()?, vec![user.clone()]).await?;
            println!("* added {user}");
        }
        ("/edit", [seq, text @ ..]) if !text.is_empty() => {
            let ok = client.edit(need_open()?, seq.parse()?, text.join(" ")).await?;
            println!("* edited #{seq} (#{})", ok.seq);
        }
        ("/delete", [seq]) => {
            let ok = client.delete(need_open()?, seq.parse()?).await?;
            println!("* deleted #{seq} (#{})", ok.seq);
        }
        (cmd @ ("/react" | "/unreact"), [seq, emoji]) => {
            client.react(need_open()?, seq.parse()?, emoji.clone(), cmd == "/react").await?;
        }
        ("/read", _) => {
            let conv = need_open()?;
            let seq = st.last_seq.get(&conv).copied().unwrap_or(0);
            client.mark_read(conv, seq).await?;
            println!("* read up to #{seq}");
        }
        _ => println!("* unknown command or missing arguments; /help"),
    }
    Ok(true)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let trust = Trust::cert_hash_hex(&args.cert_hash).map_err(anyhow::Error::msg)?;
    let transport = if args.webtransport { Transport::WebTransport } else { Transport::Quic };
    let config = ClientConfig::new(args.addr, args.token, trust).server_name(args.server_name).transport(transport);
    let (client, mut events) = match Client::connect(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot connect: {e}");
            std::process::exit(1);
        }
    };
    if let Some(u) = client.user() {
        println!("* signed in as {} ({}); /help for commands", u.id, u.display_name);
    }
    let mut st = State::default();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(ev) => on_event(ev, &mut st),
                None => break,
            },
            line = lines.next_line() => match line? {
                None => break,
                Some(line) => match on_line(&client, &mut st, &line).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => println!("* error: {e}"),
                },
            },
        }
    }
    client.close().await;
    Ok(())
}
