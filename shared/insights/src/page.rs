//! The page: one HTML document with its CSS and SVG inline, no scripts and nothing fetched,
//! so it reads the same opened from a file, from S3 or from a mail attachment. Every chart
//! carries its numbers in `data-` attributes, which the browser test reads back.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::{Example, Insights, Ranked, SourceFunnel};

/// Rows shown in each ranking.
const RANKED_ROWS: usize = 15;
/// Languages drawn one by one; the rest share a bar.
const LANGUAGE_BARS: usize = 12;

const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       margin: 0 auto; max-width: 980px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; }
.meta { color: #57606a; margin: 0 0 16px; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; }
.tile { border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 14px; min-width: 120px; }
.tile b { display: block; font-size: 22px; }
table { border-collapse: collapse; width: 100%; } td, th { padding: 4px 8px; text-align: left;
       border-bottom: 1px solid #eaeef2; vertical-align: top; } th { font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bar { background: #eaeef2; height: 10px; width: 120px; border-radius: 2px; }
.bar span { display: block; height: 10px; background: #cf222e; border-radius: 2px; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.tweet { border-left: 3px solid #d0d7de; padding: 4px 10px; margin: 6px 0; }
.tweet small { color: #57606a; }
details { margin: 4px 0; } summary { cursor: pointer; }
svg text { font: 11px system-ui, sans-serif; fill: #57606a; }
.note { color: #57606a; font-size: 13px; }
"#;

/// The whole page.
pub fn render(insights: &Insights) -> String {
    let total = insights.funnel.total();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "tweetclf report: " (insights.source) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "What the tweets say" }
                p.meta { (meta_line(insights)) }
                (tiles(insights, &total))
                h2 { "Label share per day" }
                (legend(&insights.labels))
                (share_per_day(insights))
                h2 { "Labels per language" }
                (per_language(insights))
                @if let Some(focus) = &insights.focus {
                    h2 { "Hashtags and accounts with the most " (focus) " share" }
                    (ranking(&insights.topics, focus, insights.min_tweets, "topics"))
                    h2 { "Authors with the most " (focus) " tweets" }
                    (authors(&insights.authors, focus, insights.min_tweets))
                }
                @for (label, examples) in &insights.most {
                    h2 { "Most " (label) " tweets" }
                    (examples_list(label, examples))
                }
                h2 { "From records to predictions" }
                (funnel(&total))
                (sources(insights))
                @if insights.unreadable_total > 0 {
                    h2 { "Could not be read (" (insights.unreadable_total) ")" }
                    ul data-list="unreadable" {
                        @for item in &insights.unreadable {
                            li { code { (item.key) } ": " (item.error) }
                        }
                    }
                    @if insights.unreadable_total > insights.unreadable.len() as u64 {
                        p.note { "The first " (insights.unreadable.len()) " are listed." }
                    }
                }
            }
        }
    }
    .into_string()
}

fn meta_line(insights: &Insights) -> String {
    let days: Vec<&String> = insights
        .by_day
        .keys()
        .filter(|day| *day != "undated")
        .collect();
    let period = match (days.first(), days.last()) {
        (Some(first), Some(last)) if first == last => format!("tweets of {first}"),
        (Some(first), Some(last)) => format!("tweets of {first} to {last}"),
        _ => "tweets without dates".to_owned(),
    };
    let models: Vec<String> = insights
        .models
        .iter()
        .map(|model| format!("{} {}", model.name, model.version))
        .collect();
    format!(
        "{}, {period}, classified by {}",
        insights.source,
        if models.is_empty() {
            "an unknown model".to_owned()
        } else {
            models.join(" and ")
        }
    )
}

fn tiles(insights: &Insights, total: &SourceFunnel) -> Markup {
    let shares = label_totals(&insights.by_day);
    // From the manifests; from the predictions read when the manifests are gone (they
    // expire before the predictions in the stack's bucket).
    let classified = match insights.funnel.sources.is_empty() {
        true => insights.predictions,
        false => total.classified,
    };
    html! {
        div.tiles {
            div.tile { b data-tile="records-in" { (total.records_in) } "records in" }
            div.tile { b data-tile="kept" { (total.kept) } "kept" }
            div.tile { b data-tile="filtered" { (total.filtered_total()) } "filtered" }
            div.tile { b data-tile="rejected" { (total.rejected) } "rejected" }
            div.tile { b data-tile="classified" { (classified) } "classified" }
            @for (label, count) in &shares {
                div.tile {
                    b { (percent(*count, insights.predictions)) }
                    (label)
                }
            }
        }
    }
}

fn label_totals(by_key: &BTreeMap<String, BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for counts in by_key.values() {
        for (label, count) in counts {
            *totals.entry(label.clone()).or_default() += count;
        }
    }
    totals
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", 100.0 * part as f64 / whole.max(1) as f64)
}

/// Sentiment labels in the colours a reader expects; other labels from a palette.
fn colour(labels: &[String], label: &str) -> &'static str {
    const PALETTE: [&str; 8] = [
        "#0969da", "#bf8700", "#8250df", "#1a7f37", "#cf222e", "#57606a", "#e16f24", "#116329",
    ];
    match label {
        "negative" => "#cf222e",
        "neutral" => "#8c959f",
        "positive" => "#2da44e",
        other => {
            let index = labels.iter().position(|known| known == other).unwrap_or(0);
            PALETTE[index % PALETTE.len()]
        }
    }
}

fn legend(labels: &[String]) -> Markup {
    html! {
        p.legend data-legend="labels" {
            @for label in labels {
                span { i style={ "background:" (colour(labels, label)) } {} (label) }
            }
        }
    }
}

/// One bar per day, 100 % high, split by label share; a tooltip gives each count.
fn share_per_day(insights: &Insights) -> Markup {
    const WIDTH: f64 = 930.0;
    const HEIGHT: f64 = 220.0;
    const TOP: f64 = 8.0;
    const BOTTOM: f64 = 40.0;
    let days = &insights.by_day;
    let slot = (WIDTH - 40.0) / days.len().max(1) as f64;
    let bar = (slot * 0.8).min(48.0);
    let plot = HEIGHT - TOP - BOTTOM;
    let label_every = (days.len() / 14).max(1);
    let total: u64 = days.values().flat_map(BTreeMap::values).sum();
    html! {
        svg data-chart="label-share-per-day" data-total=(total) width=(WIDTH) height=(HEIGHT)
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label="Label share per day" {
            text x="0" y=(TOP + 8.0) { "100%" }
            text x="0" y=(TOP + plot) { "0%" }
            @for (index, (day, counts)) in days.iter().enumerate() {
                @let day_total: u64 = counts.values().sum();
                @let x = 40.0 + index as f64 * slot;
                g data-day=(day) data-tweets=(day_total) {
                    @let mut y = TOP + plot;
                    @for (label, count) in counts {
                        @let height = plot * *count as f64 / day_total.max(1) as f64;
                        @let top = { y -= height; y };
                        rect x=(fmt(x)) y=(fmt(top)) width=(fmt(bar)) height=(fmt(height))
                            fill=(colour(&insights.labels, label)) data-label=(label)
                            data-count=(count) {
                            title { (day) " " (label) ": " (count) " of " (day_total) " ("
                                (percent(*count, day_total)) ")" }
                        }
                    }
                    @if index % label_every == 0 {
                        text x=(fmt(x)) y=(HEIGHT - BOTTOM + 14.0) { (short_day(day)) }
                        text x=(fmt(x)) y=(HEIGHT - BOTTOM + 28.0) { "n=" (day_total) }
                    }
                }
            }
        }
    }
}

fn fmt(value: f64) -> String {
    format!("{value:.1}")
}

/// `2024-05-01` → `05-01`; `undated` stays.
fn short_day(day: &str) -> &str {
    match day.len() {
        10 => &day[5..],
        _ => day,
    }
}

/// One horizontal bar per language, its length its tweets, split by label.
fn per_language(insights: &Insights) -> Markup {
    const WIDTH: f64 = 930.0;
    const ROW: f64 = 22.0;
    const LEFT: f64 = 60.0;
    let mut languages: Vec<(String, BTreeMap<String, u64>)> = insights
        .by_language
        .iter()
        .map(|(lang, counts)| (lang.clone(), counts.clone()))
        .collect();
    languages.sort_by_key(|(lang, counts)| {
        (
            std::cmp::Reverse(counts.values().sum::<u64>()),
            lang.clone(),
        )
    });
    if languages.len() > LANGUAGE_BARS {
        let rest = languages.split_off(LANGUAGE_BARS - 1);
        let mut others = BTreeMap::new();
        for (_, counts) in rest {
            for (label, count) in counts {
                *others.entry(label).or_default() += count;
            }
        }
        languages.push(("others".to_owned(), others));
    }
    let widest = languages
        .iter()
        .map(|(_, counts)| counts.values().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    let scale = (WIDTH - LEFT - 80.0) / widest as f64;
    let height = ROW * languages.len() as f64 + 4.0;
    let total: u64 = languages
        .iter()
        .flat_map(|(_, counts)| counts.values())
        .sum();
    html! {
        svg data-chart="labels-per-language" data-total=(total) width=(WIDTH) height=(height)
            viewBox={ "0 0 " (WIDTH) " " (height) } role="img" aria-label="Labels per language" {
            @for (row, (lang, counts)) in languages.iter().enumerate() {
                @let y = row as f64 * ROW;
                @let lang_total: u64 = counts.values().sum();
                g data-language=(lang) data-tweets=(lang_total) {
                    text x="0" y=(fmt(y + 15.0)) { (lang) }
                    @let mut x = LEFT;
                    @for (label, count) in counts {
                        @let width = scale * *count as f64;
                        @let left = { let left = x; x += width; left };
                        rect x=(fmt(left)) y=(fmt(y + 3.0)) width=(fmt(width)) height="16"
                            fill=(colour(&insights.labels, label)) data-label=(label)
                            data-count=(count) {
                            title { (lang) " " (label) ": " (count) " of " (lang_total) " ("
                                (percent(*count, lang_total)) ")" }
                        }
                    }
                    text x=(fmt(x + 6.0)) y=(fmt(y + 15.0)) { (lang_total) }
                }
            }
        }
    }
}

fn ranking(rows: &[Ranked], focus: &str, min: u64, name: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.note { "None seen in " (min) " tweets or more." }
        } @else {
            table data-table=(name) {
                tr { th { "" } th.n { "tweets" } th.n { (focus) } th.n { "share" } th { "" } }
                @for row in rows.iter().take(RANKED_ROWS) {
                    tr data-name=(row.name) data-tweets=(row.tweets) data-focus=(row.focus) {
                        td { (row.name) }
                        td.n { (row.tweets) }
                        td.n { (row.focus) }
                        td.n { (percent(row.focus, row.tweets)) }
                        td { div.bar { span style={ "width:" (fmt(100.0 * row.share())) "%" } {} } }
                    }
                }
            }
            p.note { "Those seen in at least " (min) " tweets; " (rows.len()) " in all." }
        }
    }
}

