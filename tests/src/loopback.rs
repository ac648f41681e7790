//! A test server as a child process on a free loopback port, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STARTUP_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct LoopbackServer {
    child: Child,
    pub port: u16,
}

impl LoopbackServer {
    /// Starts `program` with the arguments `args` gives for a free port, and waits until
    /// the port accepts connections.
    pub fn start(program: &Path, args: impl FnOnce(u16) -> Vec<String>) -> Self {
        let name = program.display();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(program)
            .args(args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{name} does not start: {error}"));
        let mut server = Self { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{name} exited at start-up with {status}");
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "{name} did not start within {STARTUP_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` from `variable`, else from `PATH`; `None` when neither has it.
pub fn program(variable: &str, name: &str) -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(path.into());
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|folder| folder.join(name))
        .find(|candidate| candidate.is_file())
}
