//! What a run (or a bucket prefix) says, for a person: read once, streaming, from its
//! predictions and manifests through the storage ports, then drawn as one self-contained
//! HTML page (`page`). Only running totals are kept, never the predictions themselves, so a
//! million predictions take the memory of their distinct days, languages, topics and
//! authors.

mod page;

use std::collections::{BTreeMap, HashMap};

use pipeline::keys::Prefixes;
use pipeline::ports::{ReadWholeError, read_whole};
use pipeline::{ClassifyManifest, IngestManifest, ListObjects, PredictionRecord, ReadObject};
use pipeline::{ModelInfo, StoreError};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

pub use page::render;

/// Unreadable objects and lines listed by name; the rest are counted.
pub const UNREADABLE_SHOWN: usize = 50;

/// The label whose share the page follows (`negative` when the model has it).
const FOCUS_LABEL: &str = "negative";
/// The label shown opposite it, when the model has it.
const OPPOSITE_LABEL: &str = "positive";

/// What to keep while reading.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Hashtags, accounts and authors seen in fewer tweets are left off the rankings.
    pub min_tweets: u64,
    /// Tweets kept for each "most …" list.
    pub top_tweets: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_tweets: 3,
            top_tweets: 10,
        }
    }
}

/// Everything the page shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Insights {
    /// Where it was read from, as the user named it.
    pub source: String,
    pub models: Vec<ModelInfo>,
    /// Every label seen, sorted.
    pub labels: Vec<String>,
    /// The label whose share the rankings follow, if the model has `negative`.
    pub focus: Option<String>,
    pub predictions: u64,
    /// Predictions with no label (multi-label, none over its threshold).
    pub unlabelled: u64,
    /// Tweets per label per day posted (`undated` for tweets without a date).
    pub by_day: BTreeMap<String, BTreeMap<String, u64>>,
    /// Tweets per label per language (`und` when unknown).
    pub by_language: BTreeMap<String, BTreeMap<String, u64>>,
    /// Hashtags (`#…`) and mentioned accounts (`@…`), lower-cased.
    pub topics: Vec<Ranked>,
    pub authors: Vec<Ranked>,
    /// The most confident tweets labelled with the focus label, and with its opposite.
    pub most: BTreeMap<String, Vec<Example>>,
    pub funnel: Funnel,
    /// The first objects or lines that could not be read as what their prefix says, with
    /// why (at most `UNREADABLE_SHOWN`: a broken dump must not fill the page or the memory).
    pub unreadable: Vec<Unreadable>,
    /// How many could not be read in all.
    pub unreadable_total: u64,
    /// Options the rankings were made with.
    pub min_tweets: u64,
}

/// A hashtag, account or author: its tweets and how many of them carry the focus label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    pub name: String,
    pub tweets: u64,
    pub focus: u64,
}

impl Ranked {
    pub fn share(&self) -> f64 {
        self.focus as f64 / self.tweets.max(1) as f64
    }
}

/// One tweet shown whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub id: String,
    pub score: f32,
    pub text: String,
    pub author: Option<String>,
    pub day: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub key: String,
    pub error: String,
}

/// Records in to predictions out, per raw object, from the manifests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Funnel {
    pub sources: BTreeMap<String, SourceFunnel>,
}