fn authors(rows: &[Ranked], focus: &str, min: u64) -> Markup {
    let mut by_count: Vec<Ranked> = rows.iter().filter(|row| row.focus > 0).cloned().collect();
    by_count.sort_by(|a, b| {
        b.focus
            .cmp(&a.focus)
            .then(b.tweets.cmp(&a.tweets))
            .then(a.name.cmp(&b.name))
    });
    ranking(&by_count, focus, min, "authors")
}

fn examples_list(label: &str, examples: &[Example]) -> Markup {
    html! {
        div data-list={ "most-" (label) } {
            @for example in examples {
                div.tweet data-id=(example.id) {
                    (example.text)
                    br;
                    small {
                        (label) " " (format!("{:.2}", example.score)) " · "
                        (example.author.as_deref().map_or("unknown author".to_owned(), |a| format!("@{a}")))
                        " · " (example.day)
                    }
                }
            }
        }
    }
}

/// Records in, what became of them, and the predictions made from the kept ones.
fn funnel(total: &SourceFunnel) -> Markup {
    const WIDTH: f64 = 930.0;
    const LEFT: f64 = 190.0;
    const ROW: f64 = 24.0;
    let mut rows: Vec<(String, &str, u64, &str)> = vec![
        (
            "records in".to_owned(),
            "records-in",
            total.records_in,
            "#0969da",
        ),
        ("kept".to_owned(), "kept", total.kept, "#2da44e"),
    ];
    for (reason, count) in &total.filtered {
        rows.push((format!("filtered: {reason}"), "filtered", *count, "#bf8700"));
    }
    rows.push(("rejected".to_owned(), "rejected", total.rejected, "#cf222e"));
    rows.push((
        "classified".to_owned(),
        "classified",
        total.classified,
        "#8250df",
    ));
    rows.push((
        "unreadable clean lines".to_owned(),
        "classify-rejected",
        total.classify_rejected,
        "#cf222e",
    ));
    let scale = (WIDTH - LEFT - 80.0) / total.records_in.max(1) as f64;
    let height = ROW * rows.len() as f64;
    html! {
        svg data-chart="funnel" data-records-in=(total.records_in) data-kept=(total.kept)
            data-filtered=(total.filtered_total()) data-rejected=(total.rejected)
            data-classified=(total.classified) width=(WIDTH) height=(height)
            viewBox={ "0 0 " (WIDTH) " " (height) } role="img" aria-label="From records to predictions" {
            @for (index, (name, step, count, fill)) in rows.iter().enumerate() {
                @let y = index as f64 * ROW;
                g data-step=(step) {
                    text x="0" y=(fmt(y + 16.0)) { (name) }
                    rect x=(LEFT) y=(fmt(y + 4.0)) width=(fmt(scale * *count as f64)) height="16"
                        fill=(fill) data-count=(count) {
                        title { (name) ": " (count) }
                    }
                    text x=(fmt(LEFT + scale * *count as f64 + 6.0)) y=(fmt(y + 16.0)) {
                        (count) " (" (percent(*count, total.records_in)) ")"
                    }
                }
            }
        }
        @if total.records_in == 0 {
            p.note data-note="no-manifests" {
                "No ingest manifests were found (in the stack they expire after "
                "ManifestRetentionDays): the funnel is empty, and the charts above come from "
                "the predictions alone."
            }
        }
        p.note {
            "records in = kept + filtered + rejected: " (total.records_in) " = " (total.kept)
            " + " (total.filtered_total()) " + " (total.rejected)
            ". Kept tweets classified: " (total.classified) " of " (total.kept)
            @if total.parts_classified < total.parts {
                " (" (total.parts - total.parts_classified) " of " (total.parts)
                " clean parts not classified yet)"
            }
            "."
        }
    }
}

/// The same numbers per raw object, folded away until asked for.
fn sources(insights: &Insights) -> Markup {
    html! {
        details data-list="sources" {
            summary { "Per source object (" (insights.funnel.sources.len()) ")" }
            table {
                tr {
                    th { "object" } th.n { "records in" } th.n { "kept" } th.n { "filtered" }
                    th.n { "rejected" } th.n { "classified" }
                }
                @for (key, source) in &insights.funnel.sources {
                    tr data-source=(key) {
                        td { code { (key) } }
                        td.n { (source.records_in) }
                        td.n { (source.kept) }
                        td.n title=(filtered_reasons(source)) { (source.filtered_total()) }
                        td.n { (source.rejected) }
                        td.n { (source.classified) }
                    }
                }
            }
        }
    }
}

fn filtered_reasons(source: &SourceFunnel) -> String {
    source
        .filtered
        .iter()
        .map(|(reason, count)| format!("{reason}: {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}
