//! The `tweetclf` binary as a user runs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

fn tweetclf(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tweetclf"));
    // Runs of the bundled model would otherwise be recorded in the repository's models/runs.
    let runs = std::env::temp_dir().join("tweetclf-cli-test-runs");
    command
        .args(args)
        .current_dir(repo_root())
        .env("TWEETCLF_RUNS", runs);
    command
}

/// `tweetclf train` with no set-up (no `--base`: over the bundled model's encoder), `extra`
/// flags after the required ones.
fn train_command(train: &Path, valid: &Path, out: &Path, name: &str, extra: &[&str]) -> Command {
    let utf8 = |path: &Path| path.to_str().expect("UTF-8 path").to_owned();
    let (train, valid, out) = (utf8(train), utf8(valid), utf8(out));
    let mut args = vec![
        "train", "--train", &train, "--valid", &valid, "--out", &out, "--name", name,
    ];
    args.extend_from_slice(extra);
    tweetclf(&args)
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().expect("tweetclf runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

/// Every file below `folder`, sorted.
fn files(folder: &Path) -> Vec<PathBuf> {
    pipeline::local::files_below(folder).expect("folder listed")
}

fn manifest(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("manifest exists")).expect("manifest JSON")
}

#[test]
fn run_with_defaults_ingests_the_bundled_examples_into_the_bucket_layout() {
    let out = tempfile::tempdir().expect("temp dir");
    let out_arg = out.path().to_str().expect("UTF-8 path");
    let (output, stdout, stderr) = run(&mut tweetclf(&["run", "--out", out_arg]));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("4 file(s) from examples/raw"), "{stdout}");
    assert!(stdout.contains("records in          39"), "{stdout}");
    assert!(stdout.contains("kept                29"), "{stdout}");
    assert!(stdout.contains("duplicate_id"), "{stdout}");

    let mut kept = 0;
    for path in files(&out.path().join("manifests/ingest")) {
        let manifest = manifest(&path);
        let filtered: u64 = manifest["filtered"]
            .as_object()
            .expect("filtered map")
            .values()
            .map(|count| count.as_u64().expect("count"))
            .sum();
        let records_in = manifest["records_in"].as_u64().expect("records_in");
        let manifest_kept = manifest["kept"].as_u64().expect("kept");
        assert_eq!(
            records_in,
            manifest_kept + filtered + manifest["rejected"].as_u64().expect("rejected")
        );
        kept += manifest_kept;
    }
    assert_eq!(kept, 29);
    // The audit trail: every filtered record of the examples has its line, with a reason.
    let mut filtered_lines = Vec::new();
    for path in files(&out.path().join("filtered")) {
        let text = std::fs::read_to_string(path).expect("readable");
        filtered_lines.extend(text.lines().map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("JSON line")["reason"]
                .as_str()
                .expect("reason")
                .to_owned()
        }));
    }
    assert_eq!(filtered_lines.len(), 9, "{filtered_lines:?}");
    assert!(
        out.path()
            .join("clean/v1.1 search airlines.json/part-00000-of-00001.jsonl")
            .is_file()
    );
    assert!(
        out.path()
            .join("rejected/firehose-2024-05-03-10-00-00-abc.jsonl")
            .is_file()
    );

    // Every kept tweet has exactly one prediction, by the bundled model.
    assert!(stdout.contains("classified          29"), "{stdout}");
    let mut predicted_ids = Vec::new();
    for path in files(&out.path().join("predictions")) {
        let text = std::fs::read_to_string(path).expect("readable");
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(record["model_name"], "sentiment");
            assert!(record["scores"]["negative"].is_number());
            predicted_ids.push(record["id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(predicted_ids.len(), 29);
    let partitions: Vec<String> = std::fs::read_dir(out.path().join("predictions-parquet"))
        .expect("parquet partitions")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        partitions.contains(&"dt=2024-05-01".to_owned()),
        "{partitions:?}"
    );
    assert!(
        out.path()
            .join("manifests/classify/v1.1 search airlines.json/part-00000-of-00001.manifest.json")
            .is_file()
    );
}

/// Ids of the tweets in every JSON Lines file below `folder`, in file then line order.
fn ids_below(folder: &Path) -> Vec<String> {
    files(folder)
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("readable");
            text.lines()
                .map(|line| {
                    let record: serde_json::Value = serde_json::from_str(line).expect("JSON line");
                    record["id"].as_str().expect("id").to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn run_classifies_parts_and_a_new_split_leaves_no_stale_outputs() {
    let out = tempfile::tempdir().expect("temp dir");
    let out_arg = out.path().to_str().expect("UTF-8 path");
    let input = "examples/raw/v1.1 search airlines.json";
    let run_in_parts = |max: &str| {
        let (output, stdout, stderr) =
            run(tweetclf(&["run", input, "--out", out_arg]).env("CLEAN_PART_MAX_TWEETS", max));
        assert!(output.status.success(), "{stderr}");
        stdout
    };
    run_in_parts("2");
    let clean = out.path().join("clean/v1.1 search airlines.json");
    let first: Vec<PathBuf> = files(&clean);
    assert!(first.len() >= 3, "{first:?}");
    let clean_ids = ids_below(&clean);
    assert_eq!(ids_below(&out.path().join("predictions")), clean_ids);

    let stdout = run_in_parts("100");
    assert!(
        stdout.contains(&format!("classified          {}", clean_ids.len())),
        "{stdout}"
    );
    assert_eq!(
        files(&clean),
        [clean.join("part-00000-of-00001.jsonl")],
        "the first split's parts are gone"
    );
    assert_eq!(ids_below(&out.path().join("predictions")), clean_ids);
    let leftovers: Vec<PathBuf> = files(out.path())
        .into_iter()
        .filter(|path| {
            path.to_string_lossy().contains("-of-0000")
                && !path.to_string_lossy().contains("-of-00001")
        })
        .collect();
    assert!(leftovers.is_empty(), "stale outputs: {leftovers:?}");
}

#[test]
fn run_can_stop_after_ingest() {
    let out = tempfile::tempdir().expect("temp dir");
    let out_arg = out.path().to_str().expect("UTF-8 path");
    let (output, stdout, stderr) = run(tweetclf(&[
        "run",
        "examples/raw/v1.1 search airlines.json",
        "--out",
        out_arg,
        "--ingest-only",
    ])
    .env("CLEAN_PART_MAX_TWEETS", "2"));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("not classified (--ingest-only)"),
        "{stdout}"
    );
    let parts = files(&out.path().join("clean/v1.1 search airlines.json"));
    assert!(
        stdout.contains(&format!("({} part(s))", parts.len())),
        "{stdout}"
    );
    assert!(parts.len() >= 3, "{parts:?}");
    assert!(!out.path().join("predictions").exists());
}

#[test]
fn ingest_runs_one_file_through_the_use_case_into_the_bucket_layout() {
    let out = tempfile::tempdir().expect("temp dir");
    let out_arg = out.path().to_str().expect("UTF-8 path");
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "ingest",
        "tests/fixtures/cases/mixed-errors.jsonl",
        "--out",
        out_arg,
    ]));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("rejected             3"), "{stdout}");
    assert!(
        !stdout.contains("predictions"),
        "nothing was classified: {stdout}"
    );
    let read = |path: &str| std::fs::read_to_string(out.path().join(path)).expect(path);
    let clean = read("clean/mixed-errors.jsonl/part-00000-of-00001.jsonl");
    assert_eq!(clean.lines().count(), 2);
    assert_eq!(read("rejected/mixed-errors.jsonl.jsonl").lines().count(), 3);
    let manifest = manifest(
        &out.path()
            .join("manifests/ingest/mixed-errors.jsonl.manifest.json"),
    );
    assert_eq!(manifest["records_in"], 5);
    assert_eq!(manifest["input"], "raw/mixed-errors.jsonl");
    assert!(
        manifest["timing_ms"]["write"].is_u64(),
        "written by the use case, timed like the function's"
    );
}