impl Funnel {
    pub fn total(&self) -> SourceFunnel {
        let mut total = SourceFunnel::default();
        for source in self.sources.values() {
            total.absorb(source);
        }
        total
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceFunnel {
    pub records_in: u64,
    pub kept: u64,
    pub filtered: BTreeMap<String, u64>,
    pub rejected: u64,
    pub parts: u64,
    /// Parts with a classify manifest.
    pub parts_classified: u64,
    pub classified: u64,
    /// Clean lines classify could not read.
    pub classify_rejected: u64,
}

impl SourceFunnel {
    pub fn filtered_total(&self) -> u64 {
        self.filtered.values().sum()
    }

    fn absorb(&mut self, other: &Self) {
        self.records_in += other.records_in;
        self.kept += other.kept;
        for (reason, count) in &other.filtered {
            *self.filtered.entry(reason.clone()).or_default() += count;
        }
        self.rejected += other.rejected;
        self.parts += other.parts;
        self.parts_classified += other.parts_classified;
        self.classified += other.classified;
        self.classify_rejected += other.classify_rejected;
    }
}

/// Why nothing could be reported.
#[derive(Debug, thiserror::Error)]
pub enum InsightsError {
    #[error("listing `{prefix}`")]
    List {
        prefix: String,
        #[source]
        source: StoreError,
    },
    #[error("reading `{key}`")]
    Read {
        key: String,
        #[source]
        source: ReadWholeError,
    },
    #[error(
        "no manifests and no predictions under this location: expected a run's output folder \
         or a bucket prefix with manifests/ and predictions/"
    )]
    Empty,
}

/// Where reading is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub objects_read: usize,
    pub objects: usize,
}

/// Reads the manifests, then the predictions, one object at a time.
pub async fn collect<S: ReadObject + ListObjects>(
    store: &S,
    prefixes: &Prefixes,
    options: &Options,
    mut progress: impl FnMut(Progress),
) -> Result<Insights, InsightsError> {
    let ingest = list(store, &format!("{}ingest/", prefixes.manifests)).await?;
    let classify = list(store, &format!("{}classify/", prefixes.manifests)).await?;
    // The JSON Lines when there are any; else the Parquet (a bucket may keep only those).
    let mut predictions = list(store, &prefixes.predictions).await?;
    let parquet = predictions.is_empty();
    if parquet {
        predictions = list(store, &prefixes.predictions_parquet).await?;
    }
    if ingest.is_empty() && classify.is_empty() && predictions.is_empty() {
        return Err(InsightsError::Empty);
    }
    let objects = ingest.len() + classify.len() + predictions.len();
    let mut reading = Reading::new(options);
    let mut objects_read = 0;
    let mut step = || {
        objects_read += 1;
        progress(Progress {
            objects_read,
            objects,
        });
    };
    for key in &ingest {
        match serde_json::from_slice::<IngestManifest>(&read_all(store, key).await?) {
            Ok(manifest) => reading.ingested(&manifest),
            Err(error) => reading.unreadable(key, &error),
        }
        step();
    }
    for key in &classify {
        match serde_json::from_slice::<ClassifyManifest>(&read_all(store, key).await?) {
            Ok(manifest) => reading.classified(&manifest),
            Err(error) => reading.unreadable(key, &error),
        }
        step();
    }
    for key in &predictions {
        match parquet {
            true => reading.prediction_table(store, key).await?,
            false => reading.prediction_lines(store, key).await?,
        }
        step();
    }
    Ok(reading.finish())
}

async fn list<S: ListObjects>(store: &S, prefix: &str) -> Result<Vec<String>, InsightsError> {
    store
        .list(prefix)
        .await
        .map_err(|source| InsightsError::List {
            prefix: prefix.to_owned(),
            source,
        })
}

async fn read_all<S: ReadObject>(store: &S, key: &str) -> Result<Vec<u8>, InsightsError> {
    read_whole(store, key)
        .await
        .map_err(|source| InsightsError::Read {
            key: key.to_owned(),
            source,
        })
}

/// The running totals while reading.
struct Reading {
    options: Options,
    insights: Insights,
    /// Clean part → its raw object, from the ingest manifests.
    part_sources: HashMap<String, String>,
    topics: HashMap<String, Ranked>,
    authors: HashMap<String, Ranked>,
}

impl Reading {
    fn new(options: &Options) -> Self {
        Self {
            options: *options,
            insights: Insights {
                min_tweets: options.min_tweets,
                ..Insights::default()
            },
            part_sources: HashMap::new(),
            topics: HashMap::new(),
            authors: HashMap::new(),
        }
    }

