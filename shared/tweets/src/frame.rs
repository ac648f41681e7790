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
}

impl<R: Read> Framer<R> {
    pub fn new(reader: R, max_record_bytes: usize) -> Self {
        Self {
            source: ByteSource::new(reader),
            max_record_bytes,
            layout: Layout::Empty,
            in_array: false,
            started: false,
        }
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
        if !self.skip_separators()? {
            return Ok(None);
        }
        let mut frame = FrameBuilder::new(&self.source, self.max_record_bytes);
        let first = self.source.peek()?.unwrap_or_default();
        let outcome = match first {
            b'{' | b'[' => self.scan_container(&mut frame)?,
            b'"' => self.scan_string(&mut frame)?,
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scan_scalar(&mut frame)?,
            _ => self.scan_rest_of_line(&mut frame)?,
        };
        if self.layout == Layout::Empty && matches!(first, b'{' | b'[') && outcome.problem.is_none()
        {
            self.layout = if outcome.crossed_newline {
                Layout::Document
            } else {
                Layout::Lines
            };
        }
        Ok(Some(frame.finish(&self.source, outcome.problem)))
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

    fn scan_container(&mut self, frame: &mut FrameBuilder) -> io::Result<ScanOutcome> {
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        let mut crossed_newline = false;
        loop {
            let Some(byte) = self.source.peek()? else {
                return Ok(ScanOutcome::problem(FrameProblem::OpenAtEndOfInput));
            };
            if byte == b'\n' {
                if in_string || self.layout == Layout::Lines {
                    return Ok(ScanOutcome::problem(FrameProblem::OpenAtEndOfLine));
                }
                crossed_newline = true;
            }
            frame.push(byte);
            self.source.bump();
            if in_string {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(ScanOutcome {
                            problem: None,
                            crossed_newline,
                        });
                    }
                }
                _ => {}
            }
        }
    }

    fn scan_string(&mut self, frame: &mut FrameBuilder) -> io::Result<ScanOutcome> {
        frame.push(b'"');
        self.source.bump();
        let mut escaped = false;
        loop {
            match self.source.peek()? {
                None => return Ok(ScanOutcome::problem(FrameProblem::OpenAtEndOfInput)),
                Some(b'\n') => return Ok(ScanOutcome::problem(FrameProblem::OpenAtEndOfLine)),
                Some(byte) => {
                    frame.push(byte);
                    self.source.bump();
                    match byte {
                        _ if escaped => escaped = false,
                        b'\\' => escaped = true,
                        b'"' => return Ok(ScanOutcome::default()),
                        _ => {}
                    }
                }
            }
        }
    }

    /// A number or literal: up to the next delimiter. A token that is neither (a line of
    /// prose starting with `t`, say) is bad, and takes the rest of its line with it.
    fn scan_scalar(&mut self, frame: &mut FrameBuilder) -> io::Result<ScanOutcome> {
        while let Some(byte) = self.source.peek()? {
            if matches!(
                byte,
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b'{' | b'}' | b'[' | b']' | b'"'
            ) && frame.len > 0
            {
                break;
            }
            frame.push(byte);
            self.source.bump();
        }
        if is_json_scalar(&frame.bytes) {
            Ok(ScanOutcome::default())
        } else {
            self.scan_rest_of_line(frame)
        }
    }

    /// Bytes that cannot start a JSON value: the rest of the line is one bad record.
    fn scan_rest_of_line(&mut self, frame: &mut FrameBuilder) -> io::Result<ScanOutcome> {
        while let Some(byte) = self.source.peek()? {
            if byte == b'\n' {
                break;
            }
            frame.push(byte);
            self.source.bump();
        }
        Ok(ScanOutcome::default())
    }
}

fn is_json_scalar(token: &[u8]) -> bool {
    matches!(token, b"true" | b"false" | b"null")
        || std::str::from_utf8(token)
            .is_ok_and(|text| serde_json::from_str::<serde_json::Number>(text).is_ok())
}

#[derive(Debug, Default)]
struct ScanOutcome {
    problem: Option<FrameProblem>,
    crossed_newline: bool,
}

impl ScanOutcome {
    fn problem(problem: FrameProblem) -> Self {
        Self {
            problem: Some(problem),
            crossed_newline: false,
        }
    }
}

/// Collects a frame's bytes up to the record limit, then only counts them.
struct FrameBuilder {
    bytes: Vec<u8>,
    len: u64,
    offset: u64,
    line: u64,
    limit: usize,
}

impl FrameBuilder {
    fn new<R>(source: &ByteSource<R>, limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            len: 0,
            offset: source.offset,
            line: source.line,
            limit,
        }
    }

    fn push(&mut self, byte: u8) {
        self.len += 1;
        if self.len as usize <= self.limit {
            self.bytes.push(byte);
        }
    }

    fn finish<R>(mut self, source: &ByteSource<R>, problem: Option<FrameProblem>) -> Frame {
        debug_assert_eq!(self.offset + self.len, source.offset);
        let too_large = self.len > self.limit as u64;
        if too_large {
            self.bytes.truncate(PREVIEW_BYTES);
            self.bytes.shrink_to_fit();
        }
        Frame {
            bytes: self.bytes,
            offset: self.offset,
            len: self.len,
            line: self.line,
            problem: if too_large {
                Some(FrameProblem::TooLarge { limit: self.limit })
            } else {
                problem
            },
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
