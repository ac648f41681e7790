//! Splits a decompressed byte stream into candidate JSON values ("frames") without parsing
//! them, so that a file of any size is read with memory bounded by the largest record and a
//! malformed record is cut out alone.
//!
//! One scanner serves every layout users drop in a bucket: JSON Lines, one pretty-printed
//! document, a JSON array (its elements are streamed one by one), and objects concatenated
//! with no separator (Kinesis Firehose). It tracks only bracket depth and string state; the
//! JSON grammar itself is left to serde on each frame.
//!
//! Recovery rules, so a bad record cannot swallow its neighbours:
//! - a raw newline inside a string is never valid JSON, so the frame ends there;
//! - once the first value turns out to fit on one line (the file is line-delimited), a value
//!   still open at the end of its line is cut there, and the next line starts afresh;
//! - bytes that cannot start a JSON value are taken up to the end of their line as one frame.
//!
//! Asked to, it also streams the named array fields of top-level objects (API responses,
//! whose `statuses` or `data` can hold thousands of tweets): each element is a frame of its
//! own, and what is left of the object, each streamed array emptied to `[]`, comes last as
//! its envelope. So one tweet, not one response, is what `max_record_bytes` bounds.

use std::io::{self, Read};

/// How much of an oversized record is kept, so that its rejection shows what it was.
const PREVIEW_BYTES: usize = 1024;
const READ_CHUNK: usize = 64 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One candidate JSON value and where it stood in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The value's bytes; only a preview when `problem` is [`FrameProblem::TooLarge`].
    pub bytes: Vec<u8>,
    /// Byte offset of the value's first byte in the decompressed stream.
    pub offset: u64,
    /// How many bytes the value spans.
    pub len: u64,
    /// 1-based line of `offset`.
    pub line: u64,
    pub problem: Option<FrameProblem>,
    pub role: FrameRole,
}

/// Where a frame stood in the document, when the framer streams array fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRole {
    /// A value on its own.
    Whole,
    /// One element of the named array field of a top-level object.
    Element(&'static str),
    /// The top-level object whose arrays were streamed, once it ends: its other fields, each
    /// streamed array emptied to `[]`; `offset` and `len` span the whole object.
    Envelope,
}

/// Why a frame cannot be a complete JSON value, found before any parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameProblem {
    #[error("record is larger than the {limit}-byte limit (max_record_bytes)")]
    TooLarge { limit: usize },
    #[error(
        "record ends at the end of its line with a string or bracket still open (truncated JSON)"
    )]
    OpenAtEndOfLine,
    #[error("input ends inside this record (truncated JSON)")]
    OpenAtEndOfInput,
}

/// The layout the stream turned out to have, decided by its first value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// No value was found.
    #[default]
    Empty,
    /// Each value fits on one line: JSON Lines, or one-line concatenated objects.
    Lines,
    /// Values span lines: a pretty-printed document or array.
    Document,
}

/// Iterates over the frames of a byte stream.
#[derive(Debug)]
pub struct Framer<R> {
    source: ByteSource<R>,
    max_record_bytes: usize,
    layout: Layout,
    /// Inside a top-level array, whose elements are frames of their own.
    in_array: bool,
    started: bool,
    /// Array fields of top-level objects whose elements are frames of their own.
    streamed_fields: &'static [&'static str],
    /// The top-level object whose streamed array is being read.
    envelope: Option<OpenEnvelope>,
}

/// A top-level object paused at the start of a streamed array, resumed after its end.
#[derive(Debug)]
struct OpenEnvelope {
    frame: FrameBuilder,
    scan: ContainerScan,
    field: &'static str,
}

impl<R: Read> Framer<R> {
    pub fn new(reader: R, max_record_bytes: usize) -> Self {
        Self {
            source: ByteSource::new(reader),
            max_record_bytes,
            layout: Layout::Empty,
            in_array: false,
            started: false,
            streamed_fields: &[],
            envelope: None,
        }
    }