    fn unreadable(&mut self, key: &str, error: &dyn std::error::Error) {
        self.insights.unreadable_total += 1;
        if self.insights.unreadable.len() == UNREADABLE_SHOWN {
            return;
        }
        self.insights.unreadable.push(Unreadable {
            key: key.to_owned(),
            error: error.to_string(),
        });
    }

    fn ingested(&mut self, manifest: &IngestManifest) {
        let report = &manifest.report;
        let source = self
            .insights
            .funnel
            .sources
            .entry(manifest.input.clone())
            .or_default();
        source.records_in += report.records_in;
        source.kept += report.kept;
        source.rejected += report.rejected;
        for (reason, count) in &report.filtered {
            *source
                .filtered
                .entry(reason.as_str().to_owned())
                .or_default() += count;
        }
        source.parts += manifest.outputs.clean_parts.len() as u64;
        for part in &manifest.outputs.clean_parts {
            self.part_sources
                .insert(part.clone(), manifest.input.clone());
        }
    }

    fn classified(&mut self, manifest: &ClassifyManifest) {
        let input = self
            .part_sources
            .get(&manifest.input)
            .cloned()
            .unwrap_or_else(|| format!("{} (no ingest manifest)", manifest.input));
        let source = self.insights.funnel.sources.entry(input).or_default();
        source.parts_classified += 1;
        source.classified += manifest.predicted;
        source.classify_rejected += manifest.rejected;
        if !self.insights.models.contains(&manifest.model) {
            self.insights.models.push(manifest.model.clone());
        }
    }

    async fn prediction_lines<S: ReadObject>(
        &mut self,
        store: &S,
        key: &str,
    ) -> Result<(), InsightsError> {
        let unreadable = |source| InsightsError::Read {
            key: key.to_owned(),
            source,
        };
        let body = store
            .get(key)
            .await
            .map_err(|error| unreadable(error.into()))?;
        let mut lines = BufReader::new(body.reader).lines();
        let mut number = 0;
        while let Some(line) = lines.next_line().await.map_err(|source| {
            unreadable(ReadWholeError::Body {
                key: key.to_owned(),
                source,
            })
        })? {
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<PredictionRecord>(&line) {
                Ok(record) => self.prediction(record),
                Err(error) => self.unreadable(&format!("{key} line {number}"), &error),
            }
        }
        Ok(())
    }

    /// One Parquet object: a day of one part at most, so its rows are read at once.
    async fn prediction_table<S: ReadObject>(
        &mut self,
        store: &S,
        key: &str,
    ) -> Result<(), InsightsError> {
        match pipeline::parquet_table::read_records(read_all(store, key).await?) {
            Ok(records) => records
                .into_iter()
                .for_each(|record| self.prediction(record)),
            Err(error) => self.unreadable(key, &error),
        }
        Ok(())
    }

    fn prediction(&mut self, record: PredictionRecord) {
        let insights = &mut self.insights;
        insights.predictions += 1;
        let labels = match (&record.labels[..], &record.label) {
            ([], Some(label)) => vec![label.clone()],
            (labels, _) => labels.to_vec(),
        };
        if labels.is_empty() {
            insights.unlabelled += 1;
        }
        let day = record
            .created_at
            .map_or_else(|| "undated".to_owned(), |at| at.date_naive().to_string());
        let lang = record.lang.clone().unwrap_or_else(|| "und".to_owned());
        for label in &labels {
            *insights
                .by_day
                .entry(day.clone())
                .or_default()
                .entry(label.clone())
                .or_default() += 1;
            *insights
                .by_language
                .entry(lang.clone())
                .or_default()
                .entry(label.clone())
                .or_default() += 1;
            if !insights.labels.contains(label) {
                insights.labels.push(label.clone());
                insights.labels.sort();
            }
        }
        let focused = labels.iter().any(|label| label == FOCUS_LABEL);
        let (hashtags, mentions) = tweets::formats::hashtags_and_mentions(&record.text);
        let mut topics: Vec<String> = hashtags
            .iter()
            .map(|tag| format!("#{}", tag.to_lowercase()))
            .chain(
                mentions
                    .iter()
                    .map(|name| format!("@{}", name.to_lowercase())),
            )
            .collect();
        topics.sort();
        topics.dedup();
        for topic in topics {
            count(&mut self.topics, topic, focused);
        }
        if let Some(author) = record.author_handle.clone().or(record.author_id.clone()) {
            count(&mut self.authors, author, focused);
        }
        for label in [FOCUS_LABEL, OPPOSITE_LABEL] {
            if !labels.iter().any(|decided| decided == label) {
                continue;
            }
            if let Some(&score) = record.scores.get(label) {
                keep_top(
                    insights.most.entry(label.to_owned()).or_default(),
                    score,
                    self.options.top_tweets,
                    || Example {
                        id: record.id.clone(),
                        score,
                        text: record.text.clone(),
                        author: record.author_handle.clone(),
                        day: day.clone(),
                    },
                );
            }
        }
    }

