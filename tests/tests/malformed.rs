//! Malformed input never costs the good records beside it: each bad record is rejected alone,
//! with a clear error, and the counts still add up.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use tweets::{IngestOptions, Limits, Report};

fn good(id: u32) -> String {
    format!(
        r#"{{"id_str": "{id}", "text": "Good record number {id} about a late delivery", "lang": "en"}}"#
    )
}

struct Outcome {
    report: Report,
    kept: Vec<tweets::Tweet>,
    kept_ids: Vec<String>,
    errors: Vec<String>,
    rejections: Vec<serde_json::Value>,
}

fn ingest_with(bytes: &[u8], options: &IngestOptions) -> Outcome {
    let (mut clean, mut rejected) = (Vec::new(), Vec::new());
    let report = tweets::ingest_stream(
        "raw/malformed",
        bytes,
        Some(bytes.len() as u64),
        options,
        &mut clean,
        &mut rejected,
        &mut std::io::sink(),
    )
    .expect("malformed input is reported, not an error");
    assert!(report.is_conserved(), "{report:?}");
    let kept: Vec<tweets::Tweet> = String::from_utf8(clean)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("tweet"))
        .collect();
    let kept_ids = kept.iter().map(|tweet| tweet.id.clone()).collect();
    let rejections: Vec<serde_json::Value> = String::from_utf8(rejected)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("rejection JSON"))
        .collect();
    let errors = rejections
        .iter()
        .map(|rejection| rejection["error"].as_str().expect("error text").to_owned())
        .collect();
    Outcome {
        report,
        kept,
        kept_ids,
        errors,
        rejections,
    }
}

fn ingest(bytes: &[u8]) -> Outcome {
    ingest_with(bytes, &IngestOptions::default())
}

/// `good(1)`, `bad`, `good(3)` as JSON Lines.
fn sandwich(bad: &[u8]) -> Vec<u8> {
    let mut bytes = good(1).into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(bad);
    bytes.push(b'\n');
    bytes.extend_from_slice(good(3).as_bytes());
    bytes.push(b'\n');
    bytes
}

fn assert_only_middle_rejected(outcome: &Outcome, error_part: &str) {
    assert_eq!(outcome.kept_ids, vec!["1", "3"]);
    assert_eq!(outcome.report.rejected, 1);
    assert_eq!(outcome.report.records_in, 3);
    assert!(
        outcome.errors[0].contains(error_part),
        "expected `{error_part}` in `{}`",
        outcome.errors[0]
    );
    assert_eq!(outcome.rejections[0]["source"]["line"], 2);
}