    /// Streams the elements of these array fields of top-level objects one by one.
    #[must_use]
    pub fn streaming_fields(mut self, fields: &'static [&'static str]) -> Self {
        self.streamed_fields = fields;
        self
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Bytes read from the stream so far.
    pub fn offset(&self) -> u64 {
        self.source.offset
    }

    /// 1-based line the stream has reached.
    pub fn line(&self) -> u64 {
        self.source.line
    }

    /// The next frame, `None` at the end of the stream. I/O errors from the reader are
    /// passed through untouched: the caller decides whether they are transient.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if !self.started {
            self.started = true;
            self.source.skip_prefix(UTF8_BOM)?;
        }
        if let Some(envelope) = self.envelope.take() {
            return self.next_in_envelope(envelope).map(Some);
        }
        if !self.skip_separators()? {
            return Ok(None);
        }
        let mut frame = FrameBuilder::new(&self.source, self.max_record_bytes);
        let first = self.source.peek()?.unwrap_or_default();
        let mut scan = ContainerScan::new(first == b'{' && !self.streamed_fields.is_empty());
        let problem = match self.scan_value(&mut frame, &mut scan, first)? {
            Scanned::Ended(problem) => problem,
            Scanned::StreamedArray(field) => {
                let envelope = OpenEnvelope { frame, scan, field };
                return self.next_in_envelope(envelope).map(Some);
            }
        };
        if matches!(first, b'{' | b'[') {
            self.settle_layout(&frame, problem);
        }
        Ok(Some(frame.finish(&self.source, problem, FrameRole::Whole)))
    }

    /// The first complete top-level container decides the layout: one line or several.
    fn settle_layout(&mut self, frame: &FrameBuilder, problem: Option<FrameProblem>) {
        if self.layout == Layout::Empty && problem.is_none() {
            self.layout = if self.source.line > frame.line {
                Layout::Document
            } else {
                Layout::Lines
            };
        }
    }

    /// The next element of the envelope's streamed array, or, once the envelope ends, the
    /// envelope itself.
    fn next_in_envelope(&mut self, mut envelope: OpenEnvelope) -> io::Result<Frame> {
        loop {
            let ended = match self.source.peek()? {
                None => Some(FrameProblem::OpenAtEndOfInput),
                Some(b'\n') if self.layout == Layout::Lines => Some(FrameProblem::OpenAtEndOfLine),
                Some(b' ' | b'\t' | b'\r' | b'\n' | b',') => {
                    self.source.bump();
                    continue;
                }
                Some(b']') => {
                    self.source.bump();
                    envelope.frame.push(b']');
                    match self.scan_container(&mut envelope.frame, &mut envelope.scan)? {
                        Scanned::Ended(problem) => problem,
                        Scanned::StreamedArray(field) => {
                            envelope.field = field;
                            continue;
                        }
                    }
                }
                Some(first) => {
                    let element = self.scan_element(first, envelope.field)?;
                    self.envelope = Some(envelope);
                    return Ok(element);
                }
            };
            self.settle_layout(&envelope.frame, ended);
            return Ok(envelope
                .frame
                .finish(&self.source, ended, FrameRole::Envelope));
        }
    }

    /// One element of a streamed array, framed like a top-level value but never streamed.
    fn scan_element(&mut self, first: u8, field: &'static str) -> io::Result<Frame> {
        let mut frame = FrameBuilder::new(&self.source, self.max_record_bytes);
        let problem = match self.scan_value(&mut frame, &mut ContainerScan::new(false), first)? {
            Scanned::Ended(problem) => problem,
            Scanned::StreamedArray(_) => unreachable!("elements are scanned with no field watched"),
        };
        Ok(frame.finish(&self.source, problem, FrameRole::Element(field)))
    }

    /// Scans the value starting with `first`; `scan` is used when it is a container.
    fn scan_value(
        &mut self,
        frame: &mut FrameBuilder,
        scan: &mut ContainerScan,
        first: u8,
    ) -> io::Result<Scanned> {
        let problem = match first {
            b'{' | b'[' => return self.scan_container(frame, scan),
            b'"' => self.scan_string(frame)?,
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scan_scalar(frame)?,
            _ => self.scan_rest_of_line(frame)?,
        };
        Ok(Scanned::Ended(problem))
    }

    /// Skips whitespace, and the brackets and commas of a top-level array. Returns whether a
    /// value starts at the current position.
    fn skip_separators(&mut self) -> io::Result<bool> {
        while let Some(byte) = self.source.peek()? {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b',' | b']' if self.in_array => self.in_array = byte == b',',
                b'[' if !self.in_array => self.in_array = true,
                _ => return Ok(true),
            }
            self.source.bump();
        }
        Ok(false)
    }

    /// Scans a container to its end, or, when `scan` watches fields, until one of the
    /// streamed fields opens its array (whose `[` is then the last byte of `frame`).
    fn scan_container(
        &mut self,
        frame: &mut FrameBuilder,
        scan: &mut ContainerScan,
    ) -> io::Result<Scanned> {
        loop {
            let Some(byte) = self.source.peek()? else {
                return Ok(Scanned::Ended(Some(FrameProblem::OpenAtEndOfInput)));
            };
            if byte == b'\n' && (scan.in_string || self.layout == Layout::Lines) {
                return Ok(Scanned::Ended(Some(FrameProblem::OpenAtEndOfLine)));
            }
            frame.push(byte);
            self.source.bump();
            if scan.in_string {
                match byte {
                    _ if scan.escaped => scan.escaped = false,
                    b'\\' => scan.escaped = true,
                    b'"' => scan.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => scan.in_string = true,
                b'[' if scan.watch && scan.depth == 1 => {
                    if let Some(field) = streamed_field_opening(&frame.bytes, self.streamed_fields)
                    {
                        return Ok(Scanned::StreamedArray(field));
                    }
                    scan.depth += 1;
                }
                b'{' | b'[' => scan.depth += 1,
                b'}' | b']' => {
                    scan.depth -= 1;
                    if scan.depth == 0 {
                        return Ok(Scanned::Ended(None));
                    }
                }
                _ => {}
            }
        }
    }

    fn scan_string(&mut self, frame: &mut FrameBuilder) -> io::Result<Option<FrameProblem>> {
        frame.push(b'"');
        self.source.bump();
        let mut escaped = false;
        loop {
            match self.source.peek()? {
                None => return Ok(Some(FrameProblem::OpenAtEndOfInput)),
                Some(b'\n') => return Ok(Some(FrameProblem::OpenAtEndOfLine)),
                Some(byte) => {
                    frame.push(byte);
                    self.source.bump();
                    match byte {
                        _ if escaped => escaped = false,
                        b'\\' => escaped = true,
                        b'"' => return Ok(None),
                        _ => {}
                    }
                }
            }
        }
    }

    /// A number or literal: up to the next delimiter. A token that is neither (a line of
    /// prose starting with `t`, say) is bad, and takes the rest of its line with it.
    fn scan_scalar(&mut self, frame: &mut FrameBuilder) -> io::Result<Option<FrameProblem>> {
        while let Some(byte) = self.source.peek()? {
            if matches!(
                byte,
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b'{' | b'}' | b'[' | b']' | b'"'
            ) && frame.pushed > 0
            {
                break;
            }
            frame.push(byte);
            self.source.bump();
        }
        if is_json_scalar(&frame.bytes) {
            Ok(None)
        } else {
            self.scan_rest_of_line(frame)
        }
    }

    /// Bytes that cannot start a JSON value: the rest of the line is one bad record.
    fn scan_rest_of_line(&mut self, frame: &mut FrameBuilder) -> io::Result<Option<FrameProblem>> {
        while let Some(byte) = self.source.peek()? {
            if byte == b'\n' {
                break;
            }
            frame.push(byte);
            self.source.bump();
        }
        Ok(None)
    }
}