    fn finish(mut self) -> Insights {
        let min = self.options.min_tweets;
        self.insights.topics = ranked(self.topics, min);
        self.insights.authors = ranked(self.authors, min);
        let labels = &self.insights.labels;
        self.insights.focus = labels.iter().find(|label| *label == FOCUS_LABEL).cloned();
        self.insights
    }
}

fn count(counts: &mut HashMap<String, Ranked>, name: String, focused: bool) {
    let entry = counts.entry(name.clone()).or_insert(Ranked {
        name,
        tweets: 0,
        focus: 0,
    });
    entry.tweets += 1;
    entry.focus += u64::from(focused);
}

/// Those seen in at least `min` tweets, the highest focus share first (then the most
/// tweets, then by name, so the order is stable).
fn ranked(counts: HashMap<String, Ranked>, min: u64) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = counts
        .into_values()
        .filter(|entry| entry.tweets >= min)
        .collect();
    ranked.sort_by(|a, b| {
        (b.focus * a.tweets)
            .cmp(&(a.focus * b.tweets))
            .then(b.tweets.cmp(&a.tweets))
            .then(a.name.cmp(&b.name))
    });
    ranked
}

/// Keeps the `top` highest scores, highest first (ties: the tweet read first); the example
/// is only made when it is kept.
fn keep_top(
    examples: &mut Vec<Example>,
    score: f32,
    top: usize,
    example: impl FnOnce() -> Example,
) {
    let at = examples.partition_point(|kept| kept.score >= score);
    if at < top {
        examples.insert(at, example());
        examples.truncate(top);
    }
}

#[cfg(test)]
mod tests {
    use pipeline::memory::{KeywordClassifier, MemoryBuckets};
    use pipeline::{Buckets, ClassifyConfig, IngestConfig, classify_object, ingest_object};

    use super::*;

    fn tweet(id: u32, day: u32, author: &str, lang: &str, text: &str) -> String {
        serde_json::json!({
            "id_str": id.to_string(), "text": text, "lang": lang,
            "created_at": format!("2024-05-0{day}T10:00:00Z"),
            "user": {"id_str": format!("u-{author}"), "screen_name": author},
        })
        .to_string()
    }

    /// `raw` through ingest and the keyword classifier ("love" positive, "hate" negative),
    /// as a run would leave it.
    async fn processed(raw: &[String]) -> MemoryBuckets {
        let buckets = MemoryBuckets::new();
        buckets.insert("b", "raw/may.jsonl", raw.join("\n"));
        let store = buckets.bucket("b");
        let ingested = ingest_object(&store, &store, "raw/may.jsonl", &IngestConfig::default())
            .await
            .expect("ingested");
        for part in &ingested.manifest.outputs.clean_parts {
            classify_object(
                &store,
                &store,
                &KeywordClassifier::default(),
                part,
                &ClassifyConfig::default(),
                None,
            )
            .await
            .expect("classified");
        }
        buckets
    }

    /// Two tweets by different authors, days and languages (`en` on day 1, `es` on day 2).
    fn two_tweets() -> [String; 2] {
        [
            tweet(1, 1, "ann", "en", "I hate waiting at #gate12"),
            tweet(2, 2, "bob", "es", "I love the crew today"),
        ]
    }