#[test]
fn ingest_reads_standard_input() {
    let out = tempfile::tempdir().expect("temp dir");
    let mut child = tweetclf(&[
        "ingest",
        "-",
        "--out",
        out.path().to_str().expect("UTF-8 path"),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawns");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(br#"{"id_str": "1", "text": "Piped in from another program"}"#)
        .expect("write");
    let output = child.wait_with_output().expect("finishes");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let clean = std::fs::read_to_string(out.path().join("clean/stdin/part-00000-of-00001.jsonl"))
        .expect("clean");
    assert!(clean.contains("\"key\":\"raw/stdin\""), "{clean}");
}

#[test]
fn empty_input_folder_is_a_clear_error() {
    let input = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    let (output, _, stderr) = run(&mut tweetclf(&[
        "run",
        input.path().to_str().expect("UTF-8"),
        "--out",
        out.path().to_str().expect("UTF-8"),
    ]));
    assert!(!output.status.success());
    assert!(stderr.contains("no files to ingest"), "{stderr}");
}

#[test]
fn bad_setting_fails_before_any_work_and_names_the_variable() {
    let out = tempfile::tempdir().expect("temp dir");
    let (output, _, stderr) = run(
        tweetclf(&["run", "--out", out.path().to_str().expect("UTF-8")])
            .env("FILTER_RETWEETS", "sometimes"),
    );
    assert!(!output.status.success());
    assert!(stderr.contains("FILTER_RETWEETS"), "{stderr}");
    assert!(
        std::fs::read_dir(out.path())
            .expect("listable")
            .next()
            .is_none()
    );
}

#[test]
fn missing_input_file_is_a_clear_error() {
    let out = tempfile::tempdir().expect("temp dir");
    let (output, _, stderr) = run(&mut tweetclf(&[
        "ingest",
        "no/such/file.json",
        "--out",
        out.path().to_str().expect("UTF-8"),
    ]));
    assert!(!output.status.success());
    assert!(stderr.contains("opening no/such/file.json"), "{stderr}");
}

#[test]
fn classify_writes_one_line_per_input_line_and_flags_bad_ones() {
    let input = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        input.path(),
        b"{\"id\": \"a\", \"text\": \"I love this airline, best crew ever!\"}\n\
          \n\
          {\"id\": \"b\", \"text\": \"\"}\n\
          not json\n\
          {\"text\": \"lost my luggage, worst experience \xf0\x9f\x98\xa1\"}\n\
          {\"id\": 7, \"text\": \"bad \xff bytes\"}\n",
    )
    .expect("write");
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "classify",
        "--input",
        input.path().to_str().expect("UTF-8"),
    ]));
    assert!(
        !output.status.success(),
        "bad lines make the command fail after the rest"
    );
    assert!(
        stderr.contains("3 of 5 line(s) could not be classified"),
        "{stderr}"
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    // Output line N answers input line N; a blank line gets a marker, not a failure.
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["label"], "positive");
    let total: f64 = lines[0]["scores"]
        .as_object()
        .expect("scores")
        .values()
        .map(|score| score.as_f64().expect("number"))
        .sum();
    assert!((total - 1.0).abs() < 1e-4);
    assert_eq!(
        lines[1],
        serde_json::json!({"line": 2, "skipped": "blank line"})
    );
    assert_eq!(lines[2]["error"], "`text` is empty");
    assert_eq!(lines[2]["id"], "b");
    assert_eq!(lines[2]["line"], 3);
    assert!(
        lines[3]["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("invalid JSON"))
    );
    assert_eq!(lines[3]["line"], 4, "physical line numbers");
    assert_eq!(lines[4]["label"], "negative");
    assert_eq!(lines[5]["error"], "the line is not valid UTF-8");
    assert_eq!(lines[5]["line"], 6);
}

#[test]
fn classify_refuses_empty_input_and_broken_models() {
    let empty = tempfile::NamedTempFile::new().expect("temp file");
    let (output, _, stderr) = run(&mut tweetclf(&[
        "classify",
        "--input",
        empty.path().to_str().expect("UTF-8"),
    ]));
    assert!(!output.status.success());
    assert!(stderr.contains("no input"), "{stderr}");
    std::fs::write(empty.path(), "\n  \n").expect("write");
    let (output, _, stderr) = run(&mut tweetclf(&[
        "classify",
        "--input",
        empty.path().to_str().expect("UTF-8"),
    ]));
    assert!(!output.status.success(), "blank lines only: still no input");
    assert!(stderr.contains("no input"), "{stderr}");

    let model = tempfile::tempdir().expect("temp dir");
    let (output, _, stderr) = run(&mut tweetclf(&[
        "classify",
        "--input",
        empty.path().to_str().expect("UTF-8"),
        "--model",
        model.path().to_str().expect("UTF-8"),
    ]));
    assert!(!output.status.success());
    assert!(stderr.contains("config.json is missing"), "{stderr}");
}

/// Eight obviously happy or unhappy texts, for training tests.
const MOOD: [(&str, &str); 8] = [
    ("great service, thank you", "happy"),
    ("love it, wonderful crew", "happy"),
    ("best flight ever", "happy"),
    ("amazing staff, so kind", "happy"),
    ("terrible, lost my bag", "unhappy"),
    ("worst airline, never again", "unhappy"),
    ("delayed for hours, awful", "unhappy"),
    ("rude staff and dirty seats", "unhappy"),
];

/// `MOOD` as JSON Lines in `dir/train.jsonl`.
fn mood_data(dir: &Path) -> PathBuf {
    let jsonl: String = MOOD
        .iter()
        .map(|(text, label)| format!("{{\"text\": \"{text}\", \"label\": \"{label}\"}}\n"))
        .collect();
    let path = dir.join("train.jsonl");
    std::fs::write(&path, jsonl).expect("write");
    path
}

/// A trained model's labels.json.
fn read_labels(model: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(model.join("labels.json")).expect("labels.json"))
        .expect("JSON")
}

/// `tweetclf classify` with `model` calls a plainly happy text `happy`.
fn assert_classify_reads_a_kind_crew_as_happy(dir: &Path, model: &Path) {
    let input = dir.join("input.jsonl");
    std::fs::write(&input, "{\"text\": \"what a wonderful, kind crew\"}\n").expect("write");
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "classify",
        "--input",
        input.to_str().expect("UTF-8"),
        "--model",
        model.to_str().expect("UTF-8"),
    ]));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("\"label\":\"happy\""), "{stdout}");
}

