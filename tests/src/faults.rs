//! A fault-injecting HTTP proxy to put between the S3 adapter and moto_server: for a seeded
//! share of requests it answers 500 or 503 SlowDown without forwarding, drops the
//! connection, delays, or forwards and then cuts the response body short. One request per
//! connection (`Connection: close`), blocking I/O on a thread per connection: enough for
//! the pipeline's sequential calls, and simple enough to trust.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What the proxy did to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    None,
    InternalError,
    SlowDown,
    DropConnection,
    Delay,
    CutShort,
}

const FAULTS: [Fault; 5] = [
    Fault::InternalError,
    Fault::SlowDown,
    Fault::DropConnection,
    Fault::Delay,
    Fault::CutShort,
];

/// The proxy; stops accepting when dropped (connections in flight finish).
#[derive(Debug)]
pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    upstream: String,
    /// splitmix64 state: the same seed gives the same faults to the same request sequence.
    rng: u64,
    /// Requests to fault, per 1,000.
    per_mille: u64,
    counts: BTreeMap<Fault, u64>,
    stopped: bool,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:PORT`), faulting `per_mille` requests in
    /// 1,000, chosen and typed by `seed`.
    pub fn start(upstream: &str, seed: u64, per_mille: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound address"));
        let state = Arc::new(Mutex::new(State {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            rng: seed,
            per_mille,
            counts: BTreeMap::new(),
            stopped: false,
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if lock(&shared).stopped {
                    break;
                }
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    // A client that goes away mid-request is not the proxy's failure.
                    let _ = serve(client, &shared);
                });
            }
        });
        Self { endpoint, state }
    }

    /// How many requests met each fault so far.
    pub fn counts(&self) -> BTreeMap<Fault, u64> {
        lock(&self.state).counts.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        lock(&self.state).stopped = true;
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn draw(&mut self) -> Fault {
        let fault = if self.next() % 1000 < self.per_mille {
            FAULTS[(self.next() % FAULTS.len() as u64) as usize]
        } else {
            Fault::None
        };
        *self.counts.entry(fault).or_default() += 1;
        fault
    }
}

fn serve(mut client: TcpStream, state: &Mutex<State>) -> io::Result<()> {
    let request = read_message(&mut BufReader::new(client.try_clone()?), true)?;
    let (fault, upstream) = {
        let mut state = lock(state);
        (state.draw(), state.upstream.clone())
    };
    match fault {
        Fault::InternalError => {
            return error(&mut client, "500 Internal Server Error", "InternalError");
        }
        Fault::SlowDown => return error(&mut client, "503 Slow Down", "SlowDown"),
        Fault::DropConnection => return client.shutdown(Shutdown::Both),
        Fault::Delay => std::thread::sleep(Duration::from_millis(300)),
        Fault::None | Fault::CutShort => {}
    }
    let mut server = TcpStream::connect(&upstream)?;
    server.write_all(&request.with_connection_close())?;
    let response = read_message(&mut BufReader::new(server), false)?;
    let mut bytes = response.with_connection_close();
    if fault == Fault::CutShort {
        // Keep the head and half the body; the declared length stays, so the client sees an
        // early end (or, if there was no body, a complete empty answer).
        let head_len = bytes.len() - response.body.len();
        bytes.truncate(head_len + response.body.len() / 2);
    }
    client.write_all(&bytes)?;
    client.shutdown(Shutdown::Both)
}

/// One HTTP/1.1 message: its head (request or status line and headers, up to the blank
/// line) and its body (by `Content-Length`, or to the end of a response without one).
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Message {
    /// The message with `Connection: close` in place of any `Connection` header.
    fn with_connection_close(&self) -> Vec<u8> {
        let head = String::from_utf8_lossy(&self.head);
        let mut out = String::new();
        for line in head.split("\r\n").filter(|line| !line.is_empty()) {
            if !line.to_ascii_lowercase().starts_with("connection:") {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn read_message(reader: &mut impl BufRead, is_request: bool) -> io::Result<Message> {
    let mut head = Vec::new();
    let mut length = None;
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no HTTP head"));
        }
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if let Some(value) = text.strip_prefix("content-length:") {
            length = value.trim().parse::<usize>().ok();
        }
        assert!(
            !text.starts_with("transfer-encoding:"),
            "the fault proxy handles Content-Length bodies only: {text}"
        );
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut body = Vec::new();
    match length {
        Some(length) => {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        None if !is_request => {
            reader.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok(Message { head, body })
}

fn error(client: &mut TcpStream, status: &str, code: &str) -> io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message><RequestId>FAULT</RequestId></Error>"
    );
    write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    client.shutdown(Shutdown::Both)
}