    /// Deletes every object of bucket `b` under `prefix`, as an expiry rule would.
    async fn delete_under(buckets: &MemoryBuckets, prefix: &str) {
        let store = buckets.bucket("b");
        for key in buckets.keys("b") {
            if key.starts_with(prefix) {
                pipeline::DeleteObject::delete(&store, &key)
                    .await
                    .expect("deleted");
            }
        }
    }

    async fn insights_of(buckets: &MemoryBuckets, options: &Options) -> Insights {
        let mut steps = Vec::new();
        let insights = collect(
            &buckets.bucket("b"),
            &Prefixes::default(),
            options,
            |step| {
                steps.push((step.objects_read, step.objects));
            },
        )
        .await
        .expect("collected");
        // Manifests of ingest and classify, and one predictions object: three reads.
        assert_eq!(steps, [(1, 3), (2, 3), (3, 3)]);
        insights
    }

    #[tokio::test]
    async fn counts_add_up_to_the_manifests() {
        let raw = [
            tweet(1, 1, "ann", "en", "I hate waiting at #gate12 for @airline"),
            tweet(2, 1, "ann", "en", "I hate the food on @airline flights"),
            tweet(3, 2, "bob", "es", "I love the crew on @airline today"),
            tweet(4, 2, "bob", "en", "Boarding now at #gate12, see you all"),
            tweet(5, 2, "cy", "en", "hate hate hate #gate12 delays @airline"),
            "{\"id_str\": \"6\", \"text\": 5}".to_owned(),
            tweet(7, 2, "cy", "en", "ok"),
        ];
        let insights = insights_of(&processed(&raw).await, &Options::default()).await;
        let total = insights.funnel.total();
        assert_eq!(total.records_in, 7);
        assert_eq!(
            total.records_in,
            total.kept + total.filtered_total() + total.rejected
        );
        assert_eq!((total.kept, total.rejected), (5, 1));
        assert_eq!(
            total.filtered,
            BTreeMap::from([("too_short".to_owned(), 1)])
        );
        assert_eq!((total.classified, insights.predictions), (5, 5));
        assert_eq!(insights.funnel.sources.len(), 1);
        assert_eq!(insights.focus.as_deref(), Some("negative"));
        assert_eq!(insights.labels, ["negative", "neutral", "positive"]);
        assert_eq!(
            insights.by_day,
            BTreeMap::from([
                (
                    "2024-05-01".to_owned(),
                    BTreeMap::from([("negative".to_owned(), 2)])
                ),
                (
                    "2024-05-02".to_owned(),
                    BTreeMap::from([
                        ("negative".to_owned(), 1),
                        ("neutral".to_owned(), 1),
                        ("positive".to_owned(), 1)
                    ])
                ),
            ])
        );
        assert_eq!(
            insights.by_language["es"],
            BTreeMap::from([("positive".to_owned(), 1)])
        );
        // @airline: 4 tweets, 3 negative; #gate12: 3 tweets, 2 negative.
        let topics: Vec<(&str, u64, u64)> = insights
            .topics
            .iter()
            .map(|topic| (topic.name.as_str(), topic.tweets, topic.focus))
            .collect();
        assert_eq!(topics, [("@airline", 4, 3), ("#gate12", 3, 2)]);
        assert!(insights.authors.is_empty(), "nobody has 3 tweets");
        let ids: Vec<&str> = insights.most["negative"]
            .iter()
            .map(|example| example.id.as_str())
            .collect();
        assert_eq!(
            ids,
            ["1", "2", "5"],
            "labelled negative, ties in reading order"
        );
        assert_eq!(insights.most["positive"].len(), 1);
    }

