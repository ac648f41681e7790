//! One raw object in, clean tweets and rejections out, and a report whose counts add up:
//! `records_in == kept + Σ filtered + rejected`. Storage-agnostic: callers bring a reader
//! and two writers.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::clean::{CleanConfig, clean_text, text_for_language_detection};
use crate::filter::{FilterConfig, FilterReason, FilteredCounts, Filters, known_primary_language};
use crate::formats::{
    ParsedTweet, Record, ResponseContext, TWEET_ARRAY_FIELDS, TweetWarning, parse_element,
    parse_envelope, parse_frame,
};
use crate::frame::{Frame, FrameRole, Framer, Layout};
use crate::held::HeldFrames;
use crate::input::{Compression, Limits, OpenedInput, StreamError, StreamProbe};
use crate::schema::{SourceRef, Tweet};

/// How much of a rejected record's raw bytes the rejection carries; `source` and `bytes`
/// locate the whole of it.
const MAX_RAW_IN_REJECTION: usize = 64 * 1024;

/// How many bytes of a v2 response's tweets wait in memory for its `includes` before they
/// wait on local disk.
const HELD_IN_MEMORY_BYTES: usize = 16 * 1024 * 1024;

/// The language a tweet is counted under when neither Twitter nor the detector knew it
/// (Twitter's own code for it).
const UNKNOWN_LANGUAGE: &str = "und";

/// Everything that decides how an object is read, cleaned and filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOptions {
    pub limits: Limits,
    pub cleaning: CleanConfig,
    pub filters: FilterConfig,
}

/// What happened to one object's records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub records_in: u64,
    pub kept: u64,
    /// Kept tweets per language (ISO 639-1 as given or detected; `und` when unknown).
    #[serde(default)]
    pub kept_by_language: BTreeMap<String, u64>,
    pub filtered: FilteredCounts,
    pub rejected: u64,
    /// Kept tweets with something wrong that did not cost them (an unreadable date), by what.
    #[serde(default)]
    pub warnings: BTreeMap<TweetWarning, u64>,
    pub compression: Compression,
    /// Whether the (decompressed) object was a tar archive, its files read one by one.
    #[serde(default)]
    pub tar_archive: bool,
    pub layout: Layout,
    /// Bytes of the object as stored.
    pub bytes_stored: u64,
    /// Bytes after decompression.
    pub bytes_decoded: u64,
}

impl Report {
    pub fn filtered_total(&self) -> u64 {
        self.filtered.values().sum()
    }

    /// The law every report obeys; checked before a report leaves this module.
    pub fn is_conserved(&self) -> bool {
        self.records_in == self.kept + self.filtered_total() + self.rejected
    }

    /// Adds another object's counts (for run summaries).
    pub fn absorb(&mut self, other: &Report) {
        self.records_in += other.records_in;
        self.kept += other.kept;
        for (language, count) in &other.kept_by_language {
            *self.kept_by_language.entry(language.clone()).or_default() += count;
        }
        self.rejected += other.rejected;
        for (warning, count) in &other.warnings {
            *self.warnings.entry(*warning).or_default() += count;
        }
        for (reason, count) in &other.filtered {
            *self.filtered.entry(*reason).or_default() += count;
        }
        self.bytes_stored += other.bytes_stored;
        self.bytes_decoded += other.bytes_decoded;
    }
}

/// One line of `rejected/`: the record's place, what was wrong, and its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub source: SourceRef,
    /// Length in bytes of the rejected span of the decompressed stream, from `source.offset`.
    pub bytes: u64,
    pub error: String,
    /// The raw record (lossily decoded if it was not UTF-8), `null` when nothing could be read.
    pub raw: Option<String>,
    pub raw_truncated: bool,
}

/// The bytes of a rejected record, as far as they were kept.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub bytes: &'a [u8],
    /// Only the start of the record was kept (it was over a size limit).
    pub cut_short: bool,
}

impl<'a> RawRecord<'a> {
    pub fn whole(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            cut_short: false,
        }
    }
}

