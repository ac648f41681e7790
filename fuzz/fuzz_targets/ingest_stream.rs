//! Any bytes as a raw object: format detection, decompression, framing and the v1.1 / v2
//! normalizers. Every record read ends as exactly one kept line, filtered line or rejected
//! line, and the report's counts say so.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tweets::{IngestOptions, Limits};

fuzz_target!(|data: &[u8]| {
    let options = IngestOptions {
        // Small limits so that the size guards are reached too.
        limits: Limits {
            max_object_bytes: 1 << 20,
            max_decompressed_bytes: 4 << 20,
            max_expansion_ratio: 100,
            max_record_bytes: 4 << 10,
        },
        ..IngestOptions::default()
    };
    let (mut kept, mut rejected, mut filtered) = (Vec::new(), Vec::new(), Vec::new());
    let report = tweets::ingest_stream(
        "raw/fuzz",
        data,
        Some(data.len() as u64),
        &options,
        &mut kept,
        &mut rejected,
        &mut filtered,
    )
    .expect("in-memory input and outputs cannot fail to read or write");
    assert!(report.is_conserved(), "{report:?}");
    let lines = |bytes: &[u8]| bytes.iter().filter(|byte| **byte == b'\n').count() as u64;
    assert_eq!(lines(&kept), report.kept);
    assert_eq!(lines(&rejected), report.rejected);
    assert_eq!(lines(&filtered), report.filtered_total());
    for line in kept
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        let tweet: tweets::Tweet = serde_json::from_slice(line).expect("kept lines are tweets");
        assert!(tweet.source.index < report.records_in);
    }
});
