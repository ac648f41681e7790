//! Any key as a raw or clean object: its outputs are derived from it alone, never land under
//! a trigger prefix, and the part keys of one raw object are recognised as its own and no
//! other object's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline::Prefixes;

fuzz_target!(|data: (&str, &str, u16, u16)| {
    let (first, second, index, count) = data;
    let layout = Prefixes::default();
    let (index, count) = (usize::from(index), usize::from(count).max(1));
    for relative in [first, second] {
        let raw = format!("{}{relative}", layout.raw);
        let Ok(keys) = layout.ingest_keys(&raw) else {
            continue;
        };
        let part = keys.clean_part(index, count);
        assert!(keys.is_clean_part(&part), "{part}");
        for output in [&part, &keys.rejected, &keys.filtered, &keys.manifest] {
            assert!(!output.starts_with(&layout.raw), "{output}");
        }
        let classified = layout.classify_keys(&part).expect("a part is a clean key");
        for output in [
            &classified.predictions,
            &classified.rejected,
            &classified.manifest,
        ] {
            assert!(!output.starts_with(&layout.clean) && !output.starts_with(&layout.raw));
        }
    }
    // Two different raw objects never claim each other's parts.
    if first != second {
        let keys = |relative: &str| layout.ingest_keys(&format!("{}{relative}", layout.raw));
        if let (Ok(a), Ok(b)) = (keys(first), keys(second)) {
            assert!(
                !a.is_clean_part(&b.clean_part(index, count)),
                "{first} / {second}"
            );
        }
    }
});
