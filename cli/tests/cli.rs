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
    command.args(args).current_dir(repo_root());
    command
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().expect("tweetclf runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
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
    assert!(stdout.contains("kept                27"), "{stdout}");
    assert!(stdout.contains("duplicate_id"), "{stdout}");

    let manifests = out.path().join("manifests/ingest");
    let mut kept = 0;
    for entry in std::fs::read_dir(&manifests).expect("manifests written") {
        let manifest = manifest(&entry.expect("entry").path());
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
    assert_eq!(kept, 27);
    assert!(
        out.path()
            .join("clean/v1.1 search airlines.json.jsonl")
            .is_file()
    );
    assert!(
        out.path()
            .join("rejected/firehose-2024-05-03-10-00-00-abc.jsonl")
            .is_file()
    );
}

#[test]
fn ingest_writes_flat_outputs_for_one_file() {
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
    let clean = std::fs::read_to_string(out.path().join("clean.jsonl")).expect("clean");
    assert_eq!(clean.lines().count(), 2);
    let rejected = std::fs::read_to_string(out.path().join("rejected.jsonl")).expect("rejected");
    assert_eq!(rejected.lines().count(), 3);
    let manifest = manifest(&out.path().join("manifest.json"));
    assert_eq!(manifest["records_in"], 5);
    assert_eq!(manifest["input"], "tests/fixtures/cases/mixed-errors.jsonl");
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
    let clean = std::fs::read_to_string(out.path().join("clean.jsonl")).expect("clean");
    assert!(clean.contains("\"key\":\"-\""), "{clean}");
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
