//! Recognizes what one JSON value is — a v1.1 status, a v1.1 search response, an API v2
//! response or streaming line, a bare v2 tweet, a stream control message — and turns every
//! tweet in it into a [`ParsedTweet`]. Detection is by content, never by file name.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clean::MENTION;

/// A tweet as read from its raw shape, before cleaning, filtering and numbering.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedTweet {
    pub id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub author_id: Option<String>,
    pub author_handle: Option<String>,
    pub lang: Option<String>,
    pub text: String,
    pub is_retweet: bool,
    pub is_quote: bool,
    pub is_reply: bool,
    pub hashtags: Vec<String>,
    pub mentions: Vec<String>,
    pub urls: Vec<String>,
    /// What was wrong with the tweet without costing it.
    pub warnings: Vec<TweetWarning>,
}

/// Something wrong with a tweet that costs a field, not the tweet; manifests count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TweetWarning {
    /// `created_at` was neither RFC 3339 nor Twitter's format: kept as `null`, so the
    /// prediction lands in the `dt=undated` partition.
    UnreadableCreatedAt,
}

impl TweetWarning {
    /// The name manifests use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnreadableCreatedAt => "unreadable_created_at",
        }
    }
}

/// What one input record turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Tweet(Box<ParsedTweet>),
    /// A well-formed message that carries no tweet (a v1.1 stream `delete`, `limit`, …).
    NotATweet {
        kind: String,
    },
    /// Malformed, or not something this pipeline understands. `raw` is the record's own JSON
    /// when it was one element of a larger response.
    Invalid {
        error: String,
        raw: Option<String>,
    },
}

impl Record {
    fn invalid(error: impl Into<String>) -> Self {
        Self::Invalid {
            error: error.into(),
            raw: None,
        }
    }
}

/// Messages of the v1.1 streaming API that are not tweets.
const STREAM_CONTROL_KEYS: &[&str] = &[
    "delete",
    "scrub_geo",
    "limit",
    "status_withheld",
    "user_withheld",
    "disconnect",
    "warning",
    "event",
    "friends",
    "friends_str",
    "direct_message",
    "control",
];
/// Fields only v1.1 statuses carry.
const V1_MARKERS: &[&str] = &[
    "id_str",
    "user",
    "full_text",
    "extended_tweet",
    "retweeted_status",
    "in_reply_to_status_id",
    "favorite_count",
];
/// Fields only v2 tweets carry.
const V2_MARKERS: &[&str] = &[
    "author_id",
    "edit_history_tweet_ids",
    "referenced_tweets",
    "note_tweet",
    "public_metrics",
    "conversation_id",
];

/// The array fields of API responses that hold tweets (`statuses` of a v1.1 search
/// response, `data` of a v2 response): a framer streams their elements one by one.
pub const TWEET_ARRAY_FIELDS: &[&str] = &["statuses", "data"];
const V1_SEARCH_TWEETS: &str = "statuses";
const V2_TWEETS: &str = "data";

/// What a response says about its tweets besides the tweets: v2 `includes`, indexed.
#[derive(Debug, Default)]
pub struct ResponseContext {
    includes: V2Index,
}

impl ResponseContext {
    /// Whether the tweets of `field` need their response's context, which may come after
    /// them (v2 `includes` follow `data`).
    pub fn needed_by(field: &str) -> bool {
        field == V2_TWEETS
    }
}

/// Parses one frame into the records it holds (one, or one per tweet of an API response),
/// appending them to `out`.
pub fn parse_frame(bytes: &[u8], out: &mut Vec<Record>) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => parse_object(map, out),
        Ok(other) => out.push(Record::invalid(format!(
            "expected a JSON object (a tweet or an API response), found {}",
            kind_of(&other)
        ))),
        Err(error) => out.push(Record::invalid(format!("invalid JSON: {error}"))),
    }
}

/// Parses one element of a response's streamed tweet array `field`. An invalid element's
/// record carries no `raw`: its frame is its raw.
pub fn parse_element(bytes: &[u8], field: &str, context: &ResponseContext) -> Record {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => tweet_in_array(value, field, context),
        Err(error) => Record::invalid(format!("invalid JSON: {error}")),
    }
}