#[test]
fn train_writes_a_model_directory_that_classify_loads() {
    let data = tempfile::tempdir().expect("temp dir");
    mood_data(data.path());
    let csv: String = std::iter::once("label,text\n".to_owned())
        .chain(
            MOOD.iter()
                .map(|(text, label)| format!("{label},\"{text}\"\n")),
        )
        .collect();
    std::fs::write(data.path().join("valid.csv"), csv).expect("write");
    let out = data.path().join("model");
    let (output, stdout, stderr) = run(&mut train_command(
        &data.path().join("train.jsonl"),
        &data.path().join("valid.csv"),
        &out,
        "mood",
        &["--epochs", "40", "--learning-rate", "0.05"],
    ));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("trained mood (2 labels"), "{stdout}");
    assert!(
        stdout.contains("note: validation has only"),
        "a tiny validation set is called out: {stdout}"
    );
    assert!(
        stderr.contains("no --base: training over the encoder of the bundled model"),
        "{stderr}"
    );
    let labels = read_labels(&out);
    assert_eq!(labels["labels"], serde_json::json!(["happy", "unhappy"]));
    let base = &labels["provenance"]["base_model"];
    assert_eq!(base["encoder_of"]["name"], "sentiment", "{base}");
    assert_eq!(
        base["base_model"]["model"],
        "intfloat/multilingual-e5-small"
    );
    assert_eq!(labels["preprocessing"]["cleaning_version"], "clean-v2");
    // Lambda reads the packaged model as a user that does not own it.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("model.safetensors"))
            .expect("weights")
            .permissions(),
    );
    assert_eq!(mode & 0o444, 0o444, "model.safetensors mode {mode:o}");
    assert!(
        labels["metrics"]["validation"]["accuracy"]
            .as_f64()
            .expect("accuracy")
            >= 0.99
    );

    assert_classify_reads_a_kind_crew_as_happy(data.path(), &out);
}

#[test]
fn fine_tuning_stops_when_asked_and_resumes_from_its_checkpoint() {
    let data = tempfile::tempdir().expect("temp dir");
    let mood = mood_data(data.path());
    let out = data.path().join("model");
    let checkpoints = data.path().join("model.checkpoints");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "--mode",
            "top",
            "--layers",
            "1",
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--learning-rate",
            "0.05",
            "--encoder-learning-rate",
            "0.0005",
        ];
        args.extend_from_slice(extra);
        run(&mut train_command(&mood, &mood, &out, "mood", &args))
    };

    let (output, stdout, stderr) = train(&["--stop-after", "1"]);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("stopped after epoch 1"), "{stdout}");
    assert!(stderr.contains("epoch 1: train loss"), "{stderr}");
    assert!(checkpoints.join("checkpoint.json").is_file());
    assert!(
        !out.join("labels.json").exists(),
        "no model before the run ends"
    );

    // Without --resume, an existing checkpoint is refused rather than overwritten.
    let (output, _, stderr) = train(&[]);
    assert!(!output.status.success());
    assert!(stderr.contains("holds a checkpoint already"), "{stderr}");

    let (output, stdout, stderr) = train(&["--resume"]);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("resuming after epoch 1"), "{stderr}");
    assert!(
        stdout.contains("fine-tuned: top 1 encoder layers and head"),
        "{stdout}"
    );
    assert!(
        !checkpoints.exists(),
        "checkpoints are removed once the model is written"
    );
    let labels = read_labels(&out);
    let details = &labels["provenance"]["details"];
    assert_eq!(details["resumed_after_epoch"], 1);
    assert_eq!(details["history"].as_array().expect("history").len(), 3);
    // Only the trained layer differs from the base encoder.
    let base = candle_core::safetensors::load(
        repo_root().join("models/sentiment/model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .expect("base weights");
    let tuned =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)
            .expect("tuned weights");
    let differs = |name: &str| {
        let values = |tensors: &std::collections::HashMap<String, candle_core::Tensor>| {
            tensors[name]
                .to_dtype(candle_core::DType::F32)
                .and_then(|tensor| tensor.flatten_all()?.to_vec1::<f32>())
                .expect("values")
        };
        values(&base) != values(&tuned)
    };
    // The bundled model's top layer learns; the layer below and the 4-bit word table are kept.
    assert!(differs("encoder.layer.11.output.dense.weight"));
    assert!(!differs("encoder.layer.10.output.dense.weight"));
    assert!(!differs("embeddings.word_embeddings.weight.q4_0"));

    assert_classify_reads_a_kind_crew_as_happy(data.path(), &out);
}

#[test]
fn train_reads_multi_label_yes_no_columns() {
    let data = tempfile::tempdir().expect("temp dir");
    let csv = "message,food,water,genre\n\
               we need food and rice,1,0,social\n\
               no clean water here,0,1,social\n\
               hungry and thirsty,1,1,social\n\
               send bread please,1,0,direct\n\
               the well is dry,0,1,direct\n\
               nice weather today,0,0,news\n";
    let path = data.path().join("aid.csv");
    std::fs::write(&path, csv).expect("write");
    let out = data.path().join("model");
    let (output, stdout, stderr) = run(&mut train_command(
        &path,
        &path,
        &out,
        "aid",
        &[
            "--text-column",
            "message",
            "--label-columns",
            "food,water",
            "--epochs",
            "60",
            "--learning-rate",
            "0.05",
            "--no-class-weights",
        ],
    ));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("trained aid (2 labels, multi-label"),
        "{stdout}"
    );
    let labels = read_labels(&out);
    assert_eq!(labels["problem_type"], "multi_label");
    assert_eq!(labels["labels"], serde_json::json!(["food", "water"]));
    assert_eq!(labels["provenance"]["training"]["class_weighting"], false);
}

/// A yes/no-column set: `food` on `food` rows, `water` on `water` rows, neither on the rest.
fn aid_csv(path: &Path, food: usize, water: usize, neither: usize) {
    let mut csv = String::from("message,food,water\n");
    for row in 0..food {
        csv.push_str(&format!("we need food and rice for {row} families,1,0\n"));
    }
    for row in 0..water {
        csv.push_str(&format!("no clean water in block {row},0,1\n"));
    }
    for row in 0..neither {
        csv.push_str(&format!("the match starts at {row} pm,0,0\n"));
    }
    std::fs::write(path, csv).expect("write");
}

#[test]
fn multi_label_train_tunes_thresholds_on_validation_and_eval_reports_both() {
    let data = tempfile::tempdir().expect("temp dir");
    let (train, valid) = (data.path().join("train.csv"), data.path().join("valid.csv"));
    aid_csv(&train, 12, 12, 12);
    // `water` has 3 validation positives, under the floor of 10: it keeps 0.5.
    aid_csv(&valid, 12, 3, 10);
    let out = data.path().join("model");
    let flags = ["--text-column", "message", "--label-columns", "food,water"];
    let mut train = train_command(&train, &valid, &out, "aid", &flags);
    let (output, stdout, stderr) = run(train.env_remove("TWEETCLF_RUNS"));
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("run recorded in"), "{stderr}");
    assert!(
        stdout.contains("thresholds tuned on validation for 1 of 2 labels"),
        "{stdout}"
    );
    let labels = read_labels(&out);
    let thresholds = labels["thresholds"].as_object().expect("thresholds");
    assert_eq!(thresholds.keys().collect::<Vec<_>>(), ["food"]);
    let food = thresholds["food"].as_f64().expect("a number");
    assert!((0.05..=0.95).contains(&food), "{food}");
    let record = &labels["metrics"]["validation_thresholds"];
    assert_eq!(record["labels"][1]["positives"], 3);
    assert!(record["labels"][1]["threshold"].is_null(), "{record}");
    let (tuned, at_default) = (
        &record["tuned"]["micro_f1"],
        &record["at_default"]["micro_f1"],
    );
    assert!(tuned.as_f64() >= at_default.as_f64(), "{record}");

    let report = data.path().join("eval");
    let runs = data.path().join("elsewhere");
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "eval",
        "--runs",
        runs.to_str().expect("UTF-8"),
        "--input",
        valid.to_str().expect("UTF-8"),
        "--model",
        out.to_str().expect("UTF-8"),
        "--out",
        report.to_str().expect("UTF-8"),
        "--text-column",
        "message",
        "--label-columns",
        "food,water",
    ]));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("with every label at 0.5"), "{stdout}");
    let metrics = manifest(&report.join("metrics.json"));
    // Evaluated on the validation set itself, the figures are training's own.
    let micro = |figures: &serde_json::Value| figures["micro_f1"].as_f64().expect("micro-F1");
    assert!((micro(&metrics["evaluation"]) - micro(&record["tuned"])).abs() < 1e-6);
    assert!((micro(&metrics["at_default_thresholds"]) - micro(&record["at_default"])).abs() < 1e-6);
    assert_runs_are_recorded_and_listed(&data.path().join("runs"), &runs, &valid);
}

