//! The web UI's server as the tests start it, and a plain HTTP client for loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts `reasonkit-audit --db DB ARGS… EXTRA…` and reads the first line it prints,
/// which says where it serves.
fn started(db: &Path, args: &[&str], extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(super::BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// The server, killed when dropped.
pub struct Ui {
    child: Child,
    pub url: String,
}

impl Ui {
    /// Starts `reasonkit-audit --db DB ui --listen 127.0.0.1:0 EXTRA…` and reads the
    /// address it prints.
    pub fn start(db: &Path, extra: &[&str]) -> Ui {
        let (child, line) = started(db, &["ui", "--listen", "127.0.0.1:0"], extra);
        let url = line
            .split(" at ")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim()
            .to_owned();
        Ui { child, url }
    }

    /// The server's root, without a token.
    pub fn base(&self) -> String {
        let end = self.url.find("/?").unwrap_or(self.url.len() - 1);
        self.url[..end].to_owned()
    }

    pub fn addr(&self) -> String {
        self.base().trim_start_matches("http://").to_owned()
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET on loopback: the status line's code, the headers, the body.
pub fn get(addr: &str, target: &str, headers: &[&str]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_ascii_lowercase(), body.to_owned())
}

/// `reasonkit-audit collect`, killed when dropped.
pub struct Collector {
    pub child: Child,
    /// OTLP/HTTP's address, `127.0.0.1:PORT`.
    pub http: String,
    /// OTLP/gRPC's address, if served.
    pub grpc: Option<String>,
}

impl Collector {
    /// Starts `reasonkit-audit --db DB collect --listen HTTP --grpc GRPC EXTRA…` and reads
    /// the addresses it prints.
    pub fn start(db: &Path, http: &str, grpc: &str, extra: &[&str]) -> Collector {
        let (child, line) = started(db, &["collect", "--listen", http, "--grpc", grpc], extra);
        let address = |after: &str| {
            line.split(after).nth(1).map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches("/v1/traces")
                    .to_owned()
            })
        };
        let http = address("OTLP/HTTP at ").unwrap_or_else(|| panic!("no address in {line:?}"));
        Collector {
            child,
            http,
            grpc: address("OTLP/gRPC at "),
        }
    }

    /// Asks it to stop (SIGTERM) and waits: what it holds is committed.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on loopback, for a server that must come back on the same one.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP/1.1 request on loopback: the status code, the headers (lowercase), the body.
pub fn request(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading the whole body and close: that is fine.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let body = answer.get(split + 4..).unwrap_or_default().to_vec();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head, body)
}

/// rotel's `rotel-agent`, as the `rotel` wheel installed for `python` carries it, if it
/// does.
pub fn rotel_agent_of(python: &Path) -> Option<std::path::PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import pathlib, rotel; print(pathlib.Path(rotel.__file__).with_name('rotel-agent'))",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    let agent = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    agent.is_file().then_some(agent)
}

/// An OpenTelemetry collector in front of `collect`, as deployments run one: rotel, a
/// collector written in Rust (PyPI's `rotel` wheel carries its `rotel-agent` binary),
/// receiving OTLP on two loopback ports of its own and exporting what it batched to
/// `collect` with its own OTLP exporter and retries. Killed when dropped.
pub struct Relay {
    child: Child,
    log: std::path::PathBuf,
    /// Where it takes OTLP/gRPC, `127.0.0.1:PORT`.
    pub grpc: String,
    /// Where it takes OTLP/HTTP, `127.0.0.1:PORT`.
    pub http: String,
}

impl Relay {
    /// Starts `rotel-agent start` with its receivers on free loopback ports, its pid and
    /// log files in `dir`, and `exporter` (the `--otlp-exporter-*` options saying where
    /// and how it forwards); returns once both receivers take connections.
    pub fn start(agent: &Path, dir: &Path, exporter: &[&str]) -> Relay {
        let (grpc, http) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let log = dir.join("rotel.out");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(agent)
            .args(["start", "--otlp-grpc-endpoint", &grpc])
            .args(["--otlp-http-endpoint", &http, "--exporter", "otlp"])
            .arg("--pid-file")
            .arg(dir.join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.join("rotel.log"))
            .args(exporter)
            .env("NO_COLOR", "1")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let relay = Relay {
            child,
            log,
            grpc,
            http,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while [&relay.grpc, &relay.http]
            .iter()
            .any(|addr| TcpStream::connect(addr.as_str()).is_err())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "rotel did not listen within 30 s: {}",
                relay.printed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        relay
    }

    /// What it printed so far (its log lines), for a failure's message.
    pub fn printed(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
