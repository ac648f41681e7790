//! moto_server as a child process, and an S3 client for it. The only file of this crate
//! that speaks the AWS SDK.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

const STARTUP_LIMIT: Duration = Duration::from_secs(60);

/// A running moto_server, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

/// Where moto_server is: `$MOTO_SERVER`, else on `PATH` (`.ci/run` installs it into `.venv`).
fn moto_server_program() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|folder| folder.join("moto_server"))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "moto_server not found: these tests need a real S3-compatible server. Run the \
             README's test command (bash .ci/run), which installs it, or `pip install \
             'moto[server]'` and set MOTO_SERVER to its path"
        )
    })
}

impl MotoServer {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(moto_server_program())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto_server exited at start-up with {status}");
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "moto_server did not start within {STARTUP_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// A client for this server with the dummy credentials moto accepts.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A path-style S3 client for `endpoint`, independent of the machine's AWS settings.
pub fn client_for(endpoint: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

pub async fn create_bucket(client: &Client, bucket: &str) {
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket is created");
}

pub async fn put(client: &Client, bucket: &str, key: &str, bytes: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .expect("object is stored");
}

pub async fn get(client: &Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let output = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    let bytes = output
        .body
        .collect()
        .await
        .expect("object body is readable");
    Some(bytes.into_bytes().to_vec())
}

/// Every key in `bucket`, sorted.
pub async fn keys(client: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("listing works");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|object| object.key().map(str::to_owned)),
        );
    }
    keys.sort();
    keys
}
