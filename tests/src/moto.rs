//! moto_server as a child process, and an S3 client for it. The only file of this crate
//! that speaks the AWS SDK.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

use crate::loopback::{self, LoopbackServer};

/// A running moto_server, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    _server: LoopbackServer,
    pub endpoint: String,
}

impl MotoServer {
    /// Starts a server on a free loopback port and waits until it answers: `$MOTO_SERVER`,
    /// else moto_server on `PATH` (`.ci/run` installs it into `.venv`).
    pub fn start() -> Self {
        let program = loopback::program("MOTO_SERVER", "moto_server").unwrap_or_else(|| {
            panic!(
                "moto_server not found: these tests need a real S3-compatible server. Run the \
                 README's test command (bash .ci/run), which installs it, or `pip install \
                 'moto[server]'` and set MOTO_SERVER to its path"
            )
        });
        let server = LoopbackServer::start(&program, |port| {
            ["-H", "127.0.0.1", "-p", &port.to_string()]
                .map(str::to_owned)
                .to_vec()
        });
        Self {
            endpoint: format!("http://127.0.0.1:{}", server.port),
            _server: server,
        }
    }

    /// A client for this server with the dummy credentials moto accepts.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint)
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