/// Reads what is left of a response once its tweet arrays were streamed: its context, or
/// why the envelope is unreadable (its tweets are then read without a context).
pub fn parse_envelope(bytes: &[u8]) -> Result<ResponseContext, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(mut map)) => response_context(map.remove("includes")),
        Ok(other) => Err(format!(
            "expected an API response object, found {}",
            kind_of(&other)
        )),
        Err(error) => Err(format!("API response: invalid JSON: {error}")),
    }
}

fn parse_object(mut map: Map<String, Value>, out: &mut Vec<Record>) {
    if let Some(statuses) = map.remove(V1_SEARCH_TWEETS) {
        return match statuses {
            Value::Array(statuses) => {
                parse_tweet_array(statuses, V1_SEARCH_TWEETS, &ResponseContext::default(), out)
            }
            other => out.push(Record::invalid(format!(
                "search response field `statuses` should be an array, found {}",
                kind_of(&other)
            ))),
        };
    }
    if let Some(data) = map.remove(V2_TWEETS) {
        let context = response_context(map.remove("includes")).unwrap_or_else(|error| {
            out.push(Record::invalid(error));
            ResponseContext::default()
        });
        return match data {
            Value::Array(tweets) => parse_tweet_array(tweets, V2_TWEETS, &context, out),
            tweet @ Value::Object(_) => out.push(tweet_in_array(tweet, V2_TWEETS, &context)),
            other => out.push(Record::invalid(format!(
                "v2 response field `data` should be a tweet or an array of tweets, found {}",
                kind_of(&other)
            ))),
        };
    }
    if let Some(errors) = map.get("errors") {
        return out.push(Record::invalid(format!(
            "API error response with no data: {}",
            describe_api_errors(errors)
        )));
    }
    if let Some(kind) = STREAM_CONTROL_KEYS
        .iter()
        .find(|key| map.contains_key(**key))
        .filter(|_| !map.contains_key("text") && !map.contains_key("full_text"))
    {
        return out.push(Record::NotATweet {
            kind: (*kind).to_owned(),
        });
    }
    let looks_v2 = V2_MARKERS.iter().any(|key| map.contains_key(*key))
        && !V1_MARKERS.iter().any(|key| map.contains_key(*key));
    let value = Value::Object(map);
    let record = if looks_v2 {
        typed::<V2Tweet>(value).and_then(|tweet| tweet.normalize(&V2Index::default()))
    } else {
        typed::<V1Status>(value).and_then(V1Status::normalize)
    };
    out.push(record.map_or_else(Record::invalid, tweet_record));
}

fn tweet_record(tweet: ParsedTweet) -> Record {
    Record::Tweet(Box::new(tweet))
}

/// A response's `includes`, indexed once for all its tweets.
fn response_context(includes: Option<Value>) -> Result<ResponseContext, String> {
    let includes = match includes {
        None | Some(Value::Null) => V2Includes::default(),
        Some(value) => typed::<V2Includes>(value).map_err(|error| format!("includes: {error}"))?,
    };
    Ok(ResponseContext {
        includes: V2Index::new(includes),
    })
}

/// The tweets of a whole (not streamed) response's array, each rejected on its own with its
/// own JSON, so that the rejection shows that element rather than the whole response.
fn parse_tweet_array(
    tweets: Vec<Value>,
    field: &str,
    context: &ResponseContext,
    out: &mut Vec<Record>,
) {
    for tweet in tweets {
        let raw = tweet.to_string();
        out.push(match tweet_in_array(tweet, field, context) {
            Record::Invalid { error, .. } => Record::Invalid {
                error,
                raw: Some(raw),
            },
            record => record,
        });
    }
}

/// One element of a response's tweet array `field`.
fn tweet_in_array(value: Value, field: &str, context: &ResponseContext) -> Record {
    if !value.is_object() {
        return Record::invalid(format!(
            "expected a tweet object, found {}",
            kind_of(&value)
        ));
    }
    let tweet = if field == V1_SEARCH_TWEETS {
        typed::<V1Status>(value).and_then(V1Status::normalize)
    } else {
        typed::<V2Tweet>(value).and_then(|tweet| tweet.normalize(&context.includes))
    };
    tweet.map_or_else(Record::invalid, tweet_record)
}