/// The training run was recorded beside the model, the evaluation in the store it named;
/// `tweetclf runs` lists both and draws the training run's validation curve.
fn assert_runs_are_recorded_and_listed(beside: &Path, named: &Path, valid: &Path) {
    let records = |dir: &Path| -> Vec<serde_json::Value> {
        files(dir).iter().map(|path| manifest(path)).collect()
    };
    let trained = records(beside);
    assert_eq!(trained.len(), 1);
    assert_eq!(trained[0]["kind"], "train");
    assert!(!trained[0]["epochs"].as_array().expect("epochs").is_empty());
    assert!(trained[0]["metrics"]["valid_micro_f1_tuned"].is_number());
    let evaluated = records(named);
    assert_eq!(evaluated.len(), 1);
    assert_eq!(evaluated[0]["kind"], "eval");
    // The evaluation read the training run's validation file: the same content hash.
    assert_eq!(
        evaluated[0]["data"][0]["sha256"],
        trained[0]["data"][1]["sha256"]
    );
    assert_eq!(
        trained[0]["data"][1]["path"],
        valid.to_str().expect("UTF-8")
    );

    let plot = beside.join("curves.svg");
    let utf8 = |path: &Path| path.to_str().expect("UTF-8").to_owned();
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "runs",
        &utf8(beside),
        &utf8(named),
        "--plot",
        &utf8(&plot),
    ]));
    assert!(output.status.success(), "{stderr}");
    let (train_id, eval_id) = (
        trained[0]["id"].as_str().expect("id"),
        evaluated[0]["id"].as_str().expect("id"),
    );
    assert!(
        stdout.contains(train_id) && stdout.contains(eval_id),
        "{stdout}"
    );
    assert!(stdout.contains("2 run(s)"), "{stdout}");
    let svg = std::fs::read_to_string(&plot).expect("curves drawn");
    assert!(svg.contains(train_id), "the training run has a curve");
}

#[test]
fn runs_names_a_store_it_cannot_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-store");
    let (output, _, stderr) = run(&mut tweetclf(&["runs", missing.to_str().expect("UTF-8")]));
    assert!(!output.status.success());
    assert!(stderr.contains("no-such-store"), "{stderr}");
}

#[test]
fn train_with_a_missing_base_says_how_to_lay_one_out() {
    let data = tempfile::tempdir().expect("temp dir");
    mood_data(data.path());
    let train = data.path().join("train.jsonl");
    let mut command = train_command(&train, &train, &data.path().join("m"), "mood", &[]);
    command.args(["--base", "models/no-such-base"]);
    let (output, _, stderr) = run(&mut command);
    assert!(!output.status.success());
    for hint in [
        "models/no-such-base does not exist",
        "bash models/fetch-base-e5.sh",
        "leave out --base",
    ] {
        assert!(stderr.contains(hint), "{hint}: {stderr}");
    }
}

#[test]
fn train_refuses_validation_labels_it_never_saw() {
    let data = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        data.path().join("train.jsonl"),
        "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"}\n",
    )
    .expect("write");
    std::fs::write(
        data.path().join("valid.jsonl"),
        "{\"text\": \"c\", \"label\": \"z\"}\n",
    )
    .expect("write");
    let (output, _, stderr) = run(&mut train_command(
        &data.path().join("train.jsonl"),
        &data.path().join("valid.jsonl"),
        &data.path().join("model"),
        "x",
        &[],
    ));
    assert!(!output.status.success());
    assert!(
        stderr.contains("label `z` never appears in the training data"),
        "{stderr}"
    );
}

#[test]
fn train_refuses_a_rule_left_out_of_clean_v1_before_any_work() {
    let data = tempfile::tempdir().expect("temp dir");
    let train = mood_data(data.path());
    let (output, _, stderr) = run(&mut train_command(
        &train,
        &train,
        &data.path().join("model"),
        "x",
        &["--cleaning", "clean-v1", "--leave-out-rule", "emoticons"],
    ));
    assert!(!output.status.success());
    assert!(
        stderr.contains("clean-v1 has no rules to leave out"),
        "{stderr}"
    );
    assert!(!data.path().join("model").exists());
}

/// A copy of the bundled model, so a test may rewrite its labels.json.
fn bundled_model_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("model");
    std::fs::create_dir_all(&copy).expect("mkdir");
    for file in [
        "config.json",
        "labels.json",
        "model.safetensors",
        "tokenizer.json",
    ] {
        std::fs::copy(
            repo_root().join("models/sentiment").join(file),
            copy.join(file),
        )
        .expect("copy model file");
    }
    copy
}

const SENTIMENT_EXAMPLES: &[(&str, &str)] = &[
    ("I love this airline, the crew was wonderful", "positive"),
    ("thank you so much, great flight", "positive"),
    ("best service ever, amazing staff", "positive"),
    (
        "my flight was cancelled and nobody helped, terrible",
        "negative",
    ),
    ("lost my bag again, worst airline", "negative"),
    ("rude agent, three hour delay, awful", "negative"),
    (
        "stuck on the tarmac for hours, disgusting service",
        "negative",
    ),
    ("what time does the gate open tomorrow", "neutral"),
];

