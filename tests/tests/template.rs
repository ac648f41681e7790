//! The deployment template, read as data: least privilege for S3, no function that can
//! trigger itself, notification filters that match the key contract in every event
//! delivery mode (direct, through queues, through EventBridge), and an Athena table whose
//! columns are the Parquet columns classify writes.

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

/// Every policy statement of a function or state machine; a conditional one
/// (`Fn::If: [condition, statement, AWS::NoValue]`) as its statement.
fn statements(resource: &Value) -> Vec<&Value> {
    as_list(&resource["Properties"]["Policies"])
        .into_iter()
        .flat_map(|policy| as_list(&policy["Statement"]))
        .map(|statement| match statement.get("Fn::If") {
            Some(branches) => &branches[1],
            None => statement,
        })
        .collect()
}

/// The key prefix of an object ARN (`…:s3:::bucket/clean/*` → `clean/`).
fn object_prefix(resource: &str) -> Option<String> {
    let (_, path) = resource.split_once(":s3:::")?;
    let (_, key) = path.split_once('/')?;
    Some(key.trim_end_matches('*').to_owned())
}

/// One route from the bucket to a function: the S3 event and the key prefix it filters on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Route {
    function: String,
    event: String,
    prefix: String,
}

/// The logical name in `{"Fn::GetAtt": [name, "Arn"]}` or `{"Ref": name}`.
fn named(value: &Value) -> String {
    value["Fn::GetAtt"][0]
        .as_str()
        .or_else(|| value["Ref"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The branch of `{"Fn::If": [condition, then, else]}` taken when `condition` holds.
fn when(value: &Value, condition: &str) -> Value {
    let branches = &value["Fn::If"];
    assert_eq!(branches[0], condition, "{value}");
    branches[1].clone()
}

fn prefix_rule(filter: &Value) -> String {
    as_list(&filter["S3Key"]["Rules"])
        .into_iter()
        .find(|rule| rule["Name"] == "prefix")
        .and_then(|rule| rule["Value"].as_str())
        .expect("a prefix rule")
        .to_owned()
}

/// The bucket's routes when `EventDelivery` is `mode`, read from the notification
/// configuration, the queues' event source mappings, or the EventBridge rules.
fn routes(template: &Value, mode: &str) -> Vec<Route> {
    let resources = resources(template);
    let notifications = &resources["TweetsBucket"]["Properties"]["NotificationConfiguration"];
    let mut routes: Vec<Route> = match mode {
        "S3" => as_list(&when(
            &notifications["LambdaConfigurations"],
            "DeliverDirect",
        ))
        .into_iter()
        .map(|config| Route {
            function: named(&config["Function"]),
            event: config["Event"].as_str().expect("event").to_owned(),
            prefix: prefix_rule(&config["Filter"]),
        })
        .collect(),
        "SQS" => as_list(&when(
            &notifications["QueueConfigurations"],
            "DeliverThroughQueues",
        ))
        .into_iter()
        .map(|config| {
            let queue = named(&config["Queue"]);
            let mapping = resources
                .values()
                .find(|resource| {
                    resource["Type"] == "AWS::Lambda::EventSourceMapping"
                        && named(&resource["Properties"]["EventSourceArn"]) == queue
                })
                .unwrap_or_else(|| panic!("no function reads {queue}"));
            assert_eq!(mapping["Condition"], "DeliverThroughQueues");
            assert_eq!(
                mapping["Properties"]["FunctionResponseTypes"],
                serde_json::json!(["ReportBatchItemFailures"]),
                "{queue}: failed messages must be reported one by one"
            );
            let redrive = &resources[&queue]["Properties"]["RedrivePolicy"];
            assert!(
                !named(&redrive["deadLetterTargetArn"]).is_empty(),
                "{queue} has no dead-letter queue"
            );
            Route {
                function: named(&mapping["Properties"]["FunctionName"]),
                event: config["Event"].as_str().expect("event").to_owned(),
                prefix: prefix_rule(&config["Filter"]),
            }
        })
        .collect(),
        "EventBridge" => {
            assert_eq!(
                when(
                    &notifications["EventBridgeConfiguration"],
                    "DeliverThroughEventBridge"
                )["EventBridgeEnabled"],
                true
            );
            resources
                .values()
                .filter(|resource| resource["Type"] == "AWS::Events::Rule")
                .flat_map(|rule| {
                    assert_eq!(rule["Condition"], "DeliverThroughEventBridge");
                    let pattern = &rule["Properties"]["EventPattern"];
                    assert_eq!(pattern["source"], serde_json::json!(["aws.s3"]));
                    let prefix = pattern["detail"]["object"]["key"][0]["prefix"]
                        .as_str()
                        .expect("a key prefix")
                        .to_owned();
                    let function = named(&rule["Properties"]["Targets"][0]["Arn"]);
                    as_list(&pattern["detail-type"])
                        .into_iter()
                        .map(move |detail_type| Route {
                            function: function.clone(),
                            event: match detail_type.as_str() {
                                Some("Object Created") => "s3:ObjectCreated:*",
                                Some("Object Deleted") => "s3:ObjectRemoved:*",
                                other => panic!("unexpected detail-type {other:?}"),
                            }
                            .to_owned(),
                            prefix: prefix.clone(),
                        })
                })
                .collect()
        }
        other => panic!("no EventDelivery mode {other}"),
    };
    routes.sort();
    routes
}

/// The prefixes that send `s3_event` to `function` (the same in every delivery mode).
fn event_prefixes(template: &Value, function: &str, s3_event: &str) -> Vec<String> {
    routes(template, "S3")
        .into_iter()
        .filter(|route| route.function == function && route.event == s3_event)
        .map(|route| route.prefix)
        .collect()
}

/// The prefixes whose created objects invoke `function`.
fn trigger_prefixes(template: &Value, function: &str) -> Vec<String> {
    event_prefixes(template, function, "s3:ObjectCreated:*")
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

/// The key prefixes a resource's `s3:ListBucket` grants are limited to (their `s3:prefix`
/// condition, without the trailing `*`).
fn listable_prefixes(resource: &Value) -> Vec<String> {
    statements(resource)
        .into_iter()
        .filter(|statement| statement["Action"] == "s3:ListBucket")
        .flat_map(|statement| as_list(&statement["Condition"]["StringLike"]["s3:prefix"]))
        .filter_map(Value::as_str)
        .map(|pattern| pattern.trim_end_matches('*').to_owned())
        .collect()
}

#[test]
fn classify_can_tell_which_outputs_exist_before_it_retracts_them() {
    let template = template();
    let classify = resources(&template)
        .get("ClassifyFunction")
        .expect("a classify function");
    let listable = listable_prefixes(classify);
    let deletable = action_prefixes(classify, "s3:DeleteObject");
    assert!(!deletable.is_empty(), "classify retracts its outputs");
    for prefix in deletable.iter().map(String::as_str).chain(["clean/"]) {
        assert!(
            listable
                .iter()
                .any(|granted| prefix.starts_with(granted.as_str())),
            "classify deletes or checks {prefix}* but may not list it: a missing key reads as 403"
        );
    }
    let readable = action_prefixes(classify, "s3:GetObject");
    for prefix in ["manifests/classify/", "predictions/"] {
        assert!(
            readable
                .iter()
                .any(|granted| prefix.starts_with(granted.as_str())),
            "the retraction reads {prefix}* to find the Parquet partitions"
        );
    }
}

#[test]
fn no_function_writes_under_a_prefix_that_triggers_it_and_triggers_form_no_loop() {
    let template = template();
    let mut triggers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut writes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, function) in functions(&template) {
        triggers.insert(name.clone(), trigger_prefixes(&template, name));
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
        for (other, _) in functions(&template) {
            let watched = [
                event_prefixes(&template, other, "s3:ObjectRemoved:*"),
                trigger_prefixes(&template, other),
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
        event_prefixes(&template, "ClassifyFunction", "s3:ObjectRemoved:*"),
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
            properties["EventInvokeConfig"].is_object()
                || trigger_prefixes(&template, name).is_empty(),
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
fn every_event_delivery_mode_routes_the_same_prefixes_to_the_same_functions() {
    let template = template();
    let modes = as_list(&template["Parameters"]["EventDelivery"]["AllowedValues"]);
    assert_eq!(modes, ["S3", "SQS", "EventBridge"]);
    assert_eq!(template["Parameters"]["EventDelivery"]["Default"], "S3");
    let direct = routes(&template, "S3");
    let route = |function: &str, event: &str, prefix: &str| Route {
        function: function.to_owned(),
        event: event.to_owned(),
        prefix: prefix.to_owned(),
    };
    assert_eq!(
        direct,
        [
            route("ClassifyFunction", "s3:ObjectCreated:*", "clean/"),
            route("ClassifyFunction", "s3:ObjectRemoved:*", "clean/"),
            route("IngestFunction", "s3:ObjectCreated:*", "raw/"),
        ]
    );
    for mode in ["SQS", "EventBridge"] {
        assert_eq!(routes(&template, mode), direct, "EventDelivery {mode}");
    }
    // Each function may consume its own queue, and nothing else of SQS.
    for (function, queue) in [
        ("IngestFunction", "IngestQueue"),
        ("ClassifyFunction", "ClassifyQueue"),
    ] {
        let consumed: Vec<String> = statements(&resources(&template)[function])
            .into_iter()
            .filter(|statement| {
                as_list(&statement["Action"])
                    .iter()
                    .any(|action| action.as_str().is_some_and(|a| a.starts_with("sqs:")))
            })
            .flat_map(|statement| as_list(&statement["Resource"]).into_iter().map(named))
            .collect();
        assert_eq!(consumed, [queue], "{function}");
    }
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
    // The saved queries read that table and name only its columns (and `dt`).
    let queries: Vec<(&String, &Value)> = resources(&template)
        .iter()
        .filter(|(_, resource)| resource["Type"] == "AWS::Athena::NamedQuery")
        .collect();
    assert!(queries.len() >= 5, "{} saved queries", queries.len());
    for (name, query) in queries {
        let sql = query["Properties"]["QueryString"].as_str().expect("SQL");
        assert!(sql.contains("FROM predictions"), "{name}");
        for used in [
            "label",
            "text",
            "created_at",
            "author_handle",
            "lang",
            "scores",
        ] {
            if sql.contains(used) {
                assert!(
                    columns.contains(&used),
                    "{name} reads {used}, which the table lacks"
                );
            }
        }
    }
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
    let listing = &definition["States"]["EachObject"];
    let inventory = &definition["States"]["EachInventoryObject"];
    assert_eq!(
        listing["ItemReader"]["Resource"],
        "arn:aws:states:::s3:listObjectsV2"
    );
    assert_eq!(
        inventory["ItemReader"]["ReaderConfig"]["InputType"],
        "MANIFEST"
    );
    // Inventory keys are URL-encoded; the functions decode them when told so.
    assert_eq!(inventory["ItemSelector"]["key_encoding"], "url");
    for map in [listing, inventory] {
        assert_eq!(
            map["ItemProcessor"]["ProcessorConfig"]["Mode"],
            "DISTRIBUTED"
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
            // What the state passes is what the function's direct form accepts.
            let mut payload = states[stage]["Parameters"]["Payload"].clone();
            let payload = payload.as_object_mut().expect("a payload");
            let item = serde_json::json!({"bucket": "my-bucket", "key": "raw/a+b.json",
                "key_encoding": map["ItemSelector"]["key_encoding"].as_str().unwrap_or("stored")});
            let sent: serde_json::Map<String, Value> = payload
                .keys()
                .map(|name| {
                    let field = name.trim_end_matches(".$");
                    (field.to_owned(), item[field].clone())
                })
                .collect();
            pipeline::object_refs(Value::Object(sent)).expect("the function accepts it");
        }
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
