//! A `redis-server` child process on a free loopback port, for the cluster
//! tests and the load generator's in-process cluster. Not used by `chatd`
//! itself: production nodes connect to the Redis in `cluster.redis_url`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Why a local `redis-server` could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    /// The binary is missing or would not start.
    #[error(
        "cannot start redis-server ({0}): it must be on PATH (Debian/Ubuntu: apt-get install -y redis-server; .ci/run installs it)"
    )]
    Spawn(std::io::Error),
    /// It started but did not answer PING.
    #[error("redis-server on port {0} did not answer PING within 5 s")]
    NoAnswer(u16),
}

/// A `redis-server` of our own, without persistence, stopped on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Result<Self, RedisServerError> {
        let port = free_port();
        Ok(Self { child: spawn(port)?, port })
    }

    /// Stops the server (an outage of `outage`) and starts a fresh, empty one on the same port.
    pub fn restart_after(&mut self, outage: Duration) -> Result<(), RedisServerError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(outage);
        self.child = spawn(self.port)?;
        Ok(())
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command over a fresh connection; the raw RESP reply.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        command(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(port: u16) -> Result<Child, RedisServerError> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(RedisServerError::Spawn)?;
    for _ in 0..100 {
        if command(port, &["PING"]).map(|s| s.contains("PONG")).unwrap_or(false) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(RedisServerError::NoAnswer(port))
}

/// A free TCP port below the usual ephemeral range (32768 and up), so that
/// while the server is down, clients reconnecting to its port can never
/// connect to themselves and take it (TCP self-connect on loopback).
fn free_port() -> u16 {
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One command to the Redis on `127.0.0.1:port` over a fresh connection; the raw RESP reply.
pub fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