#[test]
fn eval_writes_metrics_report_plots_and_a_suggested_threshold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = bundled_model_copy(dir.path());
    let data = dir.path().join("labelled.jsonl");
    let jsonl: String = SENTIMENT_EXAMPLES
        .iter()
        .enumerate()
        .map(|(index, (text, label))| {
            let half = if index < 4 { "first" } else { "second" };
            format!("{{\"text\": \"{text}\", \"label\": \"{label}\", \"half\": \"{half}\"}}\n")
        })
        .collect();
    std::fs::write(&data, jsonl).expect("write");
    let out = dir.path().join("eval");
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "eval",
        "--input",
        data.to_str().expect("UTF-8"),
        "--model",
        model.to_str().expect("UTF-8"),
        "--out",
        out.to_str().expect("UTF-8"),
        "--binary",
        "negative,positive",
        "--sweep-label",
        "negative",
        "--target-recall",
        "1.0",
        "--write-threshold",
        "--group-column",
        "half",
    ]));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("on 8 examples"), "{stdout}");
    assert!(stdout.contains("  first: 4 examples"), "{stdout}");

    let metrics = manifest(&out.join("metrics.json"));
    let evaluation = &metrics["evaluation"];
    assert_eq!(evaluation["examples"], 8);
    let confusion: Vec<Vec<u64>> =
        serde_json::from_value(evaluation["confusion"].clone()).expect("confusion matrix");
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 8);
    let diagonal: u64 = (0..3).map(|index| confusion[index][index]).sum();
    let accuracy = evaluation["accuracy"].as_f64().expect("accuracy");
    assert!((accuracy - diagonal as f64 / 8.0).abs() < 1e-9);
    let groups = metrics["groups"].as_array().expect("groups");
    let names: Vec<&str> = groups.iter().filter_map(|g| g["group"].as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    let failures: u64 = groups.iter().filter_map(|g| g["failures"].as_u64()).sum();
    assert_eq!(
        failures,
        8 - diagonal,
        "the groups' failures are the wrong decisions"
    );
    assert_eq!(metrics["binary"]["examples"], 7);
    let supports: Vec<u64> = evaluation["per_label"]
        .as_array()
        .expect("per label")
        .iter()
        .map(|label| label["support"].as_u64().expect("support"))
        .collect();
    assert_eq!(supports, vec![4, 1, 3]);
    assert_eq!(
        metrics["sweep"]["points"].as_array().expect("points").len(),
        101
    );
    let suggestion = &metrics["suggestion"];
    assert_eq!(suggestion["label"], "negative");
    assert_eq!(suggestion["point"]["recall"], 1.0);
    let threshold = suggestion["point"]["threshold"]
        .as_f64()
        .expect("threshold");

    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(report.contains("| negative | 4 |"), "{report}");
    assert!(report.contains("## Per group"), "{report}");
    assert!(report.contains("![Confusion matrix, row shares](confusion.svg)"));
    for plot in ["confusion.svg", "threshold.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).expect("plot");
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{plot}"
        );
        assert!(svg.contains("negative"), "{plot} names the label");
    }

    // The threshold went into the copy's labels.json, which still loads.
    let labels = manifest(&model.join("labels.json"));
    let written = labels["thresholds"]["negative"]
        .as_f64()
        .expect("threshold written");
    assert!((written - threshold).abs() < 1e-6, "{labels}");
    let input = dir.path().join("one.jsonl");
    std::fs::write(&input, "{\"text\": \"lost my bag, awful\"}\n").expect("write");
    let (output, _, stderr) = run(&mut tweetclf(&[
        "classify",
        "--input",
        input.to_str().expect("UTF-8"),
        "--model",
        model.to_str().expect("UTF-8"),
    ]));
    assert!(output.status.success(), "{stderr}");
}

/// Reads a JSON Lines file into values.
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("JSON Lines file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON value per line"))
        .collect()
}

#[test]
fn eval_errors_writes_examples_to_relabel_that_eval_reads_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("labelled.jsonl");
    // The first example is labelled wrong on purpose: a confident mistake to find.
    let jsonl: String = SENTIMENT_EXAMPLES
        .iter()
        .enumerate()
        .map(|(index, (text, label))| {
            let label = if index == 0 { "negative" } else { label };
            format!("{{\"text\": \"{text}\", \"label\": \"{label}\"}}\n")
        })
        .collect();
    std::fs::write(&data, jsonl).expect("write");
    let out = dir.path().join("eval");
    let eval = |input: &Path, out: &Path, errors: &str| {
        run(&mut tweetclf(&[
            "eval",
            input.to_str().expect("UTF-8"),
            "--out",
            out.to_str().expect("UTF-8"),
            "--errors",
            errors,
        ]))
    };
    let (output, stdout, stderr) = eval(&data, &out, "100");
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("for relabelling:"), "{stdout}");
    let metrics = manifest(&out.join("metrics.json"));
    let wrong = 8 - metrics["evaluation"]["correct"].as_u64().expect("correct");

    let mistakes = json_lines(&out.join("mistakes.jsonl"));
    assert_eq!(
        mistakes.len() as u64,
        wrong,
        "every mistake, when N is large"
    );
    assert_eq!(metrics["review"]["mistakes"], wrong);
    assert_eq!(
        mistakes[0]["line"], 1,
        "the mislabelled praise is the surest mistake"
    );
    assert_eq!(mistakes[0]["predicted"], serde_json::json!(["positive"]));
    for mistake in &mistakes {
        assert_ne!(
            mistake["predicted"],
            serde_json::json!([mistake["label"].clone()])
        );
    }
    let uncertain = json_lines(&out.join("uncertain.jsonl"));
    assert_eq!(uncertain.len(), 8, "every decision, when N is large");
    let confidences = |lines: &[serde_json::Value]| -> Vec<f64> {
        lines
            .iter()
            .map(|line| line["confidence"].as_f64().expect("confidence"))
            .collect()
    };
    assert!(
        confidences(&mistakes).is_sorted_by(|a, b| a >= b),
        "surest mistakes first"
    );
    assert!(
        confidences(&uncertain).is_sorted(),
        "least sure decisions first"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(report.contains("## For relabelling"), "{report}");

    // N bounds both files, and what they hold is labelled data eval (and train) read.
    let (output, _, stderr) = eval(&data, &out, "2");
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        json_lines(&out.join("mistakes.jsonl")).len(),
        2.min(wrong as usize)
    );
    let two = json_lines(&out.join("uncertain.jsonl"));
    assert_eq!(confidences(&two), confidences(&uncertain)[..2]);
    let again = dir.path().join("again");
    let (output, stdout, stderr) = eval(&out.join("uncertain.jsonl"), &again, "1");
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("on 2 examples"), "{stdout}");
}

#[test]
fn eval_refuses_unknown_labels_and_incomplete_options() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("labelled.jsonl");
    std::fs::write(&data, "{\"text\": \"fine\", \"label\": \"angry\"}\n").expect("write");
    let data = data.to_str().expect("UTF-8");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--input", data],
            "label `angry` is not one of the model's labels",
        ),
        (
            &["--input", data, "--sweep-label", "bored"],
            "label `bored` is not one of the model's labels",
        ),
        (
            &[
                "--input",
                data,
                "--sweep-label",
                "negative",
                "--write-threshold",
            ],
            "--write-threshold needs --target-precision or --target-recall",
        ),
        (
            &[
                "--input",
                data,
                "--sweep-label",
                "negative",
                "--target-precision",
                "1.5",
            ],
            "target precision 1.5 is not between 0 and 1",
        ),
        (
            &["--input", data, "--binary", "negative"],
            "--binary takes two labels",
        ),
    ];
    for (args, message) in cases {
        let out = dir.path().join("eval");
        let mut full = vec!["eval", "--out", out.to_str().expect("UTF-8")];
        full.extend_from_slice(args);
        let (output, _, stderr) = run(&mut tweetclf(&full));
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn bench_reports_every_batch_size_cold_start_and_memory() {
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "bench",
        "--json",
        "--threads",
        "1",
        "--texts",
        "6",
        "--batch-sizes",
        "1,4",
        "--cold-starts",
        "1",
        "--input",
        "tests/fixtures/parity/texts.jsonl",
    ]));
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["texts"], 6);
    assert_eq!(report["threads"], 1);
    let sizes: Vec<u64> = report["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|batch| {
            assert!(batch["tweets_per_s"].as_f64().expect("throughput") > 0.0);
            assert!(
                batch["p95_ms"].as_f64().expect("p95") >= batch["p50_ms"].as_f64().expect("p50")
            );
            batch["batch_size"].as_u64().expect("size")
        })
        .collect();
    assert_eq!(sizes, vec![1, 4]);
    let cold = &report["cold_start"];
    assert_eq!(cold["runs_ms"].as_array().expect("runs").len(), 1);
    assert!(cold["median_ms"].as_f64().expect("median") >= cold["load_ms"].as_f64().expect("load"));
    assert!(
        report["peak_rss_mib"].as_f64().expect("rss") > 40.0,
        "the model's weights are resident"
    );
}

