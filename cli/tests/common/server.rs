//! The web UI's server as the tests start it, and a plain HTTP client for loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The server, killed when dropped.
pub struct Ui {
    child: Child,
    pub url: String,
}

impl Ui {
    /// Starts `reasonkit-audit --db DB ui --listen 127.0.0.1:0 EXTRA…` and reads the
    /// address it prints.
    pub fn start(db: &Path, extra: &[&str]) -> Ui {
        let mut child = Command::new(super::BIN)
            .arg("--db")
            .arg(db)
            .args(["ui", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
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
