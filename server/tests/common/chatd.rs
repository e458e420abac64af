//! Running the real `chatd` binary in tests: `serve` on free ports (reading
//! its banner), `token` on its data directory, `terminate` with SIGTERM.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Starts `chatd serve` on free ports; returns it with its address and certificate hash.
pub fn serve(data: &std::path::Path) -> (Child, String, String) {
    let (child, addr, hash, _) = serve_on(data, "127.0.0.1:0", "127.0.0.1:0");
    (child, addr, hash)
}

/// `chatd serve` on these addresses, with its address, certificate hash and web address.
pub fn serve_on(data: &std::path::Path, listen: &str, web_listen: &str) -> (Child, String, String, String) {
    serve_with(data, listen, web_listen, &[])
}

/// [`serve_on`] with more environment (configuration).
pub fn serve_with(
    data: &std::path::Path,
    listen: &str,
    web_listen: &str,
    env: &[(String, String)],
) -> (Child, String, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["serve", "--listen", listen, "--web-listen", web_listen, "--shards", "2", "--data-dir"])
        .arg(data)
        .envs(env.iter().map(|(k, v)| (k, v)))
        // The suites' own variable, not a configuration key.
        .env_remove("CHAT_SCYLLA_NODES")
        .env("CHAT_LIMITS__CONNECTIONS_PER_MINUTE_PER_IP", "1000")
        .env("CHAT_LIMITS__CONNECTIONS_PER_MINUTE_PER_USER", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chatd");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut addr, mut hash, mut web) = (None, None, None);
    while addr.is_none() || hash.is_none() || web.is_none() {
        let line = lines.next().expect("chatd printed its address and hash").expect("read stdout");
        if let Some(rest) = line.strip_prefix("chatd listening on ") {
            addr = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = line.strip_prefix("certificate sha256: ") {
            hash = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = line.strip_prefix("web app: ") {
            assert!(rest.starts_with("http://127.0.0.1:") && rest.ends_with('/'), "web app URL: {rest}");
            web = rest.strip_prefix("http://").and_then(|r| r.strip_suffix('/')).map(str::to_string);
        }
    }
    // Keep reading: a server whose stdout is closed must not be what a test measures.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr.expect("addr"), hash.expect("hash"), web.expect("web"))
}

/// A token from `chatd token` on the same data directory as the server:
/// the directory's own development secret, which `chatd serve` made.
pub fn token(data: &std::path::Path, user: &str) -> String {
    token_as(data, user, "advocate")
}

/// [`token`] for a user of another system role ("admin", "client", "staff").
pub fn token_as(data: &std::path::Path, user: &str, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["token", "--user", user, "--role", role])
        .env("CHAT_DATA_DIR", data)
        .env_remove("CHAT_SCYLLA_NODES")
        .stderr(Stdio::null())
        .output()
        .expect("chatd token");
    assert!(out.status.success(), "chatd token failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs `chatd ARGS` with the data directory `data` (a CLI command, not `serve`).
pub fn run(args: &[&str], data: &std::path::Path) -> Output {
    run_with(args, data, &[])
}

/// [`run`] with more environment (configuration).
pub fn run_with(args: &[&str], data: &std::path::Path, env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CHAT_DATA_DIR", data)
        .env_remove("CHAT_SCYLLA_NODES")
        .stdin(Stdio::null())
        .output()
        .expect("run chatd")
}

/// What a command printed, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Sends SIGTERM and waits for a clean exit.
pub fn terminate(mut child: Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "chatd exited with {status} after SIGTERM");
            return;
        }
        assert!(Instant::now() < deadline, "chatd did not stop within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