#[test]
fn run_backfills_from_and_to_s3_prefixes() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = integration_tests::moto::MotoServer::start();
    let client = server.client();
    upload_folders(&runtime, &server, "archive", "2024/may/", &["examples/raw"]);
    let (output, stdout, stderr) = run(on_s3(
        &mut tweetclf(&[
            "run",
            "s3://archive/2024/may",
            "--out",
            "s3://archive/backfill/",
        ]),
        &server.endpoint,
    ));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("4 file(s) from s3://archive/2024/may"),
        "{stdout}"
    );
    assert!(stdout.contains("classified          29"), "{stdout}");
    let keys = runtime.block_on(integration_tests::moto::keys(&client, "archive"));
    let under = |prefix: &str| keys.iter().filter(|key| key.starts_with(prefix)).count();
    assert_eq!(under("2024/may/"), 4, "inputs untouched: {keys:?}");
    assert_eq!(under("backfill/clean/"), 4, "{keys:?}");
    assert_eq!(under("backfill/predictions/"), 4, "{keys:?}");
    assert_eq!(under("backfill/manifests/classify/"), 4, "{keys:?}");
    assert!(under("backfill/predictions-parquet/dt=") >= 4, "{keys:?}");
}

#[test]
fn run_takes_its_raw_objects_from_an_s3_inventory() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = integration_tests::moto::MotoServer::start();
    let client = server.client();
    upload_folders(&runtime, &server, "archive", "2024/may/", &["examples/raw"]);
    let raw = files(&repo_root().join("examples/raw"));
    let names: Vec<&str> = raw
        .iter()
        .filter_map(|path| path.file_name().and_then(|name| name.to_str()))
        .collect();
    // The inventory names two of May's objects (one under a key with a space, URL-encoded
    // as S3 writes inventories), one in June and one deleted: two are read.
    let csv = format!(
        concat!(
            "\"archive\",\"2024/may/{first}\",\"true\",\"false\"\n",
            "\"archive\",\"2024/may/late+arrivals%2B.json\",\"true\",\"false\"\n",
            "\"archive\",\"2024/june/{first}\",\"true\",\"false\"\n",
            "\"archive\",\"2024/may/{second}\",\"true\",\"true\"\n",
        ),
        first = names[0],
        second = names[1],
    );
    let manifest = serde_json::json!({
        "sourceBucket": "archive", "destinationBucket": "arn:aws:s3:::inventories",
        "version": "2016-11-30", "creationTimestamp": "1714608000000", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, IsLatest, IsDeleteMarker",
        "files": [{"key": "archive/daily/data/1.csv", "size": csv.len(), "MD5checksum": "x"}],
    });
    runtime.block_on(async {
        use integration_tests::moto;
        let late = std::fs::read(&raw[2]).expect("readable");
        moto::put(&client, "archive", "2024/may/late arrivals+.json", late).await;
        moto::create_bucket(&client, "inventories").await;
        moto::put(
            &client,
            "inventories",
            "archive/daily/data/1.csv",
            csv.into_bytes(),
        )
        .await;
        let manifest = manifest.to_string().into_bytes();
        moto::put(
            &client,
            "inventories",
            "archive/daily/manifest.json",
            manifest,
        )
        .await;
    });
    let (output, stdout, stderr) = run(on_s3(
        &mut tweetclf(&[
            "run",
            "s3://archive/2024/may",
            "--inventory",
            "s3://inventories/archive/daily/manifest.json",
            "--out",
            "s3://archive/backfill/",
            "--ingest-only",
        ]),
        &server.endpoint,
    ));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("2 file(s) from s3://archive/2024/may"),
        "{stdout}"
    );
    let keys = runtime.block_on(integration_tests::moto::keys(&client, "archive"));
    let manifests: Vec<&String> = keys
        .iter()
        .filter(|key| key.starts_with("backfill/manifests/ingest/"))
        .collect();
    assert_eq!(
        manifests,
        [
            &format!("backfill/manifests/ingest/{}.manifest.json", names[0]),
            &"backfill/manifests/ingest/late arrivals+.json.manifest.json".to_owned(),
        ]
    );

    let (output, _, stderr) = run(&mut tweetclf(&[
        "run",
        "examples/raw",
        "--inventory",
        "s3://inventories/archive/daily/manifest.json",
    ]));
    assert!(!output.status.success());
    assert!(stderr.contains("the input must be s3://"), "{stderr}");
}

/// Creates `bucket` and stores every file of `folders` in it under `prefix`, by file name.
fn upload_folders(
    runtime: &tokio::runtime::Runtime,
    server: &integration_tests::moto::MotoServer,
    bucket: &str,
    prefix: &str,
    folders: &[&str],
) {
    let client = server.client();
    runtime.block_on(async {
        integration_tests::moto::create_bucket(&client, bucket).await;
        for folder in folders {
            for path in files(&repo_root().join(folder)) {
                let name = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .expect("name");
                let bytes = std::fs::read(&path).expect("readable");
                integration_tests::moto::put(&client, bucket, &format!("{prefix}{name}"), bytes)
                    .await;
            }
        }
    });
}

/// `command` against the S3-compatible server at `endpoint`, with the dummy credentials
/// moto accepts and nothing of the machine's AWS settings.
fn on_s3<'c>(command: &'c mut Command, endpoint: &str) -> &'c mut Command {
    command
        .env("S3_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
}

/// `tweetclf run` from `s3://faults/in` to `s3://faults/<out>/` through `endpoint`.
fn run_s3_to_s3(endpoint: &str, out: &str) -> (Output, String, String) {
    run(on_s3(
        &mut tweetclf(&[
            "run",
            "s3://faults/in",
            "--out",
            &format!("s3://faults/{out}/"),
        ]),
        endpoint,
    ))
}

/// Every object under `prefix`, by its key below the prefix; manifests without their
/// wall-clock `timing_ms`, the only part allowed to differ between runs.
fn objects_below(
    runtime: &tokio::runtime::Runtime,
    server: &integration_tests::moto::MotoServer,
    prefix: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let client = &server.client();
    runtime.block_on(async {
        let mut objects = std::collections::BTreeMap::new();
        for key in integration_tests::moto::keys(client, "faults").await {
            let Some(relative) = key.strip_prefix(prefix) else {
                continue;
            };
            let mut bytes = integration_tests::moto::get(client, "faults", &key)
                .await
                .expect("listed object exists");
            if relative.starts_with("manifests/") {
                let mut manifest: serde_json::Value =
                    serde_json::from_slice(&bytes).expect("manifest JSON");
                manifest
                    .as_object_mut()
                    .expect("manifest object")
                    .remove("timing_ms");
                bytes = serde_json::to_vec(&manifest).expect("JSON");
            }
            objects.insert(relative.to_owned(), bytes);
        }
        objects
    })
}

