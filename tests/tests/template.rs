//! The deployment template, read as data: least privilege for S3, no function that can
//! trigger itself, notification filters that match the key contract, and an Athena table
//! whose columns are the Parquet columns classify writes.

use std::collections::BTreeMap;

use bytes::Bytes;
use integration_tests::repo_root;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pipeline::parquet_table::PartitionedPredictions;
use pipeline::{IngestConfig, PredictionRecord, Prefixes};
use serde_json::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(repo_root().join("infra/template.yaml"))
        .expect("infra/template.yaml is readable");
    serde_norway::from_str(&text).expect("the template is plain YAML (long-form intrinsics)")
}

fn resources(template: &Value) -> &serde_json::Map<String, Value> {
    template["Resources"].as_object().expect("Resources")
}

fn functions(template: &Value) -> Vec<(&String, &Value)> {
    resources(template)
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Serverless::Function")
        .collect()
}

fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A resource as text: a plain string, or the template of `Fn::Sub`.
fn resource_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other["Fn::Sub"]
            .as_str()
            .map_or_else(|| other.to_string(), str::to_owned),
    }
}

/// Every policy statement of a function or state machine.
fn statements(resource: &Value) -> Vec<&Value> {
    as_list(&resource["Properties"]["Policies"])
        .into_iter()
        .flat_map(|policy| as_list(&policy["Statement"]))
        .collect()
}

/// The key prefix of an object ARN (`…:s3:::bucket/clean/*` → `clean/`).
fn object_prefix(resource: &str) -> Option<String> {
    let (_, path) = resource.split_once(":s3:::")?;
    let (_, key) = path.split_once('/')?;
    Some(key.trim_end_matches('*').to_owned())
}

/// The `prefix` filter of each S3 event of a function for objects created.
fn trigger_prefixes(function: &Value) -> Vec<String> {
    event_prefixes(function, "s3:ObjectCreated:*")
}