#[test]
fn truncated_json_is_rejected_alone() {
    let outcome = ingest(&sandwich(br#"{"id_str": "2", "text": "cut off in the mid"#));
    assert_only_middle_rejected(&outcome, "truncated");
}

#[test]
fn wrong_types_are_rejected_alone_with_the_field_named() {
    let outcome = ingest(&sandwich(br#"{"id_str": "2", "text": 42}"#));
    assert_only_middle_rejected(&outcome, "field `text`: invalid type: integer `42`");
}

#[test]
fn invalid_utf8_is_rejected_alone_and_its_bytes_are_kept_lossily() {
    let outcome = ingest(&sandwich(b"{\"id_str\": \"2\", \"text\": \"caf\xe9\"}"));
    assert_only_middle_rejected(&outcome, "invalid JSON");
    let raw = outcome.rejections[0]["raw"].as_str().expect("raw kept");
    assert!(raw.contains("caf\u{fffd}"), "{raw}");
}

#[test]
fn ten_megabyte_line_is_rejected_alone_with_a_preview() {
    let huge = format!(r#"{{"id_str": "2", "text": "{}"}}"#, "x".repeat(10_000_000));
    let outcome = ingest(&sandwich(huge.as_bytes()));
    assert_only_middle_rejected(&outcome, "larger than the 8388608-byte limit");
    let rejection = &outcome.rejections[0];
    assert_eq!(rejection["bytes"], huge.len());
    assert_eq!(rejection["raw_truncated"], true);
    assert!(
        rejection["raw"]
            .as_str()
            .is_some_and(|raw| raw.starts_with(r#"{"id_str": "2""#))
    );
}

#[test]
fn deep_nesting_is_rejected_alone() {
    let deep = format!(
        r#"{{"id_str": "2", "text": "x", "entities": {}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let outcome = ingest(&sandwich(deep.as_bytes()));
    assert_only_middle_rejected(&outcome, "recursion limit exceeded");
}

#[test]
fn gzip_bomb_is_rejected_after_the_records_before_it_are_kept() {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    writeln!(encoder, "{}", good(1)).expect("gzip write");
    let padding = vec![b' '; 1 << 20];
    for _ in 0..200 {
        encoder.write_all(&padding).expect("gzip write");
    }
    writeln!(encoder, "{}", good(3)).expect("gzip write");
    let bomb = encoder.finish().expect("gzip");
    assert!(
        bomb.len() < 1 << 20,
        "200 MB compresses to {} bytes",
        bomb.len()
    );

    let outcome = ingest(&bomb);
    assert_eq!(outcome.kept_ids, vec!["1"]);
    assert_eq!(outcome.report.rejected, 1);
    assert!(
        outcome.errors[0].contains("gzip bomb"),
        "{}",
        outcome.errors[0]
    );
    assert!(outcome.errors[0].contains("rest of the object was not read"));
    assert!(outcome.rejections[0]["raw"].is_null());
}

#[test]
fn corrupt_gzip_keeps_what_decoded_and_rejects_the_rest() {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    for id in 0..2000 {
        writeln!(encoder, "{}", good(id)).expect("gzip write");
    }
    let complete = encoder.finish().expect("gzip");
    let cut = &complete[..complete.len() * 3 / 4];
    let outcome = ingest(cut);
    assert!(outcome.report.kept > 0 && outcome.report.kept < 2000);
    assert_eq!(outcome.report.rejected, 1, "{:?}", outcome.errors);
    assert!(
        outcome
            .errors
            .iter()
            .any(|error| error.contains("cannot be decoded") || error.contains("truncated")),
        "{:?}",
        outcome.errors
    );
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text).expect("gzip write");
    encoder.finish().expect("gzip")
}

#[test]
fn a_record_cut_off_at_the_end_of_a_gzip_member_is_rejected_alone() {
    // Concatenated gzip files (`cat a.gz b.gz`): the first ends inside a record, the second
    // is a document of another shape. Each member is framed on its own.
    let mut bytes = gzip(format!("{}\n{{\"id_str\": \"2\", \"text\": \"cut", good(1)).as_bytes());
    bytes.extend(gzip(format!("[{}, {}]", good(3), good(4)).as_bytes()));
    bytes.extend(gzip(format!("{}\n", good(5)).as_bytes()));
    let outcome = ingest(&bytes);
    assert_eq!(outcome.kept_ids, vec!["1", "3", "4", "5"]);
    assert_eq!(outcome.report.rejected, 1);
    assert!(
        outcome.errors[0].contains("truncated"),
        "{:?}",
        outcome.errors
    );
    assert_eq!(outcome.rejections[0]["source"]["line"], 2);
    assert!(
        !outcome.rejections[0]["raw"]
            .as_str()
            .expect("raw")
            .contains("Good record number 3"),
        "the next member's record is not swallowed"
    );
}

#[test]
fn object_over_the_size_limit_is_one_clear_rejection() {
    let options = IngestOptions {
        limits: Limits {
            max_object_bytes: 100,
            ..Limits::default()
        },
        ..IngestOptions::default()
    };
    let outcome = ingest_with(&sandwich(b"{}"), &options);
    assert_eq!(outcome.report.records_in, 1);
    assert_eq!(outcome.report.rejected, 1);
    assert!(
        outcome.errors[0].contains("max_object_bytes"),
        "{}",
        outcome.errors[0]
    );
}

#[test]
fn empty_and_whitespace_objects_hold_no_records() {
    for bytes in [&b""[..], b"\n\r\n  \n", b"\xEF\xBB\xBF"] {
        let outcome = ingest(bytes);
        assert_eq!(outcome.report.records_in, 0);
        assert!(outcome.kept_ids.is_empty() && outcome.errors.is_empty());
    }
}

#[test]
fn a_file_of_plain_text_is_rejected_line_by_line() {
    let outcome = ingest(b"this is not json\nnor is this\n");
    assert_eq!(outcome.report.records_in, 2);
    assert_eq!(outcome.report.rejected, 2);
    assert!(
        outcome
            .errors
            .iter()
            .all(|error| error.contains("invalid JSON"))
    );
}

/// A v1.1 search response of `count` statuses, pretty-printed, about 2.2 KB per status.
fn search_response(count: u32) -> String {
    let statuses: Vec<String> = (0..count)
        .map(|id| {
            format!(
                r#"{{"id_str": "{id}", "text": "Search hit {id} about a late delivery", "lang": "en",
      "user": {{"id_str": "7", "screen_name": "shopper", "description": "{}"}}}}"#,
                "profile ".repeat(260)
            )
        })
        .collect();
    format!(
        "{{\n  \"search_metadata\": {{\"count\": {count}}},\n  \"statuses\": [\n    {}\n  ]\n}}\n",
        statuses.join(",\n    ")
    )
}

#[test]
fn a_search_response_larger_than_the_record_limit_keeps_every_tweet() {
    let response = search_response(4_500);
    let limits = Limits::default();
    assert!(
        response.len() > limits.max_record_bytes,
        "{}",
        response.len()
    );
    let outcome = ingest(response.as_bytes());
    assert_eq!(outcome.report.records_in, 4_500);
    assert_eq!(outcome.report.kept, 4_500, "{:?}", outcome.errors.first());
    let expected: Vec<String> = (0..4_500).map(|id| id.to_string()).collect();
    assert_eq!(outcome.kept_ids, expected);
    let last = &outcome.kept[4_499].source;
    assert_eq!(last.line, 4 + 2 * 4_499, "each status keeps its own line");
    assert_eq!(
        &response.as_bytes()[last.offset as usize..][..16],
        b"{\"id_str\": \"4499"
    );
}

#[test]
fn a_v2_response_over_the_limit_resolves_authors_from_includes_that_come_after_its_data() {
    let data: Vec<String> = (0..200)
        .map(|id| {
            format!(r#"{{"id": "{id}", "text": "Reply {id} about my refund", "author_id": "{}", "lang": "en"}}"#, id % 3)
        })
        .collect();
    let response = format!(
        r#"{{"data": [{}], "includes": {{"users": [{{"id": "0", "username": "ann"}}, {{"id": "1", "username": "bo"}}]}}, "meta": {{"result_count": 200}}}}"#,
        data.join(", ")
    );
    let options = IngestOptions {
        limits: Limits {
            max_record_bytes: 4096,
            ..Limits::default()
        },
        ..IngestOptions::default()
    };
    let outcome = ingest_with(response.as_bytes(), &options);
    assert_eq!(outcome.report.records_in, 200);
    assert_eq!(outcome.report.kept, 200, "{:?}", outcome.errors.first());
    let handles: Vec<Option<&str>> = outcome.kept[..4]
        .iter()
        .map(|tweet| tweet.author_handle.as_deref())
        .collect();
    assert_eq!(handles, [Some("ann"), Some("bo"), None, Some("ann")]);
}

#[test]
fn an_unreadable_envelope_is_one_rejection_and_its_tweets_are_kept() {
    let response = concat!(
        r#"{"data": [{"id": "1", "text": "Good record number 1 about a late delivery", "lang": "en"},"#,
        r#" {"id": "2", "text": 7}, {"id": "3", "text": "Good record number 3 about a late delivery", "lang": "en"}],"#,
        r#" "includes": {"users": "not a list"}}"#
    );
    let outcome = ingest(response.as_bytes());
    assert_eq!(outcome.kept_ids, ["1", "3"]);
    assert_eq!(outcome.report.records_in, 4);
    assert_eq!(outcome.report.rejected, 2);
    assert!(
        outcome.errors[0].contains("field `text`"),
        "{}",
        outcome.errors[0]
    );
    assert_eq!(outcome.rejections[0]["raw"], r#"{"id": "2", "text": 7}"#);
    assert!(
        outcome.errors[1].contains("includes"),
        "{}",
        outcome.errors[1]
    );
    assert_eq!(outcome.rejections[1]["bytes"], response.len());
}