#[test]
fn s3_faults_lose_nothing_and_a_clean_re_run_gives_identical_objects() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = integration_tests::moto::MotoServer::start();
    upload_folders(
        &runtime,
        &server,
        "faults",
        "in/",
        &["examples/raw", "tests/fixtures/cases"],
    );
    let (output, _, stderr) = run_s3_to_s3(&server.endpoint, "reference");
    assert!(output.status.success(), "{stderr}");

    // A seeded 35 % of requests fail, stall or break; the SDK retries some away, and the
    // objects whose calls still fail are reported and left without a manifest.
    let proxy = integration_tests::faults::FaultProxy::start(&server.endpoint, 5, 350);
    let (output, stdout, _) = run_s3_to_s3(&proxy.endpoint, "faulty");
    let counts = proxy.counts();
    drop(proxy);
    assert!(counts.len() == 6, "every kind of fault met: {counts:?}");
    assert!(!output.status.success(), "{stdout}");
    let layout = pipeline::Prefixes::default();
    let failed: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("FAILED "))
        .filter_map(|line| line.split_once(": ").map(|(key, _)| key))
        .collect();
    assert!(!failed.is_empty(), "{stdout}");
    let written = objects_below(&runtime, &server, "faulty/");
    for key in &failed {
        let manifest = match layout.ingest_keys(key) {
            Ok(keys) => keys.manifest,
            Err(_) => layout.classify_keys(key).expect("a clean key").manifest,
        };
        assert!(
            !written.contains_key(&manifest),
            "{key} failed but has {manifest}"
        );
    }

    let (output, _, stderr) = run_s3_to_s3(&server.endpoint, "faulty");
    assert!(output.status.success(), "{stderr}");
    let reference = objects_below(&runtime, &server, "reference/");
    let rerun = objects_below(&runtime, &server, "faulty/");
    assert_eq!(
        rerun.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "the same objects, none missing and none extra"
    );
    for (key, bytes) in &reference {
        assert!(
            rerun[key] == *bytes,
            "{key} differs from the fault-free run"
        );
    }
}

#[test]
fn every_command_takes_its_input_positionally_or_as_a_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("texts.jsonl");
    std::fs::write(&input, "{\"text\": \"thank you, fixed in minutes\"}\n").expect("write");
    let input = input.to_str().expect("UTF-8");
    let (positional, flag) = (
        run(&mut tweetclf(&["classify", input])),
        run(&mut tweetclf(&["classify", "--input", input])),
    );
    assert!(positional.0.status.success(), "{}", positional.2);
    assert_eq!(positional.1, flag.1, "the same prediction either way");

    let (output, _, stderr) = run(&mut tweetclf(&["classify", input, "--input", input]));
    assert!(!output.status.success());
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let nowhere = dir
        .path()
        .join("unused")
        .to_str()
        .expect("UTF-8")
        .to_owned();
    for (command, extra) in [
        ("classify", vec![]),
        ("eval", vec![]),
        ("ingest", vec!["--out", nowhere.as_str()]),
    ] {
        let (output, _, stderr) = run(&mut tweetclf(&[&[command], &extra[..]].concat()));
        assert!(!output.status.success());
        assert!(
            stderr.contains(&format!(
                "give it as `tweetclf {command} INPUT` or `--input INPUT`"
            )),
            "{command}: {stderr}"
        );
    }

    let labelled = dir.path().join("labelled.jsonl");
    std::fs::write(
        &labelled,
        "{\"text\": \"love it\", \"label\": \"positive\"}\n\n{\"text\": \"meh\", \"label\": \"bored\"}\n",
    )
    .expect("write");
    let (output, _, stderr) = run(&mut tweetclf(&[
        "eval",
        labelled.to_str().expect("UTF-8"),
        "--out",
        dir.path().join("eval").to_str().expect("UTF-8"),
    ]));
    assert!(!output.status.success());
    assert!(
        stderr.contains("labelled.jsonl line 3: label `bored` is not one of the model's labels"),
        "errors name the file's line, not an example index: {stderr}"
    );

    let ingest_out = dir.path().join("ingest");
    let (output, _, stderr) = run(&mut tweetclf(&[
        "ingest",
        "--input",
        "examples/raw/v2-recent-search.json",
        "--out",
        ingest_out.to_str().expect("UTF-8"),
    ]));
    assert!(output.status.success(), "{stderr}");
    let run_out = dir.path().join("run");
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "run",
        "--input",
        "examples/raw/v2-recent-search.json",
        "--out",
        run_out.to_str().expect("UTF-8"),
        "--ingest-only",
    ]));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("1 file(s) from examples/raw/v2-recent-search.json"),
        "{stdout}"
    );
}

#[test]
fn model_dir_is_honoured_by_classify_and_eval_and_a_missing_model_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("texts.jsonl");
    std::fs::write(&input, "{\"text\": \"hello\", \"label\": \"positive\"}\n").expect("write");
    let missing = dir.path().join("no-such-model");
    for command in ["classify", "eval"] {
        let (output, _, stderr) = run(tweetclf(&[command, input.to_str().expect("UTF-8")])
            .env("MODEL_DIR", &missing)
            .current_dir(dir.path()));
        assert!(!output.status.success(), "{command}");
        assert!(
            stderr.contains(&format!("{} does not exist", missing.display())),
            "{command}: {stderr}"
        );
    }
    let (output, _, stderr) = run(&mut tweetclf(&[
        "classify",
        input.to_str().expect("UTF-8"),
        "--model",
        input.to_str().expect("UTF-8"),
    ]));
    assert!(!output.status.success());
    assert!(
        stderr.contains("is a file, not a model directory"),
        "{stderr}"
    );
}

#[test]
fn classify_says_a_truncated_line_is_truncated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("texts.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"fine\"}\n{\"text\": \"cut off\n{\"text\": oops}\n",
    )
    .expect("write");
    let (_, stdout, _) = run(&mut tweetclf(&["classify", input.to_str().expect("UTF-8")]));
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(
        lines[1]["error"],
        "truncated JSON: the line ends inside a value (column 17)"
    );
    assert_eq!(
        lines[2]["error"],
        "invalid JSON at column 10: expected value"
    );
}

#[test]
fn train_refuses_an_existing_model_directory_unless_forced_and_then_replaces_all_of_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let train = mood_data(data.path());
    let out = data.path().join("model");
    std::fs::create_dir(&out).expect("mkdir");
    std::fs::write(out.join("MODEL_CARD.md"), "an older model").expect("write");
    let (output, _, stderr) = run(&mut train_command(&train, &train, &out, "mood", &[]));
    assert!(!output.status.success());
    assert!(stderr.contains("already exists: pass --force"), "{stderr}");
    assert!(out.join("MODEL_CARD.md").exists(), "nothing touched");

    let (output, stdout, stderr) = run(&mut train_command(
        &train,
        &train,
        &out,
        "mood",
        &["--force", "--epochs", "2"],
    ));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("single-label"), "{stdout}");
    assert!(!stdout.contains("SingleLabel"), "{stdout}");
    assert!(out.join("labels.json").exists());
    assert!(
        !out.join("MODEL_CARD.md").exists(),
        "the old model's card does not outlive it"
    );
}

