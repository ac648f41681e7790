//! The ingest function end to end: documented S3 notification JSON through the real
//! handler and the real S3 adapter, against moto_server on 127.0.0.1.

use std::io::Write;
use std::path::PathBuf;

use flate2::Compression;
use flate2::write::GzEncoder;
use ingest::{Handler, Status};
use integration_tests::moto::{self, MotoServer};
use integration_tests::{repo_root, s3_put_event};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use pipeline::s3::S3Buckets;
use pipeline::{IngestConfig, IngestManifest};
use serde_json::{Value, json};

const BUCKET: &str = "tweets-it";

struct Stack {
    _server: MotoServer,
    client: aws_sdk_s3::Client,
    handler: Handler<S3Buckets>,
}

async fn stack() -> Stack {
    let server = MotoServer::start();
    let client = server.client();
    moto::create_bucket(&client, BUCKET).await;
    let handler = Handler::new(S3Buckets::new(client.clone()), IngestConfig::default());
    Stack {
        _server: server,
        client,
        handler,
    }
}

fn invoke(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect()
}

fn raw_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in [
        "examples/raw",
        "tests/fixtures/cases",
        "tests/fixtures/egg-mode",
        "tests/fixtures/twitter-v2",
    ] {
        for entry in std::fs::read_dir(repo_root().join(folder)).expect("folder exists") {
            let path = entry.expect("listing").path();
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            if !name.starts_with("LICENSE") && !name.ends_with(".md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Stores `bytes` under `key` and delivers the S3 notification for it.
async fn drop_and_notify(stack: &Stack, key: &str, bytes: Vec<u8>) -> Status {
    moto::put(&stack.client, BUCKET, key, bytes).await;
    let response = stack
        .handler
        .handle(invoke(s3_put_event(BUCKET, key)))
        .await
        .expect("ingest succeeds");
    assert_eq!(response.objects.len(), 1);
    assert_eq!(response.objects[0].key, key, "the event key is decoded");
    response.objects[0].status.clone()
}

async fn manifest(stack: &Stack, key: &str) -> IngestManifest {
    let bytes = moto::get(&stack.client, BUCKET, key)
        .await
        .expect("manifest exists");
    serde_json::from_slice(&bytes).expect("manifest parses")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_supported_shape_is_ingested_from_real_s3_events() {
    let stack = stack().await;
    let files = raw_files();
    let mut raw_keys = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .expect("UTF-8 name");
        // Spaces and `+` in keys arrive form-encoded in the event.
        let key = format!("raw/batch 1+2/{name}");
        raw_keys.push(key.clone());
        let status = drop_and_notify(&stack, &key, std::fs::read(path).expect("readable")).await;
        let Status::Ingested {
            manifest: manifest_key,
            ..
        } = status
        else {
            panic!("{key} was not ingested: {status:?}");
        };
        let manifest = manifest(&stack, &manifest_key).await;
        let report = &manifest.report;
        assert!(report.is_conserved(), "{key}: {report:?}");
        assert_eq!(manifest.input, key);

        let [part] = manifest.outputs.clean_parts.as_slice() else {
            panic!("{key}: a small file is one part: {manifest:?}");
        };
        let clean = moto::get(&stack.client, BUCKET, part)
            .await
            .expect("clean written");
        let tweets = lines(&clean);
        assert_eq!(tweets.len() as u64, report.kept, "{key}");
        for tweet in &tweets {
            let tweet: tweets::Tweet = serde_json::from_value(tweet.clone()).expect("schema");
            // A tar archive's records are sourced to the file inside it.
            assert!(
                tweet.source.key == key || tweet.source.key.starts_with(&format!("{key}!")),
                "{}",
                tweet.source.key
            );
        }
        let rejected_key = format!("rejected/batch 1+2/{name}.jsonl");
        let rejected = moto::get(&stack.client, BUCKET, &rejected_key).await;
        assert_eq!(rejected.is_some(), report.rejected > 0, "{key}");
        assert_eq!(
            manifest.outputs.rejected.is_some(),
            report.rejected > 0,
            "{key}"
        );
        if let Some(rejected) = rejected {
            assert_eq!(lines(&rejected).len() as u64, report.rejected, "{key}");
        }
        // The audit trail: one line per filtered record, as many as the manifest counts.
        let filtered_key = format!("filtered/batch 1+2/{name}.jsonl");
        let filtered = moto::get(&stack.client, BUCKET, &filtered_key).await;
        assert_eq!(filtered.is_some(), report.filtered_total() > 0, "{key}");
        assert_eq!(
            manifest.outputs.filtered.is_some(),
            filtered.is_some(),
            "{key}"
        );
        if let Some(filtered) = filtered {
            assert_eq!(
                lines(&filtered).len() as u64,
                report.filtered_total(),
                "{key}"
            );
        }
    }

    let keys = moto::keys(&stack.client, BUCKET).await;
    let under_raw: Vec<&String> = keys.iter().filter(|key| key.starts_with("raw/")).collect();
    let mut expected: Vec<&String> = raw_keys.iter().collect();
    expected.sort();
    assert_eq!(
        under_raw, expected,
        "ingest never writes under its trigger prefix"
    );
    assert!(keys.iter().all(|key| {
        [
            "raw/",
            "clean/",
            "rejected/",
            "filtered/",
            "manifests/ingest/",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
    }));
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_event_rewrites_identical_objects() {
    let stack = stack().await;
    let key = "raw/redelivery/mixed errors.jsonl";
    let bytes = std::fs::read(repo_root().join("tests/fixtures/cases/mixed-errors.jsonl"))
        .expect("fixture");
    drop_and_notify(&stack, key, bytes).await;
    let outputs = [
        "clean/redelivery/mixed errors.jsonl/part-00000-of-00001.jsonl",
        "rejected/redelivery/mixed errors.jsonl.jsonl",
    ];
    let mut first = Vec::new();
    for output in outputs {
        first.push(
            moto::get(&stack.client, BUCKET, output)
                .await
                .expect("written"),
        );
    }
    let first_manifest = manifest(
        &stack,
        "manifests/ingest/redelivery/mixed errors.jsonl.manifest.json",
    )
    .await;
    let keys_after_first = moto::keys(&stack.client, BUCKET).await;

    let response = stack
        .handler
        .handle(invoke(s3_put_event(BUCKET, key)))
        .await
        .expect("second delivery succeeds");
    assert!(matches!(
        response.objects[0].status,
        Status::Ingested { .. }
    ));
    for (output, before) in outputs.iter().zip(first) {
        assert_eq!(
            moto::get(&stack.client, BUCKET, output)
                .await
                .expect("written"),
            before,
            "{output}"
        );
    }
    let second_manifest = manifest(
        &stack,
        "manifests/ingest/redelivery/mixed errors.jsonl.manifest.json",
    )
    .await;
    assert_eq!(
        IngestManifest {
            timing_ms: first_manifest.timing_ms,
            ..second_manifest
        },
        first_manifest,
        "manifests differ only in timing"
    );
    assert_eq!(moto::keys(&stack.client, BUCKET).await, keys_after_first);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_outside_the_raw_prefix_write_nothing() {
    let stack = stack().await;
    moto::put(&stack.client, BUCKET, "clean/x.jsonl", b"{}".to_vec()).await;
    let before = moto::keys(&stack.client, BUCKET).await;
    let response = stack
        .handler
        .handle(invoke(s3_put_event(BUCKET, "clean/x.jsonl")))
        .await
        .expect("skipped, not failed");
    assert!(
        matches!(&response.objects[0].status, Status::Skipped { reason } if reason.contains("not under the trigger prefix"))
    );
    assert_eq!(moto::keys(&stack.client, BUCKET).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn console_test_event_is_accepted() {
    let stack = stack().await;
    let text = std::fs::read_to_string(repo_root().join("infra/events/ingest-direct.json"))
        .expect("event");
    let mut event: Value = serde_json::from_str(&text).expect("JSON");
    event["bucket"] = json!(BUCKET);
    let key = event["key"].as_str().expect("key").to_owned();
    moto::put(
        &stack.client,
        BUCKET,
        &key,
        br#"{"id_str": "1", "text": "Tested from the console, works fine"}"#.to_vec(),
    )
    .await;
    let response = stack.handler.handle(invoke(event)).await.expect("ingested");
    assert!(matches!(
        response.objects[0].status,
        Status::Ingested { kept: 1, .. }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_bomb_and_huge_line_are_rejected_without_failing_the_function() {
    let stack = stack().await;
    let good = r#"{"id_str": "1", "text": "A good tweet before the trouble starts"}"#;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    writeln!(encoder, "{good}").expect("gzip");
    let padding = vec![b' '; 1 << 20];
    for _ in 0..100 {
        encoder.write_all(&padding).expect("gzip");
    }
    let bomb = encoder.finish().expect("gzip");
    let status = drop_and_notify(&stack, "raw/bomb.json.gz", bomb).await;
    assert!(
        matches!(
            status,
            Status::Ingested {
                kept: 1,
                rejected: 1,
                ..
            }
        ),
        "{status:?}"
    );
    let rejected = lines(
        &moto::get(&stack.client, BUCKET, "rejected/bomb.json.gz.jsonl")
            .await
            .expect("rejected"),
    );
    assert!(
        rejected[0]["error"]
            .as_str()
            .is_some_and(|error| error.contains("gzip bomb"))
    );

    let huge = format!(r#"{{"id_str": "2", "text": "{}"}}"#, "y".repeat(10_000_000));
    let status = drop_and_notify(
        &stack,
        "raw/huge.jsonl",
        format!("{good}\n{huge}\n").into_bytes(),
    )
    .await;
    assert!(
        matches!(
            status,
            Status::Ingested {
                kept: 1,
                rejected: 1,
                ..
            }
        ),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_store_is_a_retryable_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let handler = Handler::new(
        S3Buckets::new(moto::client_for(&format!("http://127.0.0.1:{port}"))),
        IngestConfig::default(),
    );
    let error = handler
        .handle(invoke(s3_put_event(BUCKET, "raw/x.json")))
        .await
        .expect_err("nothing listens there");
    let diagnostic = Diagnostic::from(error);
    assert_eq!(
        diagnostic.error_type, "Retryable.IngestFailed",
        "{}",
        diagnostic.error_message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_bucket_is_a_permanent_failure() {
    let stack = stack().await;
    let error = stack
        .handler
        .handle(invoke(s3_put_event("no-such-bucket", "raw/x.json")))
        .await
        .expect_err("bucket is missing");
    let diagnostic = Diagnostic::from(error);
    assert_eq!(
        diagnostic.error_type, "IngestFailed",
        "{}",
        diagnostic.error_message
    );
    assert!(
        diagnostic.error_message.contains("NoSuchBucket"),
        "{}",
        diagnostic.error_message
    );
}