impl Rejection {
    /// A rejection carrying at most 64 KiB of the raw record (`None` when nothing of it could
    /// be read).
    pub fn new(source: SourceRef, bytes: u64, error: String, raw: Option<RawRecord<'_>>) -> Self {
        let raw_truncated =
            raw.is_some_and(|raw| raw.cut_short || raw.bytes.len() > MAX_RAW_IN_REJECTION);
        let raw = raw.map(|raw| {
            let kept = &raw.bytes[..raw.bytes.len().min(MAX_RAW_IN_REJECTION)];
            String::from_utf8_lossy(kept).into_owned()
        });
        Self {
            source,
            bytes,
            error,
            raw,
            raw_truncated,
        }
    }
}

/// One line of `filtered/`: which record a filter dropped, and why. Its lines add up to the
/// manifest's `filtered` counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilteredRecord {
    /// The tweet's id; `None` for a record that is not a tweet (a stream `delete`, …).
    pub id: Option<String>,
    pub source: SourceRef,
    pub reason: FilterReason,
}

/// Failures that stop an object without a verdict on its records: retry them.
#[derive(Debug, thiserror::Error)]
pub enum IngestStreamError {
    #[error("reading the object failed")]
    Source(#[source] io::Error),
    #[error("writing {what} failed")]
    Output {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "internal error: counts do not add up ({records_in} in, {kept} kept, {filtered} \
         filtered, {rejected} rejected)"
    )]
    Conservation {
        records_in: u64,
        kept: u64,
        filtered: u64,
        rejected: u64,
    },
}

/// Reads one raw object from `input`, writes each kept tweet as a JSON line to `kept_out`,
/// each rejection to `rejected_out` and each filtered record to `filtered_out`.
///
/// `key` names the object in every record's `source`. `stored_len` is the object's size when
/// the storage knows it (enables the size checks before reading).
pub fn ingest_stream(
    key: &str,
    input: impl Read,
    stored_len: Option<u64>,
    options: &IngestOptions,
    kept_out: &mut impl Write,
    rejected_out: &mut impl Write,
    filtered_out: &mut impl Write,
) -> Result<Report, IngestStreamError> {
    let mut run = Run {
        key,
        member: None,
        options,
        filters: Filters::new(options.filters.clone()),
        report: Report::default(),
        kept_out,
        rejected_out,
        filtered_out,
    };
    match OpenedInput::open(input, stored_len, &options.limits) {
        Ok(opened) => run.read_all(opened)?,
        Err(StreamError::Source(error)) => return Err(IngestStreamError::Source(error)),
        Err(error) => run.reject_rest_of_stream(&error, 0, 1)?,
    }
    let report = run.report;
    if !report.is_conserved() {
        return Err(IngestStreamError::Conservation {
            records_in: report.records_in,
            kept: report.kept,
            filtered: report.filtered_total(),
            rejected: report.rejected,
        });
    }
    Ok(report)
}

/// Where a member starts in the decoded object.
struct Position {
    offset: u64,
    /// 1-based.
    line: u64,
}

struct Run<'a, K, J, F> {
    key: &'a str,
    /// The tar file being read, whose name qualifies its records' source.
    member: Option<String>,
    options: &'a IngestOptions,
    filters: Filters,
    report: Report,
    kept_out: &'a mut K,
    rejected_out: &'a mut J,
    filtered_out: &'a mut F,
}

