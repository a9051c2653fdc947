//! A real AWS-compatible endpoint for tests: `moto_server` (PyPI
//! `moto[server]`) on a loopback port, a boto3 helper to set it up and read
//! what arrived, and a TCP proxy in front of it that can "kill" the endpoint
//! (refuse and cut connections) and bring it back with its state intact.
//! Shared by the CLI's and the Lambda handler's tests.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A running moto_server, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto_server, or returns `None` with a note when it is not
    /// installed — unless `FLOWHOUND_REQUIRE_MOTO` is set (CI sets it), where
    /// a missing endpoint fails the test instead of skipping it.
    pub fn start() -> Option<Moto> {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if std::env::var_os("FLOWHOUND_REQUIRE_MOTO").is_none() => {
                eprintln!("note: moto_server not available ({e}); skipping (pip install 'moto[server]')");
                return None;
            }
            Err(e) => panic!("moto_server is required (FLOWHOUND_REQUIRE_MOTO) but cannot start: {e}"),
        };
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(60), "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// Runs the boto3 helper (tests/aws/moto.py) and parses its JSON answer.
    pub fn helper(&self, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/aws/moto.py");
        let o = Command::new("python3").arg(script).arg(&self.endpoint).args(args).output().expect("python3 runs");
        assert!(o.status.success(), "moto.py {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        if o.stdout.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&o.stdout).expect("moto.py prints JSON")
    }
}

/// Environment for a flowhound process talking to `endpoint` with test
/// credentials, cut off from the host's own AWS configuration.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_CONFIG_FILE", "/nonexistent/flowhound-test".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/flowhound-test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// A TCP proxy to `upstream`. While down it refuses (accepts and closes)
/// new connections and has cut the open ones: to a client the endpoint is gone.
pub struct Proxy {
    pub endpoint: String,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let target = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    if let Ok(mut o) = open2.lock() {
                        o.push(c2);
                        o.push(s2);
                    }
                }
                pipe(client, server);
            }
        });
        Proxy { endpoint, up, open }
    }

    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut o) = self.open.lock() {
            for s in o.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pipe(a: TcpStream, b: TcpStream) {
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Both);
        });
    };
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        copy(a, b2);
        copy(b, a2);
    }
}

/// Gzips `src` into `dst` (S3 delivers VPC Flow Logs gzipped).
pub fn gzip(src: &Path, dst: &Path) -> PathBuf {
    let data = std::fs::read(src).expect("read");
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(dst).expect("create"), flate2::Compression::fast());
    enc.write_all(&data).expect("gzip");
    enc.finish().expect("gzip");
    dst.to_path_buf()
}
