//! Ingest and classify end to end: raw files dropped in a real S3-compatible server
//! (moto_server on 127.0.0.1), the documented S3 notification JSON delivered to the real
//! ingest handler, then — as S3 would, for the object ingest wrote under `clean/` — to the
//! real classify handler with the bundled Candle model.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;

use arrow_array::{Array, StringArray};
use bytes::Bytes;
use integration_tests::moto::{self, MotoServer};
use integration_tests::{
    eventbridge_created_event, repo_root, s3_delete_event, s3_put_event, sqs_batch,
};
use lambda_runtime::{Context, LambdaEvent};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pipeline::backend::Backend;
use pipeline::s3::S3Buckets;
use pipeline::{ClassifyConfig, ClassifyManifest, IngestConfig, IngestManifest};
use serde_json::{Value, json};

const BUCKET: &str = "pipeline-it";

struct Stack {
    _server: MotoServer,
    client: aws_sdk_s3::Client,
    ingest: ingest::Handler<S3Buckets>,
    classify: classify::Handler<S3Buckets, Backend>,
}

async fn stack() -> Stack {
    let server = MotoServer::start();
    let client = server.client();
    moto::create_bucket(&client, BUCKET).await;
    let buckets = S3Buckets::new(client.clone());
    let config = ClassifyConfig {
        batch_size: 8,
        ..ClassifyConfig::default()
    };
    let backend = Backend::load(&config.backend)
        .await
        .expect("the bundled model loads");
    Stack {
        _server: server,
        ingest: ingest::Handler::new(buckets.clone(), IngestConfig::default()),
        classify: classify::Handler::new(buckets, backend, config),
        client,
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

async fn object(stack: &Stack, key: &str) -> Vec<u8> {
    moto::get(&stack.client, BUCKET, key)
        .await
        .unwrap_or_else(|| panic!("{key} exists"))
}

/// Drops a raw file, runs ingest on its notification, then classify on the notification
/// for the clean object; returns both manifests.
async fn drop_and_process(
    stack: &Stack,
    raw_key: &str,
    bytes: Vec<u8>,
) -> (IngestManifest, ClassifyManifest) {
    moto::put(&stack.client, BUCKET, raw_key, bytes).await;
    let ingested = stack
        .ingest
        .handle(invoke(s3_put_event(BUCKET, raw_key)))
        .await
        .expect("ingest succeeds");
    let ingest::Status::Ingested { manifest, .. } = &ingested.objects[0].status else {
        panic!("{raw_key} was not ingested: {ingested:?}");
    };
    let ingest_manifest: IngestManifest =
        serde_json::from_slice(&object(stack, manifest).await).expect("ingest manifest");

    let [clean_key] = ingest_manifest.outputs.clean_parts.as_slice() else {
        panic!("{raw_key}: one part expected: {ingest_manifest:?}");
    };
    let classified = stack
        .classify
        .handle(invoke(s3_put_event(BUCKET, clean_key)))
        .await
        .expect("classify succeeds");
    assert_eq!(
        &classified.objects[0].key, clean_key,
        "the event key is decoded"
    );
    let classify::Status::Classified { manifest, .. } = &classified.objects[0].status else {
        panic!("{clean_key} was not classified: {classified:?}");
    };
    let classify_manifest: ClassifyManifest =
        serde_json::from_slice(&object(stack, manifest).await).expect("classify manifest");
    (ingest_manifest, classify_manifest)
}

fn parquet_ids(bytes: Vec<u8>) -> Vec<String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .expect("valid Parquet")
        .build()
        .expect("reader");
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.expect("readable batch");
        let column = batch.column_by_name("id").expect("id column");
        let strings = column
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("ids are strings");
        assert_eq!(strings.null_count(), 0);
        ids.extend(strings.iter().flatten().map(str::to_owned));
        let labels = batch.column_by_name("label").expect("label column");
        assert_eq!(
            labels.null_count(),
            0,
            "single-label: every tweet has a label"
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn every_shape_ends_as_exactly_one_prediction_per_kept_tweet() {
    let stack = stack().await;
    let mut total_kept = 0;
    let mut files = Vec::new();
    for folder in [
        "examples/raw",
        "tests/fixtures/cases",
        "tests/fixtures/egg-mode",
        "tests/fixtures/twitter-v2",
    ] {
        for entry in std::fs::read_dir(repo_root().join(folder)).expect("folder exists") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .expect("name");
            if !name.starts_with("LICENSE") && !name.ends_with(".md") {
                files.push((folder, path));
            }
        }
    }
    files.sort();
    for (folder, path) in &files {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .expect("name");
        // Spaces and `+` in keys arrive form-encoded in both notifications.
        let raw_key = format!("raw/team a+b/{folder}/{name}");
        let (ingested, classified) =
            drop_and_process(&stack, &raw_key, std::fs::read(path).expect("readable")).await;

        let clean_ids: Vec<String> = lines(&object(&stack, &ingested.outputs.clean_parts[0]).await)
            .iter()
            .map(|tweet| tweet["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(clean_ids.len() as u64, ingested.report.kept);
        assert_eq!(classified.tweets_in, ingested.report.kept, "{raw_key}");
        assert_eq!(classified.predicted, ingested.report.kept, "{raw_key}");
        assert_eq!(classified.rejected, 0);
        total_kept += ingested.report.kept;

        let predictions = lines(&object(&stack, &classified.outputs.predictions).await);
        let predicted_ids: Vec<String> = predictions
            .iter()
            .map(|record| record["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(
            predicted_ids, clean_ids,
            "{raw_key}: one prediction per tweet, in order"
        );
        for record in &predictions {
            let source = record["source_key"].as_str().expect("source key");
            assert!(
                source == raw_key || source.starts_with(&format!("{raw_key}!")),
                "{source}"
            );
            assert_eq!(record["model_name"], "sentiment");
            let label = record["label"].as_str().expect("label");
            let score = record["score"].as_f64().expect("score");
            assert!((score - record["scores"][label].as_f64().expect("label score")).abs() < 1e-6);
        }

        let mut parquet_ids_all = Vec::new();
        for key in &classified.outputs.parquet {
            assert!(key.starts_with("predictions-parquet/dt="), "{key}");
            parquet_ids_all.extend(parquet_ids(object(&stack, key).await));
        }
        let as_set = |ids: &[String]| ids.iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(parquet_ids_all.len(), clean_ids.len(), "{raw_key}");
        assert_eq!(as_set(&parquet_ids_all), as_set(&clean_ids), "{raw_key}");
    }
    assert!(files.len() >= 20, "{} raw files", files.len());
    // Every kept tweet of every example and fixture (their outcomes: tests/conservation.rs).
    assert_eq!(total_kept, 71);

    // Ingest and classify wrote only under their own output prefixes.
    for key in moto::keys(&stack.client, BUCKET).await {
        let allowed = [
            "raw/",
            "clean/",
            "rejected/",
            "filtered/",
            "manifests/ingest/",
            "manifests/classify/",
            "predictions/",
            "predictions-parquet/dt=",
        ];
        assert!(
            allowed.iter().any(|prefix| key.starts_with(prefix)),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_events_rewrite_identical_objects() {
    let stack = stack().await;
    let raw =
        std::fs::read(repo_root().join("examples/raw/v1.1 search airlines.json")).expect("example");
    let (_, first) = drop_and_process(&stack, "raw/again and again+.json", raw.clone()).await;
    let mut outputs = vec![first.outputs.predictions.clone()];
    outputs.extend(first.outputs.parquet.clone());
    let mut before = Vec::new();
    for key in &outputs {
        before.push(object(&stack, key).await);
    }
    let keys_before = moto::keys(&stack.client, BUCKET).await;

    let (_, second) = drop_and_process(&stack, "raw/again and again+.json", raw).await;
    assert_eq!(second.outputs, first.outputs);
    assert_eq!(second.predicted, first.predicted);
    for (key, bytes) in outputs.iter().zip(before) {
        assert_eq!(
            object(&stack, key).await,
            bytes,
            "{key} changed on redelivery"
        );
    }
    assert_eq!(moto::keys(&stack.client, BUCKET).await, keys_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn neither_function_acts_on_its_own_outputs() {
    let stack = stack().await;
    let raw =
        std::fs::read(repo_root().join("examples/raw/v2-recent-search.json")).expect("example");
    let (ingested, classified) = drop_and_process(&stack, "raw/v2.json", raw).await;
    let keys_before = moto::keys(&stack.client, BUCKET).await;

    // Notifications for every object the two functions wrote, delivered to both functions:
    // each skips what is not under its trigger prefix, except classify on ingest's clean
    // output, which is its input.
    let mut outputs = vec![
        classified.outputs.predictions.clone(),
        classified.outputs.manifest.clone(),
        ingested.outputs.manifest.clone(),
    ];
    outputs.extend(classified.outputs.parquet.clone());
    for key in &outputs {
        let response = stack
            .classify
            .handle(invoke(s3_put_event(BUCKET, key)))
            .await
            .expect("skipped, not failed");
        assert!(
            matches!(response.objects[0].status, classify::Status::Skipped { .. }),
            "classify acted on {key}"
        );
        let response = stack
            .ingest
            .handle(invoke(s3_put_event(BUCKET, key)))
            .await
            .expect("skipped, not failed");
        assert!(
            matches!(response.objects[0].status, ingest::Status::Skipped { .. }),
            "ingest acted on {key}"
        );
    }
    let response = stack
        .ingest
        .handle(invoke(s3_put_event(
            BUCKET,
            &ingested.outputs.clean_parts[0],
        )))
        .await
        .expect("skipped");
    assert!(matches!(
        response.objects[0].status,
        ingest::Status::Skipped { .. }
    ));
    assert_eq!(moto::keys(&stack.client, BUCKET).await, keys_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_form_and_a_corrupt_clean_line() {
    let stack = stack().await;
    let good = r#"{"id":"1","created_at":"2024-05-01T10:00:00Z","author_id":"7","author_handle":"ann","lang":"en","text":"@united best crew ever, thank you!","clean_text":"@user best crew ever, thank you!","is_retweet":false,"is_quote":false,"is_reply":false,"hashtags":[],"mentions":["united"],"urls":[],"source":{"key":"raw/x.json","index":0,"offset":0,"line":1}}"#;
    let body = format!("{good}\n{{\"id\": \"2\", \"text\": 5}}\n");
    moto::put(
        &stack.client,
        BUCKET,
        "clean/hand made.jsonl",
        body.into_bytes(),
    )
    .await;
    let response = stack
        .classify
        .handle(invoke(
            json!({"bucket": BUCKET, "key": "clean/hand made.jsonl"}),
        ))
        .await
        .expect("classified");
    assert!(matches!(
        response.objects[0].status,
        classify::Status::Classified {
            tweets_in: 2,
            predicted: 1,
            rejected: 1,
            ..
        }
    ));
    let predictions = lines(&object(&stack, "predictions/hand made.jsonl").await);
    assert_eq!(predictions[0]["label"], "positive");
    let rejected = lines(&object(&stack, "predictions-rejected/hand made.jsonl").await);
    assert_eq!(rejected[0]["source"]["line"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn through_a_queue_and_eventbridge_with_failed_messages_named() {
    let stack = stack().await;
    let raw_key = "raw/queued tweets+1.json";
    moto::put(
        &stack.client,
        BUCKET,
        raw_key,
        br#"{"id_str": "1", "text": "Refund came through in two days, thank you!"}"#.to_vec(),
    )
    .await;
    let test_message = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET});
    let batch = sqs_batch(&[
        ("s3-test", test_message.to_string()),
        ("ok", s3_put_event(BUCKET, raw_key).to_string()),
        (
            "no-bucket",
            s3_put_event("no-such-bucket", raw_key).to_string(),
        ),
        ("garbled", "{\"Records\": [".to_owned()),
    ]);
    let response = stack
        .ingest
        .handle(invoke(batch))
        .await
        .expect("a batch answers with its failures");
    let failed = response.failed_message_ids();
    assert_eq!(failed, ["no-bucket", "garbled"], "{response:?}");
    let [outcome] = response.objects.as_slice() else {
        panic!("one object ingested: {response:?}");
    };
    assert_eq!(outcome.key, raw_key);
    let part = "clean/queued tweets+1.json/part-00000-of-00001.jsonl";
    assert!(moto::get(&stack.client, BUCKET, part).await.is_some());

    // S3 → EventBridge → classify: the key arrives as stored.
    let response = stack
        .classify
        .handle(invoke(eventbridge_created_event(BUCKET, part)))
        .await
        .expect("classified");
    assert!(matches!(
        response.objects[0].status,
        classify::Status::Classified { predicted: 1, .. }
    ));
    let first = object(
        &stack,
        "predictions/queued tweets+1.json/part-00000-of-00001.jsonl",
    )
    .await;
    assert_eq!(lines(&first)[0]["id"], "1");

    // The same part through the queue (a redelivery): the same predictions, no failures.
    let batch = sqs_batch(&[("again", s3_put_event(BUCKET, part).to_string())]);
    let response = stack
        .classify
        .handle(invoke(batch))
        .await
        .expect("classified");
    assert_eq!(response.batch_item_failures, Some(Vec::new()));
    let again = object(
        &stack,
        "predictions/queued tweets+1.json/part-00000-of-00001.jsonl",
    )
    .await;
    assert_eq!(first, again);
}

/// Ingests `raw_key` with parts of at most `part_max_tweets`, then classifies every part
/// from its own notification; returns the ingest manifest.
async fn ingest_in_parts(stack: &Stack, raw_key: &str, part_max_tweets: usize) -> IngestManifest {
    let config = IngestConfig {
        part_max_tweets: NonZeroUsize::new(part_max_tweets).expect("positive"),
        ..IngestConfig::default()
    };
    let handler = ingest::Handler::new(S3Buckets::new(stack.client.clone()), config);
    let response = handler
        .handle(invoke(s3_put_event(BUCKET, raw_key)))
        .await
        .expect("ingested");
    let ingest::Status::Ingested { manifest, .. } = &response.objects[0].status else {
        panic!("{raw_key} was not ingested: {response:?}");
    };
    let manifest: IngestManifest =
        serde_json::from_slice(&object(stack, manifest).await).expect("ingest manifest");
    for part in &manifest.outputs.clean_parts {
        let response = stack
            .classify
            .handle(invoke(s3_put_event(BUCKET, part)))
            .await
            .expect("classified");
        assert!(
            matches!(
                response.objects[0].status,
                classify::Status::Classified { .. }
            ),
            "{response:?}"
        );
    }
    manifest
}

async fn keys_under(stack: &Stack, prefix: &str) -> Vec<String> {
    let mut keys = moto::keys(&stack.client, BUCKET).await;
    keys.retain(|key| key.starts_with(prefix));
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_object_is_classified_part_by_part_and_a_new_split_retracts_the_old_parts() {
    let stack = stack().await;
    let ids: Vec<String> = (0..10).map(|id| format!("10{id}")).collect();
    // Three days, so each part writes Parquet to more than one partition.
    let raw: String = ids
        .iter()
        .enumerate()
        .map(|(index, id)| {
            format!(
                "{{\"id_str\":\"{id}\",\"created_at\":\"2024-05-0{}T10:00:00Z\",\
                 \"text\":\"flight number {id} left on time, thanks\"}}\n",
                1 + index % 3
            )
        })
        .collect();
    moto::put(
        &stack.client,
        BUCKET,
        "raw/big dump.jsonl",
        raw.into_bytes(),
    )
    .await;

    let first = ingest_in_parts(&stack, "raw/big dump.jsonl", 3).await;
    assert_eq!(first.outputs.clean_parts.len(), 4);
    let second = ingest_in_parts(&stack, "raw/big dump.jsonl", 4).await;
    assert_eq!(
        second.outputs.clean_parts,
        [
            "clean/big dump.jsonl/part-00000-of-00003.jsonl",
            "clean/big dump.jsonl/part-00001-of-00003.jsonl",
            "clean/big dump.jsonl/part-00002-of-00003.jsonl",
        ]
    );
    // Ingest deleted the first split's parts; S3 tells classify, which retracts their outputs.
    assert_eq!(
        keys_under(&stack, "clean/").await,
        second.outputs.clean_parts
    );
    for stale in &first.outputs.clean_parts {
        let response = stack
            .classify
            .handle(invoke(s3_delete_event(BUCKET, stale)))
            .await
            .expect("retracted");
        assert!(
            matches!(
                response.objects[0].status,
                classify::Status::Retracted { .. }
            ),
            "{response:?}"
        );
    }

    let mut predicted = Vec::new();
    for key in keys_under(&stack, "predictions/").await {
        assert!(key.contains("-of-00003"), "{key} is stale");
        predicted.extend(
            lines(&object(&stack, &key).await)
                .iter()
                .map(|record| record["id"].as_str().expect("id").to_owned()),
        );
    }
    assert_eq!(
        predicted, ids,
        "every tweet once, in order, across the parts"
    );
    let mut in_parquet = Vec::new();
    for key in keys_under(&stack, "predictions-parquet/").await {
        assert!(key.contains("-of-00003"), "{key} is stale");
        in_parquet.extend(parquet_ids(object(&stack, &key).await));
    }
    in_parquet.sort();
    assert_eq!(in_parquet, ids, "every tweet once in Parquet");
    assert_eq!(keys_under(&stack, "manifests/classify/").await.len(), 3);
}