    #[tokio::test]
    async fn the_page_escapes_tweets_and_carries_its_numbers() {
        let raw = [
            tweet(
                1,
                1,
                "ann",
                "en",
                "I hate <script>alert(1)</script> & \"quotes\"",
            ),
            tweet(2, 3, "bob", "en", "I love this so much, thanks"),
        ];
        let mut insights = insights_of(&processed(&raw).await, &Options::default()).await;
        insights.source = "out/<run>".to_owned();
        let page = render(&insights);
        assert!(!page.contains("<script"), "tweet text must be escaped");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
        assert!(page.contains("out/&lt;run&gt;"));
        assert!(page.contains(r#"data-chart="label-share-per-day" data-total="2""#));
        assert!(page.contains(r#"data-chart="funnel" data-records-in="2" data-kept="2""#));
        assert!(page.contains("tweets of 2024-05-01 to 2024-05-03"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing fetched"
        );
    }

    #[tokio::test]
    async fn rankings_keep_only_the_frequent_and_unreadable_lines_are_listed() {
        let raw: Vec<String> = (1..=4)
            .map(|id| {
                tweet(
                    id,
                    1,
                    "dee",
                    "en",
                    &format!("I hate queue number {id} #queues"),
                )
            })
            .collect();
        let buckets = processed(&raw).await;
        let garbage = "not json\n\n".repeat(UNREADABLE_SHOWN + 10);
        buckets.insert("b", "predictions/hand made.jsonl", garbage);
        let options = Options {
            min_tweets: 5,
            top_tweets: 2,
        };
        let insights = collect(&buckets.bucket("b"), &Prefixes::default(), &options, |_| {})
            .await
            .expect("collected");
        assert!(insights.topics.is_empty() && insights.authors.is_empty());
        assert_eq!(insights.most["negative"].len(), 2);
        assert_eq!(
            insights.unreadable[..2]
                .iter()
                .map(|item| item.key.as_str())
                .collect::<Vec<_>>(),
            [
                "predictions/hand made.jsonl line 1",
                "predictions/hand made.jsonl line 3"
            ]
        );
        assert_eq!(insights.unreadable.len(), UNREADABLE_SHOWN);
        assert_eq!(insights.unreadable_total, UNREADABLE_SHOWN as u64 + 10);
    }

    #[tokio::test]
    async fn the_parquet_is_read_when_the_json_lines_are_gone() {
        let buckets = processed(&two_tweets()).await;
        let from_lines = insights_of(&buckets, &Options::default()).await;
        delete_under(&buckets, "predictions/").await;
        let store = buckets.bucket("b");
        buckets.insert(
            "b",
            "predictions-parquet/dt=2024-05-09/junk.parquet",
            "junk",
        );
        let from_tables = collect(&store, &Prefixes::default(), &Options::default(), |_| {})
            .await
            .expect("collected");
        assert_eq!(from_tables.predictions, 2);
        assert_eq!(from_tables.by_day, from_lines.by_day);
        assert_eq!(from_tables.by_language, from_lines.by_language);
        assert_eq!(
            from_tables
                .unreadable
                .iter()
                .map(|item| item.key.as_str())
                .collect::<Vec<_>>(),
            ["predictions-parquet/dt=2024-05-09/junk.parquet"]
        );
    }

    #[tokio::test]
    async fn without_manifests_the_page_says_so_and_counts_the_predictions() {
        let buckets = processed(&two_tweets()).await;
        delete_under(&buckets, "manifests/").await;
        let store = buckets.bucket("b");
        let insights = collect(&store, &Prefixes::default(), &Options::default(), |_| {})
            .await
            .expect("collected");
        assert_eq!(insights.funnel.total().records_in, 0);
        let page = render(&insights);
        assert!(page.contains(r#"data-tile="classified">2<"#), "{page}");
        assert!(page.contains(r#"data-note="no-manifests""#));
    }

    #[tokio::test]
    async fn an_empty_location_is_a_clear_error() {
        let buckets = MemoryBuckets::new();
        let error = collect(
            &buckets.bucket("b"),
            &Prefixes::default(),
            &Options::default(),
            |_| {},
        )
        .await
        .expect_err("nothing there");
        assert!(
            error
                .to_string()
                .contains("no manifests and no predictions")
        );
    }
}
