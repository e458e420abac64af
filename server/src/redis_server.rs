//! A `redis-server` child process on a free loopback port, for the cluster
//! tests and the load generator's in-process cluster: plain, or TLS-only with
//! ACL users and certificates made here ([`TestPki`], with rcgen). Not used by
//! `chatd` itself: production nodes connect to the Redis in `cluster.redis_url`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
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
    /// Another process's redis-server answers on the port (ours could not bind it).
    #[error("port {0} is answered by another redis-server than the one started")]
    NotOurs(u16),
    /// The test certificates could not be made or written.
    #[error("cannot make the test certificates: {0}")]
    Pki(String),
}

/// A `redis-server` of our own, without persistence, stopped on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// What it was started with after `--port`/`--tls-port` (kept for a restart).
    args: Vec<String>,
    tls: bool,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Result<Self, RedisServerError> {
        // A port found free can be taken before redis-server binds it (by
        // another test's server): then ours exits and the other answers, so
        // try another port.
        let mut tries = 0;
        loop {
            let port = free_port();
            match spawn(port, false, &[]) {
                Ok(child) => return Ok(Self { child, port, args: Vec::new(), tls: false }),
                Err(RedisServerError::NotOurs(_)) if tries < 5 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts one that speaks only TLS (`--port 0 --tls-port N`, on 127.0.0.1
    /// and on 127.0.0.2, which its certificate does not name), with `pki`'s
    /// server certificate, asking clients for a certificate signed by its CA,
    /// and with the ACL `users` (lines as in `ACL SETUSER`, e.g. `"default
    /// off"`, `"chatd on >secret ~chat:* +get"`).
    pub fn start_tls(pki: &TestPki, users: &[&str]) -> Result<Self, RedisServerError> {
        let port = free_port();
        let path = |p: &Path| p.display().to_string();
        let mut args = vec![
            "--tls-cert-file".into(),
            path(&pki.server_cert),
            "--tls-key-file".into(),
            path(&pki.server_key),
            "--tls-ca-cert-file".into(),
            path(&pki.ca),
            "--tls-auth-clients".into(),
            "yes".into(),
        ];
        for u in users {
            // One argument per word: redis-server quotes an argument with spaces as one.
            args.push("--user".into());
            args.extend(u.split_whitespace().map(String::from));
        }
        Ok(Self { child: spawn(port, true, &args)?, port, args, tls: true })
    }

    /// Stops the server (an outage of `outage`) and starts a fresh, empty one on the same port.
    pub fn restart_after(&mut self, outage: Duration) -> Result<(), RedisServerError> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(outage);
        self.child = spawn(self.port, self.tls, &self.args)?;
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

    /// `rediss://user:password@127.0.0.1:<port>`.
    pub fn tls_url(&self, user: &str, password: &str) -> String {
        format!("rediss://{user}:{password}@127.0.0.1:{}", self.port)
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

fn spawn(port: u16, tls: bool, extra: &[String]) -> Result<Child, RedisServerError> {
    let port_s = port.to_string();
    // TLS: also on 127.0.0.2, an address its certificate does not name.
    let listen: &[&str] = if tls {
        &["--port", "0", "--tls-port", &port_s, "--bind", "127.0.0.1", "127.0.0.2"]
    } else {
        &["--port", &port_s, "--bind", "127.0.0.1"]
    };
    // A name only this server has (it never saves: `--save ""`), to know it answers.
    let tag = format!("chatd-test-{:016x}.rdb", rand::random::<u64>());
    let mut child = Command::new("redis-server")
        .args(listen)
        .args(["--save", "", "--appendonly", "no", "--dbfilename", &tag])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .map_err(RedisServerError::Spawn)?;
    for _ in 0..100 {
        // A TLS-only server is up once it accepts connections (PING would need TLS and a user).
        // One that could not bind the port exits ("Address already in use").
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Err(RedisServerError::NotOurs(port));
        }
        if tls {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(child);
            }
        } else if let Ok(got) = command(port, &["CONFIG", "GET", "dbfilename"]) {
            // The server that answers must be ours: its tag says so.
            if got.contains(&tag) {
                return Ok(child);
            }
            if got.contains("dbfilename") {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RedisServerError::NotOurs(port));
            }
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

/// Certificates for a TLS-only test Redis, as PEM files in one directory: a
/// CA, the server's (for `127.0.0.1` and `localhost`) and a client's, both
/// signed by the CA.
pub struct TestPki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate (for `tls-auth-clients`) and its key.
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
}

impl TestPki {
    /// A fresh CA and its two certificates, written under `dir` (names prefixed by `name`).
    pub fn generate(dir: &Path, name: &str) -> Result<Self, RedisServerError> {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
        let pki = |e: rcgen::Error| RedisServerError::Pki(e.to_string());
        let file = |suffix: &str, pem: String| -> Result<PathBuf, RedisServerError> {
            let path = dir.join(format!("{name}-{suffix}.pem"));
            std::fs::write(&path, pem).map_err(|e| RedisServerError::Pki(format!("{}: {e}", path.display())))?;
            Ok(path)
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let ca_key = KeyPair::generate().map_err(pki)?;
        let ca = file("ca", ca_params.self_signed(&ca_key).map_err(pki)?.pem())?;
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, who: &str| {
            let mut params = CertificateParams::new(names).map_err(pki)?;
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().map_err(pki)?;
            let cert = params.signed_by(&key, &issuer).map_err(pki)?;
            Ok::<_, RedisServerError>((
                file(&format!("{who}-cert"), cert.pem())?,
                file(&format!("{who}-key"), key.serialize_pem())?,
            ))
        };
        let (server_cert, server_key) =
            leaf(vec!["127.0.0.1".into(), "localhost".into()], ExtendedKeyUsagePurpose::ServerAuth, "server")?;
        let (client_cert, client_key) = leaf(vec!["chatd".into()], ExtendedKeyUsagePurpose::ClientAuth, "client")?;
        Ok(Self { ca, server_cert, server_key, client_cert, client_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_cannot_bind_a_taken_port_is_not_taken_for_the_one_that_answers() {
        let first = RedisServer::start().expect("redis-server");
        let e = spawn(first.port(), false, &[]).expect_err("the port is taken");
        assert!(matches!(e, RedisServerError::NotOurs(p) if p == first.port()), "{e}");
        assert!(first.command(&["PING"]).unwrap().contains("PONG"), "the first one is untouched");
    }
}
