//! Figures quoted in several places come from one: the benchmark. The pace a clean part is
//! sized by (BENCHMARKS.md's whole-input throughput with every product in f32, what arm64
//! runs) is what the README, the template's parameter description and the default's doc
//! comment cite, and the seconds a part takes follow from it and the default part size.

use integration_tests::repo_root;
use pipeline::IngestConfig;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// BENCHMARKS.md's whole-input tweets/s of the f32 products (the row's last cell).
fn f32_pace() -> String {
    let benchmarks = read("BENCHMARKS.md");
    let row = benchmarks
        .lines()
        .find(|line| line.starts_with("| Candle, every product in f32 (as on arm64) |"))
        .expect("BENCHMARKS.md has the f32 row");
    let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
    let whole_input = cells.last().expect("cells");
    whole_input
        .split_whitespace()
        .next()
        .expect("a figure")
        .to_owned()
}

#[test]
fn the_part_size_pace_is_the_benchmarks_everywhere_it_is_quoted() {
    let pace = f32_pace();
    let tweets_per_s: f64 = pace.parse().expect("a number");
    let part = IngestConfig::DEFAULT_PART_MAX_TWEETS.get() as f64;
    let seconds = ((part / tweets_per_s) / 5.0).round() * 5.0;
    let cited = [
        (
            "README.md",
            format!("{pace} tweets/s with every product in f32"),
        ),
        ("README.md", format!("about {seconds} s a part")),
        (
            "README.md",
            format!("{tweets_per_s:.0} tweets/s with multilingual-e5-small"),
        ),
        ("infra/template.yaml", format!("({pace} tweets/s)")),
        (
            "infra/template.yaml",
            format!("about {seconds} s at the benchmarked"),
        ),
        (
            "shared/pipeline/src/config.rs",
            format!("BENCHMARKS.md: {pace}"),
        ),
        (
            "shared/pipeline/src/config.rs",
            format!("about {seconds} s a part"),
        ),
    ];
    for (path, phrase) in cited {
        let text = read(path).split_whitespace().collect::<Vec<_>>().join(" ");
        let text = text.replace(" /// ", " ");
        assert!(
            text.contains(&phrase),
            "{path} should quote {phrase:?} (BENCHMARKS.md: {pace} tweets/s)"
        );
    }
}
