//! Every fixture and example file, through the same streaming ingest the functions run:
//! the counts add up, real API payloads parse without a single rejection, and each file's
//! outcome is the one a person reading it expects.

use std::collections::BTreeMap;
use std::path::Path;

use integration_tests::repo_root;
use tweets::{FilterReason, FilteredRecord, IngestOptions, Report, Tweet, TweetWarning};

/// records_in, kept, filtered (reason, count), rejected.
type Expected = (u64, u64, &'static [(FilterReason, u64)], u64);

const EXPECTED: &[(&str, Expected)] = {
    use FilterReason::*;
    &[
        ("tests/fixtures/cases/bom-crlf-lines.jsonl", (3, 3, &[], 0)),
        (
            "tests/fixtures/cases/timeline-array.json",
            (3, 2, &[(Retweet, 1)], 0),
        ),
        ("tests/fixtures/cases/v2-stream-lines.jsonl", (2, 2, &[], 0)),
        (
            "tests/fixtures/cases/firehose-concatenated.json",
            (3, 2, &[(DuplicateId, 1)], 0),
        ),
        // The French tweet is kept: every language is, by default.
        ("tests/fixtures/cases/search-response.json", (2, 2, &[], 0)),
        ("tests/fixtures/cases/mixed-errors.jsonl", (5, 2, &[], 3)),
        ("tests/fixtures/cases/v2-errors-only.json", (1, 0, &[], 1)),
        (
            "tests/fixtures/cases/stream-lines.jsonl.bz2",
            (2, 2, &[], 0),
        ),
        (
            "tests/fixtures/cases/search-utf16le-bom.json",
            (1, 1, &[], 0),
        ),
        // Read file by file: see a_tar_archive_is_read_file_by_file.
        ("tests/fixtures/cases/archive.tar", (2, 2, &[], 0)),
        ("tests/fixtures/cases/archive.tar.gz", (2, 2, &[], 0)),
        // Kept without a date: see unreadable_dates_cost_the_date_not_the_tweet.
        (
            "tests/fixtures/cases/unreadable-dates.jsonl",
            (3, 3, &[], 0),
        ),
    ]
};

/// Ingests one file and checks that its outputs add up (see `check_conserved`).
fn ingest_file(path: &Path) -> (Report, Vec<Tweet>, Vec<serde_json::Value>) {
    let bytes = std::fs::read(path).expect("fixture is readable");
    let (mut clean, mut rejected, mut filtered) = (Vec::new(), Vec::new(), Vec::new());
    let key = path
        .strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string();
    let report = tweets::ingest_stream(
        &key,
        &bytes[..],
        Some(bytes.len() as u64),
        &IngestOptions::default(),
        &mut clean,
        &mut rejected,
        &mut filtered,
    )
    .expect("ingest succeeds on in-memory data");
    let tweets: Vec<Tweet> = String::from_utf8(clean)
        .expect("clean output is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each clean line is a Tweet"))
        .collect();
    let rejections: Vec<serde_json::Value> = String::from_utf8(rejected)
        .expect("rejections are UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each rejection is JSON"))
        .collect();
    let filtered: Vec<FilteredRecord> = String::from_utf8(filtered)
        .expect("filtered records are UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each filtered line is a FilteredRecord"))
        .collect();
    check_conserved(path, &report, &tweets, &rejections, &filtered);
    (report, tweets, rejections)
}

fn files_under(folder: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join(folder))
        .expect("fixture folder exists")
        .map(|entry| entry.expect("listing works").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            !name.starts_with("LICENSE") && !name.ends_with(".md")
        })
        .collect();
    files.sort();
    files
}

/// The counts add up, and every input record is exactly one line of the outputs: a kept
/// tweet, a rejection or a filtered record (the audit trail matches the manifest's counts).
fn check_conserved(
    path: &Path,
    report: &Report,
    tweets: &[Tweet],
    rejections: &[serde_json::Value],
    filtered: &[FilteredRecord],
) {
    assert!(report.is_conserved(), "{}: {report:?}", path.display());
    assert_eq!(report.kept, tweets.len() as u64, "{}", path.display());
    let mut by_language: BTreeMap<String, u64> = BTreeMap::new();
    for tweet in tweets {
        let language = tweet.lang.clone().unwrap_or_else(|| "und".to_owned());
        *by_language.entry(language).or_default() += 1;
    }
    assert_eq!(report.kept_by_language, by_language, "{}", path.display());
    assert_eq!(
        report.rejected,
        rejections.len() as u64,
        "{}",
        path.display()
    );
    let mut indexes: Vec<u64> = tweets.iter().map(|tweet| tweet.source.index).collect();
    indexes.extend(
        rejections
            .iter()
            .map(|rejection| rejection["source"]["index"].as_u64().expect("index")),
    );
    indexes.extend(filtered.iter().map(|record| record.source.index));
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..report.records_in).collect::<Vec<_>>(),
        "{}: every record is kept, rejected or filtered, once",
        path.display()
    );
    let mut by_reason: BTreeMap<FilterReason, u64> = BTreeMap::new();
    for record in filtered {
        *by_reason.entry(record.reason).or_default() += 1;
    }
    assert_eq!(by_reason, report.filtered, "{}", path.display());
}