impl<K: Write, J: Write, F: Write> Run<'_, K, J, F> {
    /// Frames and reads every member of the object: the object itself, or each gzip member,
    /// zstd frame or tar file on its own. A tar file's records are sourced to
    /// `<key>!<file name>`, their offsets and lines counted within the file.
    fn read_all(&mut self, mut opened: OpenedInput<'_>) -> Result<(), IngestStreamError> {
        self.report.compression = opened.compression;
        self.report.tar_archive = opened.tar_archive;
        let probe = opened.probe.clone();
        let mut origin = Position { offset: 0, line: 1 };
        let outcome = loop {
            self.member = None;
            let member = match opened.next_member() {
                Ok(Some(member)) => member,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            };
            if member.name.is_some() {
                self.report.bytes_decoded += origin.offset;
                origin = Position { offset: 0, line: 1 };
                self.member = member.name;
            }
            if let Some(error) = self.read_member(member.reader, &probe, &mut origin)? {
                break Err(error);
            }
        };
        self.report.bytes_decoded += origin.offset;
        self.report.bytes_stored = probe.stored_bytes_read();
        match outcome {
            Ok(()) => Ok(()),
            Err(StreamError::Source(error)) => Err(IngestStreamError::Source(error)),
            Err(error) => self.reject_rest_of_stream(&error, origin.offset, origin.line),
        }
    }

    /// Frames one member, whose first byte is at `origin` in the decoded object, and moves
    /// `origin` past it. Returns the stream error that ended the member early, if one did.
    fn read_member(
        &mut self,
        member: impl Read,
        probe: &StreamProbe,
        origin: &mut Position,
    ) -> Result<Option<StreamError>, IngestStreamError> {
        let mut framer = Framer::new(member, self.options.limits.max_record_bytes)
            .streaming_fields(TWEET_ARRAY_FIELDS);
        let mut held: Option<HeldFrames> = None;
        let mut records = Vec::new();
        let ended = loop {
            let mut frame = match framer.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break None,
                Err(error) => break Some(probe.classify(error)),
            };
            frame.offset += origin.offset;
            frame.line += origin.line - 1;
            match frame.role {
                FrameRole::Whole => self.read_whole(&frame, &mut records)?,
                FrameRole::Element(field) if ResponseContext::needed_by(field) => held
                    .get_or_insert_with(|| HeldFrames::new(field, HELD_IN_MEMORY_BYTES))
                    .push(frame)
                    .map_err(holding_failed)?,
                FrameRole::Element(field) => {
                    self.read_element(frame, field, &ResponseContext::default())?;
                }
                FrameRole::Envelope => self.read_envelope(&frame, held.take())?,
            }
        };
        if let Some(held) = held {
            // The member ended inside a response: its tweets are read without its includes.
            self.release(held, &ResponseContext::default())?;
        }
        if self.report.layout == Layout::Empty {
            self.report.layout = framer.layout();
        }
        origin.offset += framer.offset();
        origin.line += framer.line() - 1;
        Ok(ended)
    }

    /// A value on its own: a tweet, a stream message, or a whole response. `records` is
    /// scratch space, reused from frame to frame.
    fn read_whole(
        &mut self,
        frame: &Frame,
        records: &mut Vec<Record>,
    ) -> Result<(), IngestStreamError> {
        if let Some(problem) = frame.problem {
            return self.reject_frame(frame, problem.to_string());
        }
        parse_frame(&frame.bytes, records);
        for record in records.drain(..) {
            self.take_record(record, frame)?;
        }
        Ok(())
    }

    /// One tweet of a streamed response array.
    fn read_element(
        &mut self,
        frame: Frame,
        field: &str,
        context: &ResponseContext,
    ) -> Result<(), IngestStreamError> {
        match frame.problem {
            Some(problem) => self.reject_frame(&frame, problem.to_string()),
            None => self.take_record(parse_element(&frame.bytes, field, context), &frame),
        }
    }

    /// The end of a streamed response: its held tweets are read with its context, and the
    /// envelope is one rejected record of its own when it cannot be read.
    fn read_envelope(
        &mut self,
        frame: &Frame,
        held: Option<HeldFrames>,
    ) -> Result<(), IngestStreamError> {
        let context = match frame.problem {
            Some(problem) => Err(format!("API response: {problem}")),
            None => parse_envelope(&frame.bytes),
        };
        let unreadable = context.as_ref().err().cloned();
        if let Some(held) = held {
            self.release(held, &context.unwrap_or_default())?;
        }
        match unreadable {
            Some(error) => self.reject_frame(frame, error),
            None => Ok(()),
        }
    }

    fn release(
        &mut self,
        mut held: HeldFrames,
        context: &ResponseContext,
    ) -> Result<(), IngestStreamError> {
        let field = held.field();
        held.release(
            |frame| self.read_element(frame, field, context),
            holding_failed,
        )
    }

    fn take_record(&mut self, record: Record, frame: &Frame) -> Result<(), IngestStreamError> {
        let at = self.next_source(frame.offset, frame.line);
        match record {
            Record::Tweet(parsed) => self.keep_or_filter(*parsed, at),
            Record::NotATweet { .. } => self.filter(None, at, FilterReason::NotATweet),
            Record::Invalid { error, raw } => {
                let raw = raw.as_deref().map_or(&frame.bytes[..], str::as_bytes);
                self.reject(at, frame.len, error, Some(RawRecord::whole(raw)))
            }
        }
    }

    /// Rejects a frame as a whole, with its bytes (only a preview when they were cut).
    fn reject_frame(&mut self, frame: &Frame, error: String) -> Result<(), IngestStreamError> {
        let at = self.next_source(frame.offset, frame.line);
        let raw = RawRecord {
            bytes: &frame.bytes,
            cut_short: (frame.bytes.len() as u64) < frame.len,
        };
        self.reject(at, frame.len, error, Some(raw))
    }

    /// The stream cannot be read further: what is left of it is one rejected record.
    fn reject_rest_of_stream(
        &mut self,
        error: &StreamError,
        offset: u64,
        line: u64,
    ) -> Result<(), IngestStreamError> {
        let source = self.next_source(offset, line);
        let message = match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}; the rest of the object was not read"),
            None => format!("{error}; the rest of the object was not read"),
        };
        self.reject(source, 0, message, None)
    }

    fn next_source(&mut self, offset: u64, line: u64) -> SourceRef {
        let index = self.report.records_in;
        self.report.records_in += 1;
        SourceRef {
            key: match &self.member {
                Some(name) => format!("{}!{name}", self.key),
                None => self.key.to_owned(),
            },
            index,
            offset,
            line,
        }
    }

    fn keep_or_filter(
        &mut self,
        mut parsed: ParsedTweet,
        source: SourceRef,
    ) -> Result<(), IngestStreamError> {
        let warnings = std::mem::take(&mut parsed.warnings);
        let tweet = finish_tweet(parsed, &self.options.cleaning, source);
        match self.filters.check(&tweet) {
            Some(reason) => self.filter(Some(tweet.id), tweet.source, reason)?,
            None => {
                write_json_line(self.kept_out, &tweet, "clean tweets")?;
                self.report.kept += 1;
                for warning in warnings {
                    *self.report.warnings.entry(warning).or_default() += 1;
                }
                let language = tweet.lang.as_deref().unwrap_or(UNKNOWN_LANGUAGE);
                *self
                    .report
                    .kept_by_language
                    .entry(language.to_owned())
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    fn filter(
        &mut self,
        id: Option<String>,
        source: SourceRef,
        reason: FilterReason,
    ) -> Result<(), IngestStreamError> {
        let record = FilteredRecord { id, source, reason };
        write_json_line(self.filtered_out, &record, "filtered records")?;
        *self.report.filtered.entry(reason).or_default() += 1;
        Ok(())
    }

    fn reject(
        &mut self,
        source: SourceRef,
        bytes: u64,
        error: String,
        raw: Option<RawRecord<'_>>,
    ) -> Result<(), IngestStreamError> {
        let rejection = Rejection::new(source, bytes, error, raw);
        write_json_line(self.rejected_out, &rejection, "rejections")?;
        self.report.rejected += 1;
        Ok(())
    }
}

/// Cleans a parsed tweet and fills in its language when the tweet did not say.
fn finish_tweet(parsed: ParsedTweet, cleaning: &CleanConfig, source: SourceRef) -> Tweet {
    let lang = match parsed.lang.as_deref().and_then(known_primary_language) {
        Some(_) => parsed.lang,
        None => detect_language(&parsed.text).or(parsed.lang),
    };
    Tweet {
        clean_text: clean_text(&parsed.text, cleaning),
        id: parsed.id,
        created_at: parsed.created_at,
        author_id: parsed.author_id,
        author_handle: parsed.author_handle,
        lang,
        text: parsed.text,
        is_retweet: parsed.is_retweet,
        is_quote: parsed.is_quote,
        is_reply: parsed.is_reply,
        hashtags: parsed.hashtags,
        mentions: parsed.mentions,
        urls: parsed.urls,
        source,
    }
}

/// ISO 639-1 code of the text's language, when the detector is confident.
fn detect_language(text: &str) -> Option<String> {
    let info = whatlang::detect(&text_for_language_detection(text))?;
    if !info.is_reliable() {
        return None;
    }
    let language = isolang::Language::from_639_3(info.lang().code())?;
    language.to_639_1().map(str::to_owned)
}

fn holding_failed(source: io::Error) -> IngestStreamError {
    IngestStreamError::Output {
        what: "tweets waiting for their response's includes",
        source,
    }
}

fn write_json_line(
    out: &mut impl Write,
    value: &impl Serialize,
    what: &'static str,
) -> Result<(), IngestStreamError> {
    let to_output = |source| IngestStreamError::Output { what, source };
    serde_json::to_writer(&mut *out, value).map_err(|error| to_output(error.into()))?;
    out.write_all(b"\n").map_err(to_output)
}