/// The `prefix` filter of each S3 event of a function for `s3_event`.
fn event_prefixes(function: &Value, s3_event: &str) -> Vec<String> {
    let Some(events) = function["Properties"]["Events"].as_object() else {
        return Vec::new();
    };
    events
        .values()
        .filter(|event| event["Type"] == "S3" && event["Properties"]["Events"] == s3_event)
        .flat_map(|event| {
            as_list(&event["Properties"]["Filter"]["S3Key"]["Rules"])
                .into_iter()
                .filter(|rule| rule["Name"] == "prefix")
                .filter_map(|rule| rule["Value"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn put_prefixes(resource: &Value) -> Vec<String> {
    action_prefixes(resource, "s3:PutObject")
}

/// The object prefixes a resource's policies allow `action` on.
fn action_prefixes(resource: &Value, action: &str) -> Vec<String> {
    statements(resource)
        .into_iter()
        .filter(|statement| {
            as_list(&statement["Action"])
                .iter()
                .any(|granted| granted.as_str() == Some(action))
        })
        .flat_map(|statement| as_list(&statement["Resource"]))
        .filter_map(|resource| object_prefix(&resource_text(resource)))
        .collect()
}

fn overlaps(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[test]
fn no_s3_statement_grants_everything() {
    let template = template();
    let mut checked = 0;
    for (name, resource) in resources(&template) {
        for statement in statements(resource) {
            let actions: Vec<&str> = as_list(&statement["Action"])
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            if !actions
                .iter()
                .any(|action| action.starts_with("s3:") || *action == "*")
            {
                continue;
            }
            checked += 1;
            for action in &actions {
                assert!(
                    *action != "*" && *action != "s3:*" && !action.ends_with(":*"),
                    "{name} grants {action}"
                );
            }
            for target in as_list(&statement["Resource"]) {
                let text = resource_text(target);
                assert!(text != "*", "{name} grants S3 on Resource \"*\"");
                match object_prefix(&text) {
                    // Object grants name a prefix, never a whole bucket's objects.
                    Some(prefix) => assert!(
                        !prefix.is_empty(),
                        "{name} grants {actions:?} on every object: {text}"
                    ),
                    // Bucket grants are for listing only.
                    None => assert_eq!(actions, vec!["s3:ListBucket"], "{name}: {text}"),
                }
            }
        }
    }
    assert!(
        checked >= 5,
        "expected the functions' S3 statements, found {checked}"
    );
}

#[test]
fn no_function_writes_under_a_prefix_that_triggers_it_and_triggers_form_no_loop() {
    let template = template();
    let mut triggers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut writes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, function) in functions(&template) {
        triggers.insert(name.clone(), trigger_prefixes(function));
        writes.insert(name.clone(), put_prefixes(function));
    }
    assert_eq!(triggers["IngestFunction"], vec!["raw/"]);
    assert_eq!(triggers["ClassifyFunction"], vec!["clean/"]);
    for (name, own_triggers) in &triggers {
        for trigger in own_triggers {
            for written in &writes[name] {
                assert!(
                    !overlaps(trigger, written),
                    "{name} writes {written}* and is triggered by {trigger}*"
                );
            }
        }
    }
    // Follow writes into triggers: raw/ -> ingest -> clean/ -> classify -> (nothing).
    for start in triggers.keys() {
        let mut path = vec![start.clone()];
        let mut frontier = vec![start.clone()];
        while let Some(current) = frontier.pop() {
            for (next, next_triggers) in &triggers {
                let fed = writes[&current].iter().any(|written| {
                    next_triggers
                        .iter()
                        .any(|trigger| overlaps(trigger, written))
                });
                if fed {
                    assert!(!path.contains(next), "trigger loop: {path:?} -> {next}");
                    path.push(next.clone());
                    frontier.push(next.clone());
                }
            }
        }
    }
    // Deletions feed only classify's retraction of a deleted clean part, which deletes
    // nothing that triggers anything.
    for (name, function) in functions(&template) {
        let deleted = action_prefixes(function, "s3:DeleteObject");
        for (other, other_function) in functions(&template) {
            let watched = [
                event_prefixes(other_function, "s3:ObjectRemoved:*"),
                trigger_prefixes(other_function),
            ]
            .concat();
            for prefix in &deleted {
                let feeds = watched.iter().any(|trigger| overlaps(trigger, prefix));
                let expected = name == "IngestFunction" && other == "ClassifyFunction";
                assert!(
                    !feeds || (expected && prefix == "clean/"),
                    "{name} deletes {prefix}*, which {other} watches"
                );
            }
        }
    }
    // Trigger prefixes never overlap each other.
    let all: Vec<&String> = triggers.values().flatten().collect();
    for (index, a) in all.iter().enumerate() {
        for b in &all[index + 1..] {
            assert!(!overlaps(a, b), "notification filters {a} and {b} overlap");
        }
    }
}

#[test]
fn the_template_follows_the_key_contract() {
    let template = template();
    let prefixes = Prefixes::default();
    let functions: BTreeMap<&String, &Value> = functions(&template).into_iter().collect();
    let environment = |function: &str, name: &str| {
        functions[&function.to_owned()]["Properties"]["Environment"]["Variables"][name]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(
        environment("IngestFunction", "RAW_PREFIX"),
        Some(prefixes.raw.clone())
    );
    assert_eq!(
        environment("ClassifyFunction", "CLEAN_PREFIX"),
        Some(prefixes.clean.clone())
    );
    assert_eq!(
        put_prefixes(functions[&"IngestFunction".to_owned()]),
        vec![
            prefixes.clean.clone(),
            prefixes.rejected.clone(),
            prefixes.filtered.clone(),
            format!("{}ingest/", prefixes.manifests)
        ]
    );
    assert_eq!(
        environment("IngestFunction", "FILTERED_PREFIX"),
        Some(prefixes.filtered.clone())
    );
    assert_eq!(
        action_prefixes(functions[&"IngestFunction".to_owned()], "s3:DeleteObject"),
        vec![
            prefixes.clean.clone(),
            prefixes.rejected.clone(),
            prefixes.filtered.clone()
        ]
    );
    assert_eq!(
        functions[&"IngestFunction".to_owned()]["Properties"]["Environment"]["Variables"]["CLEAN_PART_MAX_TWEETS"]
            ["Ref"],
        "CleanPartMaxTweets"
    );
    assert_eq!(
        template["Parameters"]["CleanPartMaxTweets"]["Default"],
        IngestConfig::DEFAULT_PART_MAX_TWEETS.get()
    );
    let classify = functions[&"ClassifyFunction".to_owned()];
    assert_eq!(
        event_prefixes(classify, "s3:ObjectRemoved:*"),
        vec![prefixes.clean.clone()]
    );
    assert_eq!(
        action_prefixes(classify, "s3:DeleteObject"),
        vec![
            prefixes.predictions.clone(),
            prefixes.predictions_parquet.clone(),
            prefixes.predictions_rejected.clone(),
            format!("{}classify/", prefixes.manifests)
        ]
    );
    let expiring: Vec<&str> = as_list(
        &resources(&template)["TweetsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"],
    )
    .into_iter()
    .filter_map(|rule| rule["Prefix"].as_str())
    .collect();
    for kept_for_audit_only in [
        &prefixes.rejected,
        &prefixes.filtered,
        &prefixes.predictions_rejected,
    ] {
        assert!(
            expiring.contains(&kept_for_audit_only.as_str()),
            "{kept_for_audit_only} has no lifecycle rule: {expiring:?}"
        );
    }
    assert_eq!(
        put_prefixes(functions[&"ClassifyFunction".to_owned()]),
        vec![
            prefixes.predictions.clone(),
            prefixes.predictions_parquet.clone(),
            prefixes.predictions_rejected.clone(),
            format!("{}classify/", prefixes.manifests)
        ]
    );
    for (name, function) in &functions {
        let properties = &function["Properties"];
        assert!(
            properties["EventInvokeConfig"].is_object() || trigger_prefixes(function).is_empty(),
            "{name} is S3-triggered without explicit retries and a failure destination"
        );
    }
    assert_eq!(
        template["Globals"]["Function"]["Runtime"],
        "provided.al2023"
    );
    assert_eq!(
        template["Globals"]["Function"]["LoggingConfig"]["LogFormat"],
        "JSON"
    );
}

#[test]
fn the_athena_table_has_the_parquet_columns_in_order() {
    let template = template();
    let columns: Vec<&str> = as_list(
        &resources(&template)["PredictionsTable"]["Properties"]["TableInput"]["StorageDescriptor"]
            ["Columns"],
    )
    .into_iter()
    .filter_map(|column| column["Name"].as_str())
    .collect();
    let record = PredictionRecord {
        id: "1".to_owned(),
        created_at: None,
        author_id: None,
        author_handle: None,
        lang: None,
        text: "hello".to_owned(),
        label: Some("neutral".to_owned()),
        score: 1.0,
        labels: vec!["neutral".to_owned()],
        scores: BTreeMap::from([("neutral".to_owned(), 1.0)]),
        model_name: "m".to_owned(),
        model_version: "1".to_owned(),
        source_key: "raw/x".to_owned(),
        source_index: 0,
    };
    // The columns of a Parquet file exactly as classify writes it.
    let mut table = PartitionedPredictions::default();
    table.push(&record).expect("one row");
    let files = table.into_files().expect("encoded");
    let (_, bytes) = files.first().expect("one partition");
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes.clone()))
        .expect("valid Parquet");
    let parquet_columns: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    assert_eq!(
        columns, parquet_columns,
        "Glue columns vs the Parquet schema"
    );
}

#[test]
fn the_backfill_definition_is_a_distributed_map_over_both_stages() {
    let text = std::fs::read_to_string(repo_root().join("infra/statemachines/backfill.asl.json"))
        .expect("definition is readable");
    // Rendered as CloudFormation's DefinitionSubstitutions would.
    let rendered = text
        .replace("${Bucket}", "my-bucket")
        .replace(
            "${IngestFunctionArn}",
            "arn:aws:lambda:us-east-1:1:function:ingest",
        )
        .replace(
            "${ClassifyFunctionArn}",
            "arn:aws:lambda:us-east-1:1:function:classify",
        )
        .replace("${MaxConcurrency}", "40")
        .replace("${ToleratedFailurePercentage}", "1");
    let definition: Value = serde_json::from_str(&rendered).expect("valid JSON once rendered");
    let map = &definition["States"]["EachObject"];
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "DISTRIBUTED"
    );
    assert_eq!(
        map["ItemReader"]["Resource"],
        "arn:aws:states:::s3:listObjectsV2"
    );
    assert_eq!(map["MaxConcurrency"], 40);
    assert_eq!(map["ToleratedFailurePercentage"], 1);
    let states = &map["ItemProcessor"]["States"];
    for (stage, retryable) in [
        ("Ingest", "Retryable.IngestFailed"),
        ("Classify", "Retryable.ClassifyFailed"),
    ] {
        let retried: Vec<&str> = as_list(&states[stage]["Retry"][0]["ErrorEquals"])
            .into_iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            retried.contains(&retryable),
            "{stage} does not retry {retryable}"
        );
    }
    let template = template();
    let substitutions =
        &resources(&template)["BackfillStateMachine"]["Properties"]["DefinitionSubstitutions"];
    for name in [
        "Bucket",
        "IngestFunctionArn",
        "ClassifyFunctionArn",
        "MaxConcurrency",
        "ToleratedFailurePercentage",
    ] {
        assert!(substitutions[name].is_object(), "{name} is not substituted");
    }
}