/// Deserializes with the path of the offending field in the error ("user.id_str: invalid
/// type: integer `5`, expected a string").
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            error.inner().to_string()
        } else {
            format!("field `{path}`: {}", error.inner())
        }
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe_api_errors(errors: &Value) -> String {
    let first = errors
        .as_array()
        .and_then(|list| list.first())
        .unwrap_or(errors);
    ["detail", "message", "title"]
        .iter()
        .find_map(|field| first.get(*field).and_then(Value::as_str))
        .map_or_else(|| first.to_string(), str::to_owned)
}

/// A tweet or user id, a string in v2 and `id_str`, a number in v1.1 `id`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Number(number) => number.to_string(),
        }
    }
}

/// The first non-empty id among `candidates`.
fn first_id<'a>(candidates: impl IntoIterator<Item = Option<&'a Id>>) -> Option<String> {
    candidates
        .into_iter()
        .flatten()
        .map(Id::text)
        .find(|id| !id.is_empty())
}

/// Accepts RFC 3339 (v2) and Twitter's v1.1 `Wed Oct 10 20:19:24 +0000 2018`. Anything else
/// leaves the date unknown and adds a warning: a bad date must not cost a good tweet.
fn parse_created_at(
    raw: Option<String>,
    warnings: &mut Vec<TweetWarning>,
) -> Option<DateTime<Utc>> {
    let raw = raw.filter(|raw| !raw.is_empty())?;
    let parsed = DateTime::parse_from_rfc3339(&raw)
        .or_else(|_| DateTime::parse_from_str(&raw, "%a %b %d %H:%M:%S %z %Y"))
        .map(|date| date.with_timezone(&Utc));
    if parsed.is_err() {
        warnings.push(TweetWarning::UnreadableCreatedAt);
    }
    parsed.ok()
}

fn decode_html(text: &str) -> String {
    html_escape::decode_html_entities(text).into_owned()
}

fn non_empty(list: Vec<String>) -> impl Iterator<Item = String> {
    list.into_iter().filter(|item| !item.is_empty())
}

fn dedup_in_order(list: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|item| seen.insert(item.to_lowercase()));
}

static HASHTAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^\w&/])[#＃](\w+)").expect("static regex"));
static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bhttps?://[^\s]+").expect("static regex"));

/// The hashtags and mentioned accounts a text carries, found as for records without an
/// `entities` object (for records that no longer carry entities, as predictions).
pub fn hashtags_and_mentions(text: &str) -> (Vec<String>, Vec<String>) {
    let (hashtags, mentions, _) = entities_from_text(text);
    (hashtags, mentions)
}

/// Entities found in the text, for records that came without an `entities` object.
fn entities_from_text(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let captures = |regex: &Regex, group: usize| -> Vec<String> {
        regex
            .captures_iter(text)
            .map(|found| found[group].to_owned())
            .collect()
    };
    let urls = URL
        .find_iter(text)
        .map(|found| {
            found
                .as_str()
                .trim_end_matches(['.', ',', ')', '!', '?', '"', '\''])
                .to_owned()
        })
        .collect();
    (captures(&HASHTAG, 1), captures(&MENTION, 2), urls)
}

// ---- API v1.1 ----

#[derive(Debug, Deserialize)]
struct V1Status {
    id_str: Option<String>,
    id: Option<Id>,
    created_at: Option<String>,
    text: Option<String>,
    full_text: Option<String>,
    truncated: Option<bool>,
    extended_tweet: Option<V1Extended>,
    user: Option<V1User>,
    lang: Option<String>,
    retweeted_status: Option<Box<V1Status>>,
    quoted_status_id_str: Option<String>,
    is_quote_status: Option<bool>,
    in_reply_to_status_id_str: Option<String>,
    in_reply_to_status_id: Option<Id>,
    entities: Option<V1Entities>,
    extended_entities: Option<V1Entities>,
}

#[derive(Debug, Deserialize)]
struct V1Extended {
    full_text: Option<String>,
    entities: Option<V1Entities>,
    extended_entities: Option<V1Entities>,
}

#[derive(Debug, Deserialize)]
struct V1User {
    id_str: Option<String>,
    id: Option<Id>,
    screen_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct V1Entities {
    hashtags: Option<Vec<V1Hashtag>>,
    user_mentions: Option<Vec<V1Mention>>,
    urls: Option<Vec<V1Url>>,
    media: Option<Vec<V1Url>>,
}

#[derive(Debug, Deserialize)]
struct V1Hashtag {
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V1Mention {
    screen_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V1Url {
    url: Option<String>,
    expanded_url: Option<String>,
}

impl V1Status {
    /// The full text and the entities that describe it: `extended_tweet` in compatibility
    /// mode, else `full_text` (extended mode), else `text`.
    fn full_text(&mut self) -> Option<(String, Vec<V1Entities>)> {
        let extended = self
            .extended_tweet
            .take()
            .filter(|_| self.truncated == Some(true) || self.full_text.is_none())
            .and_then(|extended| {
                let text = extended.full_text?;
                Some((text, extended.entities, extended.extended_entities))
            });
        let (text, entities, extended_entities) = match extended {
            Some(found) => found,
            None => (
                self.full_text.take().or_else(|| self.text.take())?,
                self.entities.take(),
                self.extended_entities.take(),
            ),
        };
        Some((
            text,
            entities.into_iter().chain(extended_entities).collect(),
        ))
    }

    fn normalize(mut self) -> Result<ParsedTweet, String> {
        let id_str = self.id_str.take().map(Id::Text);
        let id = first_id([id_str.as_ref(), self.id.as_ref()])
            .ok_or("record has no `id` or `id_str`: not a tweet object")?;
        let mut warnings = Vec::new();
        let created_at = parse_created_at(self.created_at.take(), &mut warnings);
        let (author_id, author_handle) = match self.user.take() {
            Some(user) => {
                let id_str = user.id_str.map(Id::Text);
                (
                    first_id([id_str.as_ref(), user.id.as_ref()]),
                    user.screen_name,
                )
            }
            None => (None, None),
        };
        let is_quote = self.is_quote_status == Some(true) || self.quoted_status_id_str.is_some();
        let is_reply =
            self.in_reply_to_status_id_str.is_some() || self.in_reply_to_status_id.is_some();
        let lang = self.lang.take();
        let retweeted = self.retweeted_status.take();
        let (own_text, entities) = self
            .full_text()
            .ok_or_else(|| format!("tweet {id} has no `text`, `full_text` or `extended_tweet`"))?;

        let (text, entities, is_retweet) = match retweeted.map(|original| original.normalize()) {
            Some(Ok(original)) => {
                let handle = original.author_handle.clone().unwrap_or_default();
                let mut mentions = vec![handle.clone()];
                mentions.extend(original.mentions);
                let text = format!("RT @{handle}: {}", original.text);
                (text, (original.hashtags, mentions, original.urls), true)
            }
            Some(Err(error)) => return Err(format!("retweeted_status: {error}")),
            None => {
                let text = decode_html(&own_text);
                let collected = collect_v1_entities(entities, &text);
                (text, collected, false)
            }
        };
        let (hashtags, mentions, urls) = entities;
        Ok(ParsedTweet {
            id,
            created_at,
            author_id,
            author_handle,
            lang,
            text,
            is_retweet,
            is_quote,
            is_reply,
            hashtags,
            mentions,
            urls,
            warnings,
        })
    }
}

fn collect_v1_entities(
    entities: Vec<V1Entities>,
    text: &str,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    if entities.is_empty() {
        return entities_from_text(text);
    }
    let (mut hashtags, mut mentions, mut urls) = (Vec::new(), Vec::new(), Vec::new());
    for group in entities {
        hashtags.extend(non_empty(
            group
                .hashtags
                .into_iter()
                .flatten()
                .filter_map(|tag| tag.text)
                .collect(),
        ));
        mentions.extend(non_empty(
            group
                .user_mentions
                .into_iter()
                .flatten()
                .filter_map(|mention| mention.screen_name)
                .collect(),
        ));
        urls.extend(non_empty(
            group
                .urls
                .into_iter()
                .flatten()
                .chain(group.media.into_iter().flatten())
                .filter_map(|url| url.expanded_url.or(url.url))
                .collect(),
        ));
    }
    dedup_in_order(&mut hashtags);
    dedup_in_order(&mut mentions);
    dedup_in_order(&mut urls);
    (hashtags, mentions, urls)
}

// ---- API v2 ----

/// A response's `includes`, each entry still raw: one that does not parse must not cost the
/// tweets that never refer to it.
#[derive(Debug, Default, Deserialize)]
struct V2Includes {
    #[serde(default)]
    users: Vec<Value>,
    #[serde(default)]
    tweets: Vec<Value>,
}

/// `includes` indexed by id, once per response (a lookup per tweet, not a scan). Entries
/// that do not parse are left out: the tweets that refer to one lose its author's handle or
/// the retweet's full text, like a tweet whose include is missing.
#[derive(Debug, Default)]
struct V2Index {
    handles: HashMap<String, String>,
    tweets: HashMap<String, V2Tweet>,
}

impl V2Index {
    fn new(includes: V2Includes) -> Self {
        let handles = includes
            .users
            .into_iter()
            .filter_map(|user| typed::<V2User>(user).ok())
            .filter_map(|user| Some((user.id.text(), user.username?)))
            .collect();
        let tweets = includes
            .tweets
            .into_iter()
            .filter_map(|tweet| typed::<V2Tweet>(tweet).ok())
            .filter_map(|tweet| Some((first_id([tweet.id.as_ref()])?, tweet)))
            .collect();
        Self { handles, tweets }
    }

    fn handle(&self, author: Option<&Id>) -> Option<&str> {
        self.handles.get(&author?.text()).map(String::as_str)
    }
}

#[derive(Debug, Deserialize)]
struct V2User {
    id: Id,
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2Tweet {
    id: Option<Id>,
    text: Option<String>,
    created_at: Option<String>,
    author_id: Option<Id>,
    lang: Option<String>,
    referenced_tweets: Option<Vec<V2Reference>>,
    in_reply_to_user_id: Option<Id>,
    entities: Option<V2Entities>,
    note_tweet: Option<V2NoteTweet>,
}

#[derive(Debug, Deserialize)]
struct V2Reference {
    #[serde(rename = "type")]
    kind: String,
    id: Id,
}

/// The full text of a tweet longer than 280 characters.
#[derive(Debug, Deserialize)]
struct V2NoteTweet {
    text: Option<String>,
    entities: Option<V2Entities>,
}

#[derive(Debug, Deserialize)]
struct V2Entities {
    hashtags: Option<Vec<V2Tag>>,
    mentions: Option<Vec<V2Mention>>,
    urls: Option<Vec<V2Url>>,
}

#[derive(Debug, Deserialize)]
struct V2Tag {
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2Mention {
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2Url {
    url: Option<String>,
    expanded_url: Option<String>,
    unwound_url: Option<String>,
}

impl V2Tweet {
    /// The full text (`note_tweet` for long tweets) and its entities.
    fn full_text(&self) -> Option<(&str, Option<&V2Entities>)> {
        match &self.note_tweet {
            Some(V2NoteTweet {
                text: Some(text),
                entities,
            }) => Some((text, entities.as_ref().or(self.entities.as_ref()))),
            _ => self
                .text
                .as_deref()
                .map(|text| (text, self.entities.as_ref())),
        }
    }

    fn normalize(self, includes: &V2Index) -> Result<ParsedTweet, String> {
        let Some(id) = first_id([self.id.as_ref()]) else {
            return Err("record has no `id`: not a tweet object".to_owned());
        };
        let (own_text, own_entities) = self
            .full_text()
            .ok_or_else(|| format!("tweet {id} has no `text`"))?;
        let references = self.referenced_tweets.as_deref().unwrap_or_default();
        let referenced = |kind: &str| {
            references
                .iter()
                .find(|reference| reference.kind == kind)
                .map(|reference| reference.id.text())
        };
        let is_retweet = referenced("retweeted").is_some();
        let is_quote = referenced("quoted").is_some();
        let is_reply = referenced("replied_to").is_some() || self.in_reply_to_user_id.is_some();

        // A v2 retweet's own text is cut at 140 characters; the original is in `includes`.
        let original = referenced("retweeted")
            .and_then(|id| includes.tweets.get(&id))
            .and_then(|original| {
                let (text, entities) = original.full_text()?;
                let handle = includes.handle(original.author_id.as_ref())?;
                Some((
                    format!("RT @{handle}: {}", decode_html(text)),
                    entities,
                    handle,
                ))
            });
        let (text, entities, retweeted_handle) = match original {
            Some((text, entities, handle)) => (text, entities, Some(handle)),
            None => (decode_html(own_text), own_entities, None),
        };

        let (hashtags, mut mentions, urls) = match entities {
            Some(entities) => collect_v2_entities(entities),
            None => entities_from_text(&text),
        };
        if let Some(handle) = retweeted_handle {
            mentions.insert(0, handle.to_owned());
            dedup_in_order(&mut mentions);
        }
        let author_handle = includes.handle(self.author_id.as_ref()).map(str::to_owned);
        let author_id = self.author_id.as_ref().map(Id::text);
        let mut warnings = Vec::new();
        Ok(ParsedTweet {
            id,
            created_at: parse_created_at(self.created_at, &mut warnings),
            author_id,
            author_handle,
            lang: self.lang,
            text,
            is_retweet,
            is_quote,
            is_reply,
            hashtags,
            mentions,
            urls,
            warnings,
        })
    }
}

fn collect_v2_entities(entities: &V2Entities) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut hashtags: Vec<String> = entities
        .hashtags
        .iter()
        .flatten()
        .filter_map(|tag| tag.tag.clone())
        .filter(|tag| !tag.is_empty())
        .collect();
    let mut mentions: Vec<String> = entities
        .mentions
        .iter()
        .flatten()
        .filter_map(|mention| mention.username.clone())
        .filter(|name| !name.is_empty())
        .collect();
    let mut urls: Vec<String> = entities
        .urls
        .iter()
        .flatten()
        .filter_map(|url| {
            url.unwound_url
                .clone()
                .or_else(|| url.expanded_url.clone())
                .or_else(|| url.url.clone())
        })
        .filter(|url| !url.is_empty())
        .collect();
    dedup_in_order(&mut hashtags);
    dedup_in_order(&mut mentions);
    dedup_in_order(&mut urls);
    (hashtags, mentions, urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<Record> {
        let mut out = Vec::new();
        parse_frame(json.as_bytes(), &mut out);
        out
    }

    fn tweet(json: &str) -> ParsedTweet {
        match parse(json).as_slice() {
            [Record::Tweet(tweet)] => (**tweet).clone(),
            other => panic!("expected one tweet, got {other:?}"),
        }
    }

    /// Every record, each of which must be a tweet.
    fn all_tweets(records: &[Record]) -> Vec<&ParsedTweet> {
        records
            .iter()
            .map(|record| match record {
                Record::Tweet(tweet) => tweet.as_ref(),
                other => panic!("expected every record to be a tweet, got {other:?}"),
            })
            .collect()
    }

    fn invalid(json: &str) -> String {
        match parse(json).as_slice() {
            [Record::Invalid { error, .. }] => error.clone(),
            other => panic!("expected one invalid record, got {other:?}"),
        }
    }

    #[test]
    fn v1_classic_status() {
        let parsed = tweet(
            r#"{"id": 1050118621198921728, "id_str": "1050118621198921728",
                "created_at": "Wed Oct 10 20:19:24 +0000 2018",
                "text": "To make room for more expression &amp; joy #Twitter @jack https://t.co/abc",
                "user": {"id_str": "6253282", "screen_name": "TwitterAPI"}, "lang": "en",
                "entities": {"hashtags": [{"text": "Twitter"}], "user_mentions": [{"screen_name": "jack"}],
                             "urls": [{"url": "https://t.co/abc", "expanded_url": "https://blog.twitter.com/x"}]}}"#,
        );
        assert_eq!(parsed.id, "1050118621198921728");
        assert_eq!(
            parsed.created_at.map(|date| date.to_rfc3339()),
            Some("2018-10-10T20:19:24+00:00".to_owned())
        );
        assert_eq!(parsed.author_id.as_deref(), Some("6253282"));
        assert_eq!(parsed.author_handle.as_deref(), Some("TwitterAPI"));
        assert!(parsed.text.contains("expression & joy"));
        assert_eq!(parsed.hashtags, vec!["Twitter"]);
        assert_eq!(parsed.mentions, vec!["jack"]);
        assert_eq!(parsed.urls, vec!["https://blog.twitter.com/x"]);
        assert!(!parsed.is_retweet && !parsed.is_quote && !parsed.is_reply);
    }

    #[test]
    fn v1_compatibility_mode_takes_extended_tweet_full_text() {
        let parsed = tweet(
            r#"{"id_str": "1", "text": "short version… https://t.co/x", "truncated": true,
                "extended_tweet": {"full_text": "the whole long text #full",
                                   "entities": {"hashtags": [{"text": "full"}]}},
                "entities": {"hashtags": []}}"#,
        );
        assert_eq!(parsed.text, "the whole long text #full");
        assert_eq!(parsed.hashtags, vec!["full"]);
    }

    #[test]
    fn v1_retweet_is_rebuilt_from_the_full_original_text() {
        let parsed = tweet(
            r#"{"id_str": "2", "text": "RT @orig: cut off…",
                "retweeted_status": {"id_str": "1", "full_text": "the full original &lt;3",
                                     "user": {"screen_name": "orig"}}}"#,
        );
        assert!(parsed.is_retweet);
        assert_eq!(parsed.text, "RT @orig: the full original <3");
        assert_eq!(parsed.mentions, vec!["orig"]);
    }

    #[test]
    fn v1_reply_and_quote_flags() {
        let parsed = tweet(
            r#"{"id_str": "3", "text": "@a yes", "in_reply_to_status_id_str": "2",
                "is_quote_status": true}"#,
        );
        assert!(parsed.is_reply && parsed.is_quote);
        assert_eq!(
            parsed.mentions,
            vec!["a"],
            "entities come from the text when absent"
        );

        let too_long =
            tweet(r#"{"id_str": "4", "text": "@abcdefghijklmnop is not a handle, @ok is"}"#);
        assert_eq!(
            too_long.mentions,
            vec!["ok"],
            "a handle has at most 15 characters"
        );
    }

    #[test]
    fn v1_search_response_gives_one_record_per_status_and_isolates_a_bad_one() {
        let records = parse(
            r#"{"statuses": [{"id_str": "1", "text": "a"}, {"id_str": "2", "text": 5},
                             {"id_str": "3", "text": "c"}],
                "search_metadata": {"count": 3}}"#,
        );
        assert_eq!(records.len(), 3);
        assert!(matches!(&records[0], Record::Tweet(tweet) if tweet.id == "1"));
        match &records[1] {
            Record::Invalid { error, raw } => {
                assert!(error.contains("field `text`"), "{error}");
                assert!(raw.as_deref().is_some_and(|raw| raw.contains("\"2\"")));
            }
            other => panic!("expected invalid, got {other:?}"),
        }
        assert!(matches!(&records[2], Record::Tweet(tweet) if tweet.id == "3"));
    }

    #[test]
    fn v2_response_resolves_authors_and_retweets_from_includes() {
        let records = parse(
            r#"{"data": [
                  {"id": "10", "text": "hello @bob #rust", "author_id": "1", "lang": "en",
                   "created_at": "2022-05-01T12:00:00.000Z",
                   "entities": {"mentions": [{"username": "bob"}], "hashtags": [{"tag": "rust"}]}},
                  {"id": "11", "text": "RT @bob: cut…", "author_id": "1",
                   "referenced_tweets": [{"type": "retweeted", "id": "9"}]},
                  {"id": "12", "text": "@bob sure", "author_id": "1",
                   "referenced_tweets": [{"type": "replied_to", "id": "9"}, {"type": "quoted", "id": "8"}]}
                ],
                "includes": {"users": [{"id": "1", "username": "alice"}, {"id": "2", "username": "bob"}],
                             "tweets": [{"id": "9", "text": "bob's full text", "author_id": "2"}]}}"#,
        );
        let tweets = all_tweets(&records);
        assert_eq!(tweets[0].author_handle.as_deref(), Some("alice"));
        assert_eq!(tweets[0].hashtags, vec!["rust"]);
        assert_eq!(
            tweets[0].created_at.map(|date| date.to_rfc3339()),
            Some("2022-05-01T12:00:00+00:00".to_owned())
        );
        assert!(tweets[1].is_retweet);
        assert_eq!(tweets[1].text, "RT @bob: bob's full text");
        assert!(tweets[2].is_reply && tweets[2].is_quote && !tweets[2].is_retweet);
    }

    #[test]
    fn a_bad_include_costs_only_the_tweets_that_refer_to_it() {
        let records = parse(
            r#"{"data": [{"id": "10", "text": "first", "author_id": "1"},
                         {"id": "11", "text": "second", "author_id": "2"},
                         {"id": "12", "text": "RT @x: cut…", "author_id": "1",
                          "referenced_tweets": [{"type": "retweeted", "id": "9"}]}],
                "includes": {"users": [{"id": "1", "username": "alice"}, {"username": "no id"}],
                             "tweets": [{"id": "9", "text": ["not", "text"]}]}}"#,
        );
        let tweets = all_tweets(&records);
        assert_eq!(tweets.len(), 3);
        assert_eq!(tweets[0].author_handle.as_deref(), Some("alice"));
        assert_eq!(tweets[1].author_handle, None);
        assert!(tweets[2].is_retweet);
        assert_eq!(
            tweets[2].text, "RT @x: cut…",
            "the unreadable original is not used"
        );
    }

    #[test]
    fn v2_note_tweet_gives_the_long_text() {
        let parsed = tweet(
            r#"{"data": {"id": "1", "text": "short…", "note_tweet": {"text": "the long one"}}}"#,
        );
        assert_eq!(parsed.text, "the long one");
    }

    #[test]
    fn bare_v2_tweet_line_is_recognized() {
        let parsed = tweet(
            r#"{"id": "5", "text": "hi", "author_id": "7", "edit_history_tweet_ids": ["5"]}"#,
        );
        assert_eq!(parsed.author_id.as_deref(), Some("7"));
    }

    #[test]
    fn an_unreadable_date_costs_the_date_not_the_tweet() {
        for json in [
            r#"{"id_str": "1", "text": "on time today", "created_at": "yesterday"}"#,
            r#"{"id": "2", "text": "on time today", "created_at": "2024-13-45T10:00:00Z", "edit_history_tweet_ids": ["2"]}"#,
        ] {
            let parsed = tweet(json);
            assert_eq!(parsed.created_at, None, "{json}");
            assert_eq!(parsed.warnings, vec![TweetWarning::UnreadableCreatedAt]);
        }
        assert_eq!(
            serde_json::to_value(TweetWarning::UnreadableCreatedAt).expect("serializes"),
            TweetWarning::UnreadableCreatedAt.as_str()
        );
        let dated = tweet(r#"{"id_str": "3", "text": "x", "created_at": "2024-05-01T10:00:00Z"}"#);
        assert!(dated.created_at.is_some() && dated.warnings.is_empty());
    }

    #[test]
    fn stream_control_messages_are_not_tweets() {
        assert_eq!(
            parse(r#"{"delete": {"status": {"id_str": "1"}}}"#),
            vec![Record::NotATweet {
                kind: "delete".to_owned()
            }]
        );
        assert_eq!(
            parse(r#"{"limit": {"track": 5}}"#),
            vec![Record::NotATweet {
                kind: "limit".to_owned()
            }]
        );
    }

    #[test]
    fn clear_errors_for_wrong_shapes() {
        assert!(invalid("[1, 2]").contains("found an array"));
        assert!(invalid("42").contains("found a number"));
        assert!(invalid("{\"id_str\": \"1\"}").contains("has no `text`"));
        assert!(invalid("{\"text\": \"no id\"}").contains("no `id`"));
        assert!(
            invalid(r#"{"id_str": "1", "text": "x", "user": {"id_str": 5}}"#)
                .contains("field `user.id_str`")
        );
        assert!(
            invalid(r#"{"errors": [{"detail": "Could not find tweet"}]}"#)
                .contains("Could not find tweet")
        );
        assert!(invalid("{\"id_str\": \"1\", \"text\": \"x\"").starts_with("invalid JSON"));
        assert!(
            invalid(&format!("{}1{}", "[".repeat(200), "]".repeat(200)))
                .contains("recursion limit")
        );
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let mut out = Vec::new();
        parse_frame(b"{\"id_str\": \"1\", \"text\": \"bad \xff\"}", &mut out);
        assert!(
            matches!(&out[..], [Record::Invalid { error, .. }] if error.contains("invalid JSON"))
        );
    }
}