#[test]
fn own_cases_have_the_expected_outcomes() {
    for (file, (records_in, kept, filtered, rejected)) in EXPECTED {
        let path = repo_root().join(file);
        let (report, _, _) = ingest_file(&path);
        let expected_filtered: BTreeMap<FilterReason, u64> = filtered.iter().copied().collect();
        assert_eq!(
            (
                report.records_in,
                report.kept,
                &report.filtered,
                report.rejected
            ),
            (*records_in, *kept, &expected_filtered, *rejected),
            "{file}"
        );
    }
}

#[test]
fn unreadable_dates_cost_the_date_not_the_tweet() {
    let (report, tweets, _) =
        ingest_file(&repo_root().join("tests/fixtures/cases/unreadable-dates.jsonl"));
    let undated: Vec<&str> = tweets
        .iter()
        .filter(|tweet| tweet.created_at.is_none())
        .map(|tweet| tweet.id.as_str())
        .collect();
    assert_eq!(undated, ["1786200000000000001", "1786200000000000002"]);
    assert_eq!(
        report.warnings,
        BTreeMap::from([(TweetWarning::UnreadableCreatedAt, 2)])
    );
}

#[test]
fn a_tar_archive_is_read_file_by_file_compressed_or_not() {
    for (name, compression) in [
        ("archive.tar", tweets::Compression::None),
        ("archive.tar.gz", tweets::Compression::Gzip),
    ] {
        let path = format!("tests/fixtures/cases/{name}");
        let (report, kept, _) = ingest_file(&repo_root().join(&path));
        assert!(report.tar_archive, "{name}");
        assert_eq!(report.compression, compression);
        let sources: Vec<(&str, u64)> = kept
            .iter()
            .map(|tweet| (tweet.source.key.as_str(), tweet.source.line))
            .collect();
        let member = format!("{path}!tweets.jsonl");
        assert_eq!(sources, [(member.as_str(), 1), (member.as_str(), 2)]);
    }
}

#[test]
fn every_case_file_has_an_expectation() {
    for path in files_under("tests/fixtures/cases") {
        let relative = path
            .strip_prefix(repo_root())
            .expect("under repo")
            .display()
            .to_string();
        assert!(
            EXPECTED.iter().any(|(file, _)| *file == relative),
            "{relative} has no expected outcome"
        );
    }
}

#[test]
fn real_v1_payloads_parse_without_rejections() {
    let files = files_under("tests/fixtures/egg-mode");
    assert!(files.len() >= 10);
    for path in files {
        let (report, tweets, rejections) = ingest_file(&path);
        assert_eq!(report.rejected, 0, "{}: {rejections:?}", path.display());
        let expected_records = if path.ends_with("tweet_array.json") {
            20
        } else {
            1
        };
        assert_eq!(report.records_in, expected_records, "{}", path.display());
        for tweet in &tweets {
            assert!(!tweet.id.is_empty() && !tweet.text.is_empty());
            assert!(
                tweet.created_at.is_some(),
                "{}: v1.1 statuses carry a date",
                path.display()
            );
            assert!(
                tweet.author_handle.is_some(),
                "{}: v1.1 statuses carry their user",
                path.display()
            );
        }
    }
}

#[test]
fn real_v2_payloads_parse_without_rejections_and_resolve_authors() {
    let files = files_under("tests/fixtures/twitter-v2");
    assert!(files.len() >= 5);
    for path in files {
        let (report, tweets, rejections) = ingest_file(&path);
        assert_eq!(report.rejected, 0, "{}: {rejections:?}", path.display());
        assert!(report.records_in >= 1);
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
        let included_users: Vec<&str> = raw["includes"]["users"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|user| user["id"].as_str())
            .collect();
        for tweet in &tweets {
            let included = tweet
                .author_id
                .as_deref()
                .is_some_and(|author| included_users.contains(&author));
            assert_eq!(
                tweet.author_handle.is_some(),
                included,
                "{}: the author of {} is resolved exactly when the response includes it",
                path.display(),
                tweet.id
            );
        }
    }
}

#[test]
fn example_files_add_up_to_the_documented_run() {
    let mut total = Report::default();
    for path in files_under("examples/raw") {
        let (report, _, _) = ingest_file(&path);
        total.absorb(&report);
    }
    use FilterReason::*;
    let expected_filtered: BTreeMap<FilterReason, u64> = [
        (NotATweet, 2),
        (Retweet, 2),
        (AutoGenerated, 2),
        (Empty, 1),
        (TooShort, 1),
        (DuplicateId, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        (
            total.records_in,
            total.kept,
            &total.filtered,
            total.rejected
        ),
        (39, 29, &expected_filtered, 1)
    );
}