#[test]
fn classify_runs_through_the_backend_the_functions_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("texts.jsonl");
    std::fs::write(&input, "{\"text\": \"hello\"}\n").expect("write");
    // Amazon ML at a closed port: the command must try it, and say so.
    let (output, _, stderr) = run(tweetclf(&["classify", input.to_str().expect("UTF-8")])
        .env_remove("MODEL_DIR")
        .env("CLASSIFIER_BACKEND", "amazon-ml")
        .env("AMAZON_ML_MODEL_ID", "ml-test")
        .env("AMAZON_ML_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test"));
    assert!(!output.status.success());
    assert!(
        stderr.contains("Amazon ML Predict on model ml-test failed"),
        "{stderr}"
    );
}

/// Totals summed over the manifests of one stage (`ingest` or `classify`) under `out`.
fn manifest_totals(out: &Path, stage: &str, fields: &[&str]) -> Vec<u64> {
    let mut totals = vec![0; fields.len()];
    for path in files(&out.join("manifests").join(stage)) {
        let manifest = manifest(&path);
        for (total, field) in totals.iter_mut().zip(fields) {
            *total += manifest[*field].as_u64().expect("a count");
        }
    }
    totals
}

/// What the browser shows of the report: each chart's size and bars, the tiles, the
/// funnel, and the per-source rows once unfolded.
const READ_THE_PAGE: &str = r#"
const visible = (element) => {
  const box = element.getBoundingClientRect();
  return box.width > 0 && box.height > 0;
};
const charts = [...document.querySelectorAll('svg[data-chart]')].map((svg) => ({
  name: svg.dataset.chart,
  visible: visible(svg),
  bars: [...svg.querySelectorAll('rect')].filter((rect) => Number(rect.dataset.count ?? 1) > 0)
    .map((rect) => visible(rect)),
}));
const days = [...document.querySelectorAll('[data-chart=label-share-per-day] g[data-day]')]
  .map((group) => [...group.querySelectorAll('rect')]
    .reduce((sum, rect) => sum + Number(rect.dataset.count), 0));
const funnel = document.querySelector('[data-chart=funnel]').dataset;
const tiles = Object.fromEntries([...document.querySelectorAll('[data-tile]')]
  .map((tile) => [tile.dataset.tile, Number(tile.textContent)]));
return {
  title: document.title,
  legend: document.querySelector('[data-legend=labels]').innerText,
  charts, days, tiles,
  funnel: [funnel.recordsIn, funnel.kept, funnel.filtered, funnel.rejected, funnel.classified]
    .map(Number),
  sources: [...document.querySelectorAll('tr[data-source]')].filter(visible).length,
  scripts: document.scripts.length,
};
"#;

#[test]
fn report_renders_in_a_real_browser_with_the_manifests_totals() {
    let folder = tempfile::tempdir().expect("temp dir");
    let out = folder.path().join("out");
    let page = folder.path().join("report.html");
    let utf8 = |path: &Path| path.to_str().expect("UTF-8 path").to_owned();
    let (output, _, stderr) = run(&mut tweetclf(&["run", "--out", &utf8(&out)]));
    assert!(output.status.success(), "{stderr}");
    let (output, stdout, stderr) = run(&mut tweetclf(&[
        "report",
        &utf8(&out),
        "--out",
        &utf8(&page),
    ]));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("39 records in, 29 kept, 29 classified"),
        "{stdout}"
    );

    let ingest = manifest_totals(&out, "ingest", &["records_in", "kept", "rejected"]);
    let classify = manifest_totals(&out, "classify", &["predicted"]);
    let filtered = ingest[0] - ingest[1] - ingest[2];
    let sources = files(&out.join("manifests/ingest")).len();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (shown, screenshot) = runtime.block_on(async {
        let browser = integration_tests::browser::Browser::start(1024, 3400).await;
        let client = &browser.client;
        client
            .goto(&format!("file://{}", utf8(&page)))
            .await
            .expect("the page opens");
        client
            .find(integration_tests::browser::Locator::Css(
                "details[data-list=sources] summary",
            ))
            .await
            .expect("the per-source list")
            .click()
            .await
            .expect("it unfolds");
        let shown = client.execute(READ_THE_PAGE, vec![]).await.expect("read");
        let height = client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .expect("the page's height");
        let height = u32::try_from(height.as_u64().expect("a height")).expect("fits");
        client
            .set_window_size(1024, height)
            .await
            .expect("the whole page in view");
        let screenshot = client.screenshot().await.expect("a screenshot");
        browser.client.close().await.expect("closed");
        (shown, screenshot)
    });
    assert!(
        shown["title"]
            .as_str()
            .expect("title")
            .starts_with("tweetclf report")
    );
    assert_eq!(shown["scripts"], 0, "the page runs no scripts");
    let legend = shown["legend"].as_str().expect("legend");
    for label in ["negative", "neutral", "positive"] {
        assert!(legend.contains(label), "{legend}");
    }
    let charts = shown["charts"].as_array().expect("charts");
    let names: Vec<&str> = charts
        .iter()
        .filter_map(|chart| chart["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["label-share-per-day", "labels-per-language", "funnel"]
    );
    for chart in charts {
        assert_eq!(chart["visible"], true, "{chart}");
        let bars = chart["bars"].as_array().expect("bars");
        assert!(
            !bars.is_empty() && bars.iter().all(|bar| bar == true),
            "{chart}"
        );
    }
    let per_day: u64 = shown["days"]
        .as_array()
        .expect("days")
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    assert_eq!(
        per_day, classify[0],
        "the day bars add up to the predictions"
    );
    assert_eq!(
        shown["funnel"],
        serde_json::json!([ingest[0], ingest[1], filtered, ingest[2], classify[0]])
    );
    assert_eq!(
        shown["tiles"],
        serde_json::json!({"records-in": ingest[0], "kept": ingest[1], "filtered": filtered,
            "rejected": ingest[2], "classified": classify[0]})
    );
    assert_eq!(shown["sources"], sources);
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    if let Some(path) = std::env::var_os("TWEETCLF_REPORT_SCREENSHOT") {
        std::fs::write(path, &screenshot).expect("screenshot written");
    }
}

#[test]
fn report_reads_a_bucket_prefix_and_writes_the_page_to_s3() {
    let folder = tempfile::tempdir().expect("temp dir");
    let out = folder.path().join("out");
    let utf8 = |path: &Path| path.to_str().expect("UTF-8 path").to_owned();
    let (output, _, stderr) = run(&mut tweetclf(&["run", "--out", &utf8(&out)]));
    assert!(output.status.success(), "{stderr}");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = integration_tests::moto::MotoServer::start();
    let client = server.client();
    runtime.block_on(async {
        integration_tests::moto::create_bucket(&client, "stack").await;
        for path in files(&out) {
            let key = path.strip_prefix(&out).expect("below out");
            let key = format!("runs/may/{}", utf8(key));
            let bytes = std::fs::read(&path).expect("readable");
            integration_tests::moto::put(&client, "stack", &key, bytes).await;
        }
    });
    let (output, stdout, stderr) = run(on_s3(
        &mut tweetclf(&[
            "report",
            "s3://stack/runs/may",
            "--out",
            "s3://stack/reports/may.html",
        ]),
        &server.endpoint,
    ));
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("39 records in, 29 kept, 29 classified"),
        "{stdout}"
    );
    let page = runtime
        .block_on(integration_tests::moto::get(
            &client,
            "stack",
            "reports/may.html",
        ))
        .expect("the page is in the bucket");
    let page = String::from_utf8(page).expect("UTF-8");
    assert!(
        page.contains(r#"data-chart="funnel" data-records-in="39" data-kept="29""#),
        "{page}"
    );
    assert!(page.contains("s3://stack/runs/may"));
}
