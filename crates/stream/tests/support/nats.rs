//! A `nats-server` for a test, on a loopback port: shared by the stream
//! crate's tests and the worker group's (`crates/cli/tests/group.rs`).
//! When it is not installed the test skips with a note; with
//! `FLOWHOUND_REQUIRE_TOOLS` set (CI installs it) that is a failure.

#![allow(dead_code, reason = "each test binary uses part of these")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server; killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `nats-server -js` on `port` with `args`, once it listens; `None` (and a
/// note) when it is not installed.
pub fn start(port: u16, args: &[String]) -> Option<Server> {
    let child = match Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            assert!(std::env::var_os("FLOWHOUND_REQUIRE_TOOLS").is_none(), "nats-server: {e}");
            eprintln!("note: nats-server not available ({e}): the JetStream test is skipped");
            return None;
        }
    };
    let srv = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(srv)
}