fn is_json_scalar(token: &[u8]) -> bool {
    matches!(token, b"true" | b"false" | b"null")
        || std::str::from_utf8(token)
            .is_ok_and(|text| serde_json::from_str::<serde_json::Number>(text).is_ok())
}

/// Whether the bytes of a top-level object so far end with the key of a streamed field and
/// its colon, the `[` just read opening that field's array. At depth 1 outside strings, a
/// string followed by `:` is a key; the key must follow `{` or `,` so that an escaped quote
/// inside a longer key cannot pass for its start.
fn streamed_field_opening(bytes: &[u8], fields: &[&'static str]) -> Option<&'static str> {
    let before_bracket = bytes.strip_suffix(b"[")?.trim_ascii_end();
    let key = before_bracket.strip_suffix(b":")?.trim_ascii_end();
    let key = key.strip_suffix(b"\"")?;
    fields.iter().copied().find(|field| {
        key.strip_suffix(field.as_bytes())
            .and_then(|rest| rest.strip_suffix(b"\""))
            .is_some_and(|rest| matches!(rest.trim_ascii_end().last(), Some(b'{' | b',')))
    })
}

/// How a container scan ended.
enum Scanned {
    Ended(Option<FrameProblem>),
    /// The named streamed field's array begins; the scan resumes after its end.
    StreamedArray(&'static str),
}

/// Where the scan of a container stands, kept while an envelope's array is streamed.
#[derive(Debug)]
struct ContainerScan {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Watch the container's own keys for streamed fields (top-level objects only).
    watch: bool,
}

impl ContainerScan {
    fn new(watch: bool) -> Self {
        Self {
            depth: 0,
            in_string: false,
            escaped: false,
            watch,
        }
    }
}

/// Collects a frame's bytes up to the record limit, then only counts them.
#[derive(Debug)]
struct FrameBuilder {
    bytes: Vec<u8>,
    /// Bytes pushed, kept or not.
    pushed: u64,
    offset: u64,
    line: u64,
    limit: usize,
}

impl FrameBuilder {
    fn new<R>(source: &ByteSource<R>, limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            pushed: 0,
            offset: source.offset,
            line: source.line,
            limit,
        }
    }

    fn push(&mut self, byte: u8) {
        self.pushed += 1;
        if self.pushed as usize <= self.limit {
            self.bytes.push(byte);
        }
    }

    /// The frame, spanning everything read since it started.
    fn finish<R>(
        mut self,
        source: &ByteSource<R>,
        problem: Option<FrameProblem>,
        role: FrameRole,
    ) -> Frame {
        let too_large = self.pushed > self.limit as u64;
        if too_large {
            self.bytes.truncate(PREVIEW_BYTES);
            self.bytes.shrink_to_fit();
        }
        Frame {
            bytes: self.bytes,
            offset: self.offset,
            len: source.offset - self.offset,
            line: self.line,
            problem: if too_large {
                Some(FrameProblem::TooLarge { limit: self.limit })
            } else {
                problem
            },
            role,
        }
    }
}

/// A byte-at-a-time view of a reader, through its own buffer, that counts offset and lines.
#[derive(Debug)]
struct ByteSource<R> {
    inner: R,
    buffer: Box<[u8]>,
    pos: usize,
    filled: usize,
    offset: u64,
    line: u64,
}

impl<R: Read> ByteSource<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buffer: vec![0; READ_CHUNK].into_boxed_slice(),
            pos: 0,
            filled: 0,
            offset: 0,
            line: 1,
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = loop {
                match self.inner.read(&mut self.buffer) {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    result => break result?,
                }
            };
            if self.filled == 0 {
                return Ok(None);
            }
        }
        Ok(Some(self.buffer[self.pos]))
    }

    /// Consumes the byte returned by the last `peek`.
    fn bump(&mut self) {
        if self.buffer[self.pos] == b'\n' {
            self.line += 1;
        }
        self.pos += 1;
        self.offset += 1;
    }

    /// Consumes `prefix` if the stream starts with it.
    fn skip_prefix(&mut self, prefix: &[u8]) -> io::Result<()> {
        while self.filled - self.pos < prefix.len() {
            let read = self.inner.read(&mut self.buffer[self.filled..])?;
            if read == 0 {
                break;
            }
            self.filled += read;
        }
        if self.buffer[self.pos..self.filled].starts_with(prefix) {
            self.pos += prefix.len();
            self.offset += prefix.len() as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str, limit: usize) -> Vec<Frame> {
        let mut framer = Framer::new(input.as_bytes(), limit);
        std::iter::from_fn(|| framer.next_frame().expect("in-memory read")).collect::<Vec<_>>()
    }

    fn texts(input: &str) -> Vec<String> {
        frames(input, 1 << 20)
            .into_iter()
            .map(|frame| String::from_utf8(frame.bytes).expect("test input is UTF-8"))
            .collect()
    }

    #[test]
    fn json_lines_with_blank_lines_and_crlf_give_one_frame_per_line() {
        let input = "{\"a\":1}\r\n\r\n{\"b\":\"x\\ny\"}\r\n";
        assert_eq!(texts(input), vec!["{\"a\":1}", "{\"b\":\"x\\ny\"}"]);
        let framer_layout = {
            let mut framer = Framer::new(input.as_bytes(), 100);
            while framer.next_frame().expect("read").is_some() {}
            framer.layout()
        };
        assert_eq!(framer_layout, Layout::Lines);
    }

    #[test]
    fn concatenated_objects_without_separator_are_split() {
        assert_eq!(
            texts("{\"a\":\"}{\"}{\"b\":[1,{\"c\":2}]}{}"),
            vec!["{\"a\":\"}{\"}", "{\"b\":[1,{\"c\":2}]}", "{}"]
        );
    }

    #[test]
    fn top_level_array_elements_are_streamed_one_by_one() {
        let input = "[\n  {\"a\": [1, 2]},\n  {\"b\": \"]\"}\n]\n[{\"c\":3}]";
        assert_eq!(
            texts(input),
            vec!["{\"a\": [1, 2]}", "{\"b\": \"]\"}", "{\"c\":3}"]
        );
    }

    #[test]
    fn pretty_printed_document_spans_lines() {
        let input = "{\n  \"a\": {\n    \"b\": 1\n  }\n}\n";
        let mut framer = Framer::new(input.as_bytes(), 100);
        let frame = framer.next_frame().expect("read").expect("one frame");
        assert_eq!(frame.bytes, input.trim_end().as_bytes());
        assert_eq!(frame.problem, None);
        assert_eq!(framer.layout(), Layout::Document);
        assert!(framer.next_frame().expect("read").is_none());
    }

    #[test]
    fn byte_order_mark_is_skipped_and_offsets_count_it() {
        let input = "\u{feff}{\"a\":1}\n{\"b\":2}";
        let found = frames(input, 100);
        assert_eq!(found[0].bytes, b"{\"a\":1}");
        assert_eq!(found[0].offset, 3);
        assert_eq!(found[1].offset, 11);
        assert_eq!(found[1].line, 2);
    }

    #[test]
    fn truncated_line_is_cut_at_its_end_and_the_next_line_survives() {
        let found = frames("{\"a\":1}\n{\"b\": {\"c\": 1}\n{\"d\":2}\n", 100);
        assert_eq!(found.len(), 3);
        assert_eq!(found[1].problem, Some(FrameProblem::OpenAtEndOfLine));
        assert_eq!(found[1].line, 2);
        assert_eq!(found[2].bytes, b"{\"d\":2}");
        assert_eq!(found[2].problem, None);
    }

    #[test]
    fn unterminated_string_never_swallows_the_next_line() {
        let found = frames("{\"a\": \"oops\n{\"d\":2}", 100);
        assert_eq!(found[0].problem, Some(FrameProblem::OpenAtEndOfLine));
        assert_eq!(found[1].bytes, b"{\"d\":2}");
    }

    #[test]
    fn input_ending_inside_a_value_is_reported() {
        let found = frames("{\"a\":1}\n{\"b\":", 100);
        assert_eq!(found[1].problem, Some(FrameProblem::OpenAtEndOfInput));
    }

    #[test]
    fn oversized_record_keeps_only_a_preview_and_the_next_record_survives() {
        let big = format!("{{\"text\":\"{}\"}}", "x".repeat(5000));
        let input = format!("{{\"a\":1}}\n{big}\n{{\"b\":2}}\n");
        let found = frames(&input, 2048);
        assert_eq!(found.len(), 3);
        assert_eq!(
            found[1].problem,
            Some(FrameProblem::TooLarge { limit: 2048 })
        );
        assert_eq!(found[1].len, big.len() as u64);
        assert_eq!(found[1].bytes.len(), PREVIEW_BYTES);
        assert_eq!(found[2].bytes, b"{\"b\":2}");
    }

    #[test]
    fn garbage_is_one_frame_per_line_and_scalars_stop_at_delimiters() {
        assert_eq!(
            texts("hello world\n42 true\n}\nnot json at all\n-1.5e3 falsehood"),
            vec![
                "hello world",
                "42",
                "true",
                "}",
                "not json at all",
                "-1.5e3",
                "falsehood"
            ]
        );
    }

    const FIELDS: &[&str] = &["statuses", "data"];

    fn streamed(input: &str, limit: usize) -> Vec<(FrameRole, String, Option<FrameProblem>)> {
        let mut framer = Framer::new(input.as_bytes(), limit).streaming_fields(FIELDS);
        std::iter::from_fn(|| framer.next_frame().expect("in-memory read"))
            .map(|frame| {
                let text = String::from_utf8(frame.bytes).expect("test input is UTF-8");
                (frame.role, text, frame.problem)
            })
            .collect()
    }

    #[test]
    fn a_response_bigger_than_the_limit_is_streamed_element_by_element() {
        let status = |id: u32| {
            format!(
                "{{\"id_str\": \"{id}\", \"text\": \"{}\"}}",
                "z".repeat(200)
            )
        };
        let statuses: Vec<String> = (0..50).map(status).collect();
        let input = format!(
            "{{\n  \"search_metadata\": {{\"count\": 50}},\n  \"statuses\": [\n    {}\n  ],\n  \"next\": 1\n}}\n",
            statuses.join(",\n    ")
        );
        let mut framer = Framer::new(input.as_bytes(), 1024).streaming_fields(FIELDS);
        let found: Vec<Frame> = std::iter::from_fn(|| framer.next_frame().expect("read")).collect();
        assert_eq!(found.len(), 51);
        for (frame, expected) in found.iter().zip(&statuses) {
            assert_eq!(frame.role, FrameRole::Element("statuses"));
            assert_eq!(frame.problem, None);
            assert_eq!(frame.bytes, expected.as_bytes());
            let at = frame.offset as usize;
            assert_eq!(
                &input.as_bytes()[at..at + frame.len as usize],
                expected.as_bytes()
            );
        }
        assert_eq!(found[1].line, 5, "each element keeps its own line");
        let envelope = &found[50];
        assert_eq!(envelope.role, FrameRole::Envelope);
        assert_eq!(envelope.problem, None);
        assert_eq!(
            envelope.bytes,
            b"{\n  \"search_metadata\": {\"count\": 50},\n  \"statuses\": [],\n  \"next\": 1\n}"
        );
        assert_eq!((envelope.offset, envelope.line), (0, 1));
        assert_eq!(envelope.len as usize, input.trim_end().len());
        assert_eq!(framer.layout(), Layout::Document);
    }

    #[test]
    fn v2_pages_as_json_lines_stream_data_and_keep_includes_in_the_envelope() {
        let input = "{\"data\":[{\"id\":\"1\"},{\"id\":\"2\"}],\"includes\":{\"users\":[]}}\n\
                     {\"data\":[{\"id\":\"3\"},{\"id\":\n{\"data\":{\"id\":\"4\"},\"includes\":{}}\n";
        let found = streamed(input, 1 << 20);
        let element = |text: &str| (FrameRole::Element("data"), text.to_owned(), None);
        assert_eq!(
            found,
            vec![
                element("{\"id\":\"1\"}"),
                element("{\"id\":\"2\"}"),
                (
                    FrameRole::Envelope,
                    "{\"data\":[],\"includes\":{\"users\":[]}}".to_owned(),
                    None
                ),
                element("{\"id\":\"3\"}"),
                (
                    FrameRole::Element("data"),
                    "{\"id\":".to_owned(),
                    Some(FrameProblem::OpenAtEndOfLine)
                ),
                (
                    FrameRole::Envelope,
                    "{\"data\":[".to_owned(),
                    Some(FrameProblem::OpenAtEndOfLine)
                ),
                (
                    FrameRole::Whole,
                    "{\"data\":{\"id\":\"4\"},\"includes\":{}}".to_owned(),
                    None
                ),
            ],
            "a cut line costs its own records; `data` holding one tweet is not an array"
        );
    }

    #[test]
    fn only_the_top_level_keys_named_are_streamed() {
        let whole = |text: &str| vec![(FrameRole::Whole, text.to_owned(), None)];
        for input in [
            r#"{"a": {"data": [1, 2]}}"#,
            r#"{"datas": [1], "x": "data\":["}"#,
            r#"{"x\",\"data": [1]}"#,
            r#"{"statuses" : "not an array"}"#,
        ] {
            assert_eq!(streamed(input, 100), whole(input), "{input}");
        }
        let both = streamed(r#"{"statuses": [1], "data" : [ {"id":"2"} ] }"#, 100);
        let roles: Vec<FrameRole> = both.iter().map(|(role, ..)| *role).collect();
        assert_eq!(
            roles,
            [
                FrameRole::Element("statuses"),
                FrameRole::Element("data"),
                FrameRole::Envelope
            ]
        );
        assert_eq!(both[2].1, r#"{"statuses": [], "data" : [] }"#);
        let unstreamed = texts(r#"{"data": [1, 2]}"#);
        assert_eq!(
            unstreamed,
            vec![r#"{"data": [1, 2]}"#],
            "streaming is asked for"
        );
    }

    #[test]
    fn an_envelope_cut_short_is_reported_after_its_elements() {
        let found = streamed(r#"{"data": [{"id": "1"}, {"id": "2"}"#, 100);
        assert_eq!(found.len(), 3);
        assert_eq!(found[1].1, r#"{"id": "2"}"#);
        assert_eq!(found[2].0, FrameRole::Envelope);
        assert_eq!(found[2].2, Some(FrameProblem::OpenAtEndOfInput));
    }

    #[test]
    fn reads_across_buffer_boundaries() {
        let line = format!("{{\"text\":\"{}\"}}\n", "y".repeat(1000));
        let input = line.repeat(200);
        let found = frames(&input, 1 << 20);
        assert_eq!(found.len(), 200);
        assert!(
            found
                .iter()
                .all(|frame| frame.problem.is_none() && frame.bytes.len() == line.len() - 1)
        );
        assert_eq!(found[199].offset, 199 * line.len() as u64);
    }
}
