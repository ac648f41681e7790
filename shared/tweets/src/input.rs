//! Opens a raw object for framing: detects gzip, bzip2, zstd and tar (plain or compressed)
//! by their magic bytes (never by file name), splits it into members (gzip members, zstd
//! frames, tar files), transcodes UTF-16 text (by its byte-order mark) to UTF-8, names the
//! formats it cannot read, and enforces the size limits, telling apart the failures that condemn the
//! object (too big, a bomb, a corrupt stream) from a failing source, which is transient and
//! worth a retry.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use bzip2::bufread::MultiBzDecoder;
use encoding_rs_io::DecodeReaderBytesBuilder;
use flate2::bufread::{GzDecoder, MultiGzDecoder};
use serde::{Deserialize, Serialize};

use crate::tar::TarPosition;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const BZIP2_MAGIC: &[u8] = b"BZh";
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// A skippable frame (zstd and lz4: `pzstd` writes one first) starts with 0x184D2A5?
/// little-endian, then its length as a 32-bit little-endian number.
const SKIPPABLE_MAGIC_TAIL: &[u8] = &[0x2a, 0x4d, 0x18];
const SKIPPABLE_HEADER_BYTES: usize = 8;

/// Formats recognised by their first bytes that ingest does not read, so the rejection says
/// what the object is rather than "invalid JSON".
const UNSUPPORTED_MAGIC: &[(&[u8], &str)] = &[
    (b"PK\x03\x04", "zip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"\xfd7zXZ\x00", "xz stream"),
    (b"\x04\x22\x4d\x18", "lz4 frame"),
    (b"Rar!\x1a\x07", "rar archive"),
];
/// A POSIX tar header carries `ustar` at this offset.
const TAR_MAGIC_AT: usize = 257;
const TAR_MAGIC: &[u8] = b"ustar";
/// Bytes looked at before reading: enough compressed bytes to decode the start of a tar
/// archive even from bzip2, which decodes nothing before its first block (at most 900 kB of
/// text) is whole.
const HEAD_BYTES: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;

/// Size limits for one object. Every limit turns into a clear rejection, never a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest object accepted, as stored (compressed or not).
    pub max_object_bytes: u64,
    /// Largest decompressed stream accepted from a gzip object.
    pub max_decompressed_bytes: u64,
    /// Largest decompressed/compressed ratio accepted from a gzip object: tweet JSON
    /// compresses about 10:1, a gzip bomb 1000:1.
    pub max_expansion_ratio: u64,
    /// Largest single record (one JSON value); must stay below what a process can hold.
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_object_bytes: 2 << 30,
            max_decompressed_bytes: 8 << 30,
            max_expansion_ratio: 100,
            max_record_bytes: 8 << 20,
        }
    }
}

/// How the object was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Bzip2,
    Zstd,
}

/// One part of an object read on its own: a gzip member, a zstd frame, a file of a tar
/// archive, or the whole object.
pub struct Member<'r> {
    /// The file's name inside a tar archive; `None` for the other kinds.
    pub name: Option<String>,
    pub reader: Box<dyn Read + 'r>,
}

impl std::fmt::Debug for Member<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A failure that ends the reading of an object.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The storage behind the reader failed: transient, the object itself may be fine.
    #[error("reading the object failed")]
    Source(#[source] io::Error),
    #[error("object is larger than the {limit}-byte limit (max_object_bytes)")]
    ObjectTooLarge { limit: u64 },
    #[error(
        "decompressed data exceeds the {limit}-byte limit (max_decompressed_bytes, or \
         max_expansion_ratio times the compressed size): refusing a possible gzip bomb"
    )]
    DecompressedTooLarge { limit: u64 },
    #[error("object cannot be decoded: {0}")]
    Corrupt(#[source] io::Error),
    #[error(
        "object is a {format}, which ingest does not read: unpack it and drop the files \
         inside (JSON, JSON Lines; plain, gzip, bzip2 or zstd; or a tar of them)"
    )]
    Unsupported { format: &'static str },
}

impl StreamError {
    /// Whether retrying the same object may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Source(_))
    }
}

/// Which guard stopped the stream, recorded where it happened because decoders are free to
/// wrap or replace the errors of the reader beneath them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Source,
    ObjectLimit(u64),
    DecompressedLimit(u64),
}

type StopCell = Rc<Cell<Option<Stop>>>;

/// A raw object opened for reading: its format detected and its size guarded. Its decoded
/// text is read member by member ([`OpenedInput::next_member`]): one per gzip member, zstd
/// frame or tar file, one for any other object, so that a record cut off at the end of one
/// member cannot swallow the start of the next.
pub struct OpenedInput<'a> {
    pub compression: Compression,
    /// Whether the (decompressed) object is a POSIX tar archive, read file by file.
    pub tar_archive: bool,
    /// Explains the members' read errors.
    pub probe: StreamProbe,
    /// The object as stored; for a compressed tar archive, decompressed, since the archive
    /// spans every gzip member or zstd frame.
    stored: Lookahead<Box<dyn Read + 'a>>,
    /// The decompressed-size guard, shared by every member.
    decompressed_limit: u64,
    decompressed_read: Rc<Cell<u64>>,
    members_opened: u64,
    tar: TarPosition,
}

impl std::fmt::Debug for OpenedInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedInput")
            .field("compression", &self.compression)
            .field("tar_archive", &self.tar_archive)
            .field("probe", &self.probe)
            .field("members_opened", &self.members_opened)
            .finish_non_exhaustive()
    }
}

/// Knows why a member's reader stopped and how much of the object it read.
#[derive(Debug, Clone)]
pub struct StreamProbe {
    stop: StopCell,
    stored_read: Rc<Cell<u64>>,
}

impl StreamProbe {
    /// Turns an error met while reading a member into what it means.
    pub fn classify(&self, error: io::Error) -> StreamError {
        classify(self.stop.get(), error)
    }

    /// Bytes of the stored object read so far.
    pub fn stored_bytes_read(&self) -> u64 {
        self.stored_read.get()
    }
}

impl<'a> OpenedInput<'a> {
    /// Opens `raw`, whose stored size is `stored_len` when the storage says so.
    pub fn open(
        raw: impl Read + 'a,
        stored_len: Option<u64>,
        limits: &Limits,
    ) -> Result<Self, StreamError> {
        if stored_len.is_some_and(|len| len > limits.max_object_bytes) {
            return Err(StreamError::ObjectTooLarge {
                limit: limits.max_object_bytes,
            });
        }
        let stop: StopCell = Rc::default();
        let stored_read = Rc::new(Cell::new(0));
        let guarded = Guard {
            inner: raw,
            read: Rc::clone(&stored_read),
            limit: limits.max_object_bytes,
            on_limit: Stop::ObjectLimit(limits.max_object_bytes),
            on_error: Some(Stop::Source),
            stop: Rc::clone(&stop),
        };
        let mut stored = Lookahead::new(Box::new(guarded) as Box<dyn Read + 'a>);
        let head = match stored.peek(HEAD_BYTES) {
            Ok(head) => head,
            Err(error) => return Err(classify(stop.get(), error)),
        };
        let magic = past_skippable_frames(head);
        if let Some(format) = unsupported_format(magic) {
            return Err(StreamError::Unsupported { format });
        }
        let compression = compression_of(magic);
        let tar_archive = is_tar(&decoded_start(compression, head));
        let by_ratio = stored_len
            .unwrap_or(limits.max_object_bytes)
            .saturating_mul(limits.max_expansion_ratio);
        let mut opened = Self {
            compression,
            tar_archive,
            probe: StreamProbe { stop, stored_read },
            stored,
            decompressed_limit: limits.max_decompressed_bytes.min(by_ratio),
            decompressed_read: Rc::new(Cell::new(0)),
            members_opened: 0,
            tar: TarPosition::default(),
        };
        if tar_archive && compression != Compression::None {
            opened.decompress_whole();
        }
        Ok(opened)
    }

    /// Reads a compressed tar archive through one decoder for every gzip member, bzip2
    /// stream or zstd frame, since its files may straddle them.
    fn decompress_whole(&mut self) {
        let empty = Lookahead::new(Box::new(io::empty()) as Box<dyn Read + 'a>);
        let stored = std::mem::replace(&mut self.stored, empty);
        let decoded: Box<dyn Read + 'a> = match self.compression {
            Compression::None => Box::new(stored),
            Compression::Gzip => Box::new(self.guard().around(MultiGzDecoder::new(stored))),
            Compression::Bzip2 => Box::new(self.guard().around(MultiBzDecoder::new(stored))),
            Compression::Zstd => Box::new(self.guard().around(ZstdFrames::new(stored))),
        };
        self.stored = Lookahead::new(decoded);
    }

    fn guard(&self) -> Decompressed {
        Decompressed {
            read: Rc::clone(&self.decompressed_read),
            limit: self.decompressed_limit,
            stop: Rc::clone(&self.probe.stop),
        }
    }

    /// The next member, its text decoded (UTF-16 with a byte-order mark becomes UTF-8;
    /// anything else passes through untouched, invalid UTF-8 included: the record that holds
    /// it is rejected alone, later); `None` once the object is read.
    pub fn next_member(&mut self) -> Result<Option<Member<'_>>, StreamError> {
        if self.tar_archive {
            return self.next_tar_member();
        }
        match member_follows(&mut self.stored, self.compression, self.members_opened) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(error) => return Err(self.probe.classify(error)),
        }
        self.members_opened += 1;
        let stop = Rc::clone(&self.probe.stop);
        let guard = self.guard();
        let stored = &mut self.stored;
        let decoded: Box<dyn Read + '_> =
            match self.compression {
                Compression::None => Box::new(stored),
                Compression::Gzip => Box::new(guard.around(GzDecoder::new(stored))),
                Compression::Bzip2 => Box::new(guard.around(MultiBzDecoder::new(stored))),
                // zstd reads its frame header here, so this can fail like a read.
                Compression::Zstd => Box::new(guard.around(
                    ruzstd::decoding::StreamingDecoder::new(stored).map_err(|error| {
                        classify(stop.get(), io::Error::other(error.to_string()))
                    })?,
                )),
            };
        Ok(Some(Member {
            name: None,
            reader: text(decoded),
        }))
    }

    /// The next regular file of a tar archive.
    fn next_tar_member(&mut self) -> Result<Option<Member<'_>>, StreamError> {
        let entry = match self.tar.next_entry(&mut self.stored) {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                // Read the padding after the end-of-archive blocks too, so the manifest's
                // `bytes_stored` is the object's size, not however far the last read reached.
                return match io::copy(&mut self.stored, &mut io::sink()) {
                    Ok(_) => Ok(None),
                    Err(error) => Err(self.probe.classify(error)),
                };
            }
            Err(error) => return Err(self.probe.classify(error)),
        };
        self.members_opened += 1;
        Ok(Some(Member {
            name: Some(entry.name),
            reader: text(Box::new(self.tar.data(&mut self.stored, entry.size))),
        }))
    }
}

/// Whether member number `opened` (from 0) follows: the object itself for plain and bzip2
/// objects (bzip2 reads its streams on its own), then each gzip member or zstd frame, with
/// zstd's skippable frames skipped. Anything else after a member is a corrupt stream, as a
/// gzip or zstd reader would say.
fn member_follows<R: Read>(
    stored: &mut Lookahead<R>,
    compression: Compression,
    opened: u64,
) -> io::Result<bool> {
    let (magic, kind) = match compression {
        Compression::Gzip => (GZIP_MAGIC, "gzip member"),
        Compression::Zstd => {
            skip_skippable_frames(stored)?;
            (ZSTD_MAGIC, "zstd frame")
        }
        Compression::None | Compression::Bzip2 => return Ok(opened == 0),
    };
    if opened == 0 {
        return Ok(true);
    }
    let rest = stored.peek(magic.len())?;
    if rest.is_empty() {
        return Ok(false);
    }
    if rest != magic {
        return Err(io::Error::other(format!(
            "bytes after {kind} {opened} are not another {kind}"
        )));
    }
    Ok(true)
}

fn skip_skippable_frames<R: Read>(stored: &mut Lookahead<R>) -> io::Result<()> {
    loop {
        let header = stored.peek(SKIPPABLE_HEADER_BYTES)?;
        let Some(length) = skippable_frame_length(header) else {
            return Ok(());
        };
        stored.consume(SKIPPABLE_HEADER_BYTES);
        let skipped = io::copy(&mut (&mut *stored).take(length), &mut io::sink())?;
        if skipped < length {
            return Err(io::Error::other("stream ends inside a skippable frame"));
        }
    }
}

/// The length of the skippable frame whose header `bytes` starts with.
fn skippable_frame_length(bytes: &[u8]) -> Option<u64> {
    let header = bytes.get(..SKIPPABLE_HEADER_BYTES)?;
    let is_skippable = header[0] & 0xf0 == 0x50 && &header[1..4] == SKIPPABLE_MAGIC_TAIL;
    is_skippable.then(|| {
        u64::from(u32::from_le_bytes([
            header[4], header[5], header[6], header[7],
        ]))
    })
}

/// `head` past any skippable frames it starts with, where a zstd or lz4 frame's magic is.
fn past_skippable_frames(mut head: &[u8]) -> &[u8] {
    while let Some(length) = skippable_frame_length(head) {
        let next = usize::try_from(length)
            .ok()
            .and_then(|length| length.checked_add(SKIPPABLE_HEADER_BYTES));
        match next.and_then(|next| head.get(next..)) {
            Some(rest) => head = rest,
            None => return &[],
        }
    }
    head
}

/// The first decoded bytes of `head`, as far as they decode (the head may end mid-stream).
fn decoded_start(compression: Compression, head: &[u8]) -> Vec<u8> {
    let decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(head),
        Compression::Gzip => Box::new(MultiGzDecoder::new(head)),
        Compression::Bzip2 => Box::new(MultiBzDecoder::new(head)),
        Compression::Zstd => Box::new(ZstdFrames::new(Lookahead::new(head))),
    };
    let mut start = Vec::new();
    // An error only means the head ends before the stream does: what decoded is kept.
    let _ = decoder
        .take((TAR_MAGIC_AT + TAR_MAGIC.len()) as u64)
        .read_to_end(&mut start);
    start
}

fn is_tar(start: &[u8]) -> bool {
    start.get(TAR_MAGIC_AT..TAR_MAGIC_AT + TAR_MAGIC.len()) == Some(TAR_MAGIC)
}

/// Every frame of a zstd stream, one after the other, skippable frames skipped.
struct ZstdFrames<R: Read> {
    between: Option<Lookahead<R>>,
    frame: Option<ruzstd::decoding::StreamingDecoder<Lookahead<R>, ruzstd::decoding::FrameDecoder>>,
    frames_read: u64,
}

impl<R: Read> ZstdFrames<R> {
    fn new(stored: Lookahead<R>) -> Self {
        Self {
            between: Some(stored),
            frame: None,
            frames_read: 0,
        }
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(frame) = &mut self.frame {
                let count = frame.read(buf)?;
                if count > 0 || buf.is_empty() {
                    return Ok(count);
                }
                self.between = self.frame.take().map(|frame| frame.into_inner());
            }
            let Some(mut stored) = self.between.take() else {
                return Ok(0);
            };
            if !member_follows(&mut stored, Compression::Zstd, self.frames_read)? {
                return Ok(0);
            }
            self.frames_read += 1;
            let frame = ruzstd::decoding::StreamingDecoder::new(stored)
                .map_err(|error| io::Error::other(error.to_string()))?;
            self.frame = Some(frame);
        }
    }
}

/// A buffered reader that can look a given number of bytes ahead, however the source hands
/// them over (a format's magic may straddle two network reads).
struct Lookahead<R> {
    inner: R,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: Read> Lookahead<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buffer: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// The next `count` bytes without consuming them; fewer only at the end of the stream.
    fn peek(&mut self, count: usize) -> io::Result<&[u8]> {
        while self.end - self.start < count {
            self.buffer.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            // Grow a chunk at a time, so a small object never costs a large buffer.
            if self.end == self.buffer.len() {
                let grown = (self.buffer.len() + READ_CHUNK).min(count.max(READ_CHUNK));
                self.buffer.resize(grown, 0);
            }
            let read = match self.inner.read(&mut self.buffer[self.end..]) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                result => result?,
            };
            if read == 0 {
                break;
            }
            self.end += read;
        }
        let available = (self.end - self.start).min(count);
        Ok(&self.buffer[self.start..self.start + available])
    }
}

impl<R: Read> Read for Lookahead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl<R: Read> BufRead for Lookahead<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.peek(1)?;
        }
        Ok(&self.buffer[self.start..self.end])
    }

    fn consume(&mut self, amount: usize) {
        self.start = (self.start + amount).min(self.end);
    }
}

/// UTF-16 with a byte-order mark transcoded to UTF-8; anything else passed through.
fn text<'r>(decoded: Box<dyn Read + 'r>) -> Box<dyn Read + 'r> {
    Box::new(
        DecodeReaderBytesBuilder::new()
            .bom_sniffing(true)
            .utf8_passthru(true)
            .build(decoded),
    )
}

fn compression_of(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(BZIP2_MAGIC)
        && head
            .get(3)
            .is_some_and(|level| (b'1'..=b'9').contains(level))
    {
        Compression::Bzip2
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn unsupported_format(head: &[u8]) -> Option<&'static str> {
    UNSUPPORTED_MAGIC
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, format)| *format)
}

fn classify(stop: Option<Stop>, error: io::Error) -> StreamError {
    match stop {
        Some(Stop::Source) => StreamError::Source(error),
        Some(Stop::ObjectLimit(limit)) => StreamError::ObjectTooLarge { limit },
        Some(Stop::DecompressedLimit(limit)) => StreamError::DecompressedTooLarge { limit },
        None => StreamError::Corrupt(error),
    }
}

/// The decompressed-size limit over all members of an object.
struct Decompressed {
    read: Rc<Cell<u64>>,
    limit: u64,
    stop: StopCell,
}

impl Decompressed {
    fn around<R: Read>(self, decoder: R) -> Guard<R> {
        Guard {
            inner: decoder,
            read: self.read,
            limit: self.limit,
            on_limit: Stop::DecompressedLimit(self.limit),
            on_error: None,
            stop: self.stop,
        }
    }
}

/// Counts bytes through a reader, fails past `limit`, and records why it stopped.
struct Guard<R> {
    inner: R,
    read: Rc<Cell<u64>>,
    limit: u64,
    on_limit: Stop,
    /// What an error of `inner` means; `None` lets the caller call it corruption.
    on_error: Option<Stop>,
    stop: StopCell,
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = match self.inner.read(buf) {
            Ok(count) => count,
            Err(error) => {
                if error.kind() != io::ErrorKind::Interrupted && self.stop.get().is_none() {
                    self.stop.set(self.on_error);
                }
                return Err(error);
            }
        };
        let total = self.read.get() + count as u64;
        self.read.set(total);
        if total > self.limit {
            self.stop.set(Some(self.on_limit));
            return Err(io::Error::other("size limit exceeded"));
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression as Level;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Level::default());
        encoder.write_all(data).expect("in-memory write");
        encoder.finish().expect("in-memory gzip")
    }

    /// A reader that hands over at most 100 bytes a call, as a network body may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let count = buf.len().min(100).min(self.0.len());
            buf[..count].copy_from_slice(&self.0[..count]);
            self.0 = &self.0[count..];
            Ok(count)
        }
    }

    /// Every member's decoded bytes, one after the other.
    fn read_all(input: &mut OpenedInput<'_>) -> Result<Vec<u8>, StreamError> {
        let probe = input.probe.clone();
        let mut out = Vec::new();
        while let Some(mut member) = input.next_member()? {
            member
                .reader
                .read_to_end(&mut out)
                .map_err(|error| probe.classify(error))?;
        }
        Ok(out)
    }

    #[test]
    fn plain_input_passes_through() {
        let mut input =
            OpenedInput::open(&b"{\"a\":1}"[..], None, &Limits::default()).expect("opens");
        assert_eq!(input.compression, Compression::None);
        assert_eq!(read_all(&mut input).expect("reads"), b"{\"a\":1}");
    }

    #[test]
    fn gzip_members_are_read_one_at_a_time() {
        let mut data = gzip(b"{\"a\":");
        data.extend(gzip(b""));
        data.extend(gzip(b"{\"b\":2}"));
        let mut input = OpenedInput::open(&data[..], Some(data.len() as u64), &Limits::default())
            .expect("opens");
        let mut members = Vec::new();
        while let Some(mut member) = input.next_member().expect("a member") {
            let mut text = String::new();
            member.reader.read_to_string(&mut text).expect("decodes");
            members.push(text);
        }
        assert_eq!(members, ["{\"a\":", "", "{\"b\":2}"]);
    }

    #[test]
    fn every_zstd_frame_is_read() {
        let frame = |text: &[u8]| {
            ruzstd::encoding::compress_to_vec(text, ruzstd::encoding::CompressionLevel::Fastest)
        };
        let mut data = frame(b"{\"a\":1}\n");
        data.extend(frame(b"{\"b\":2}\n"));
        let mut input = OpenedInput::open(&data[..], Some(data.len() as u64), &Limits::default())
            .expect("opens");
        assert_eq!(
            read_all(&mut input).expect("decodes"),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
    }

    #[test]
    fn bytes_after_a_gzip_member_that_are_not_gzip_are_a_corrupt_stream() {
        let mut data = gzip(b"{\"a\":1}\n");
        data.extend(b"trailing garbage");
        let mut input = OpenedInput::open(&data[..], Some(data.len() as u64), &Limits::default())
            .expect("opens");
        let error = read_all(&mut input).expect_err("corrupt");
        assert!(matches!(error, StreamError::Corrupt(_)), "{error}");
        assert!(
            error.to_string().contains("not another gzip member"),
            "{error}"
        );
    }

    #[test]
    fn gzip_is_detected_by_magic_bytes_and_members_are_concatenated() {
        let mut data = gzip(b"{\"a\":1}\n");
        data.extend(gzip(b"{\"b\":2}\n"));
        let mut input = OpenedInput::open(&data[..], Some(data.len() as u64), &Limits::default())
            .expect("opens");
        assert_eq!(input.compression, Compression::Gzip);
        assert_eq!(
            read_all(&mut input).expect("reads"),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
    }

    #[test]
    fn bzip2_and_zstd_are_detected_by_magic_bytes_and_decoded() {
        let json = b"{\"a\":1}\n{\"b\":2}\n";
        let mut bzip2 = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bzip2.write_all(json).expect("in-memory write");
        let bzip2 = bzip2.finish().expect("in-memory bzip2");
        let zstd = ruzstd::encoding::compress_to_vec(
            &json[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (stored, compression) in [(bzip2, Compression::Bzip2), (zstd, Compression::Zstd)] {
            let mut input =
                OpenedInput::open(&stored[..], Some(stored.len() as u64), &Limits::default())
                    .expect("opens");
            assert_eq!(input.compression, compression);
            assert_eq!(read_all(&mut input).expect("decodes"), json);
        }
    }

    #[test]
    fn utf16_with_a_byte_order_mark_is_read_as_utf8() {
        let json = "{\"text\":\"café 😡\"}\n";
        let little: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(json.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let big: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain(json.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        for stored in [little, big] {
            let mut input =
                OpenedInput::open(&stored[..], None, &Limits::default()).expect("opens");
            let text = read_all(&mut input).expect("transcodes");
            assert_eq!(
                String::from_utf8(text)
                    .expect("UTF-8")
                    .trim_start_matches('\u{feff}'),
                json
            );
        }
    }

    #[test]
    fn a_tar_archive_is_read_file_by_file() {
        let mut stored = crate::tar::tests::archive(&[
            ("a.jsonl", b'0', b"{\"a\":1}\n{\"a\":"),
            ("notes/", b'5', b""),
            ("notes/b.json", b'0', b"[{\"b\":2}]"),
        ]);
        // tar pads archives to 10 KiB records; the network hands bytes over in small reads.
        stored.resize(10240, 0);
        let trickle = Trickle(&stored[..]);
        let mut input = OpenedInput::open(trickle, None, &Limits::default()).expect("opens");
        assert!(input.tar_archive);
        assert_eq!(input.compression, Compression::None);
        let mut members = Vec::new();
        while let Some(mut member) = input.next_member().expect("a member") {
            let mut text = String::new();
            member.reader.read_to_string(&mut text).expect("reads");
            members.push((member.name.expect("a file name"), text));
        }
        assert_eq!(
            members,
            [
                ("a.jsonl".to_owned(), "{\"a\":1}\n{\"a\":".to_owned()),
                ("notes/b.json".to_owned(), "[{\"b\":2}]".to_owned()),
            ]
        );
        assert_eq!(
            input.probe.stored_bytes_read(),
            stored.len() as u64,
            "the whole object is read, however it arrives"
        );
    }

    fn bzip2(data: &[u8]) -> Vec<u8> {
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        encoder.write_all(data).expect("in-memory write");
        encoder.finish().expect("in-memory bzip2")
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    /// A skippable frame, as `pzstd` writes before its frames.
    fn skippable(content: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x5e, 0x2a, 0x4d, 0x18];
        frame.extend((content.len() as u32).to_le_bytes());
        frame.extend(content);
        frame
    }

    fn tar_members(input: &mut OpenedInput<'_>) -> Vec<(String, String)> {
        let mut members = Vec::new();
        while let Some(mut member) = input.next_member().expect("a member") {
            let mut text = String::new();
            member.reader.read_to_string(&mut text).expect("reads");
            members.push((member.name.expect("a file name"), text));
        }
        members
    }

    #[test]
    fn a_compressed_tar_archive_is_read_file_by_file_across_members_and_frames() {
        let big = "{\"big\":1}\n".repeat(30_000);
        let archive = crate::tar::tests::archive(&[
            ("a.jsonl", b'0', b"{\"a\":1}\n"),
            ("big.jsonl", b'0', big.as_bytes()),
            ("c.json", b'0', b"{\"c\":3}"),
        ]);
        let (first, second) = archive.split_at(700);
        let gzip_members = [gzip(first), gzip(second)].concat();
        let zstd_frames = [
            skippable(b"pzstd"),
            zstd(first),
            skippable(b""),
            zstd(second),
        ]
        .concat();
        for (stored, compression) in [
            (gzip(&archive), Compression::Gzip),
            (gzip_members, Compression::Gzip),
            (bzip2(&archive), Compression::Bzip2),
            (zstd_frames, Compression::Zstd),
        ] {
            let mut input =
                OpenedInput::open(Trickle(&stored), None, &Limits::default()).expect("opens");
            assert_eq!((input.compression, input.tar_archive), (compression, true));
            assert_eq!(
                tar_members(&mut input),
                [
                    ("a.jsonl".to_owned(), "{\"a\":1}\n".to_owned()),
                    ("big.jsonl".to_owned(), big.clone()),
                    ("c.json".to_owned(), "{\"c\":3}".to_owned()),
                ],
                "{compression:?}"
            );
            assert_eq!(input.probe.stored_bytes_read(), stored.len() as u64);
        }
    }

    #[test]
    fn a_compressed_tar_bomb_is_stopped_by_the_decompressed_limit() {
        let archive = crate::tar::tests::archive(&[("a.jsonl", b'0', &[b' '; 1 << 20])]);
        let stored = gzip(&archive);
        let mut input =
            OpenedInput::open(&stored[..], Some(stored.len() as u64), &Limits::default())
                .expect("opens");
        assert!(input.tar_archive);
        let probe = input.probe.clone();
        let mut member = input.next_member().expect("first file").expect("one file");
        let error = io::copy(&mut member.reader, &mut io::sink()).expect_err("a bomb");
        assert!(matches!(
            probe.classify(error),
            StreamError::DecompressedTooLarge { .. }
        ));
    }

    #[test]
    fn zstd_skippable_frames_are_skipped_wherever_they_are() {
        let stored = [
            skippable(b"index"),
            zstd(b"{\"a\":1}\n"),
            skippable(&[7; 70_000]),
            zstd(b"{\"b\":2}\n"),
            skippable(b""),
        ]
        .concat();
        let mut input =
            OpenedInput::open(Trickle(&stored), None, &Limits::default()).expect("opens");
        assert_eq!(input.compression, Compression::Zstd);
        assert_eq!(
            read_all(&mut input).expect("decodes"),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
        let lz4 = [skippable(b"x"), b"\x04\x22\x4d\x18rest".to_vec()].concat();
        let error = OpenedInput::open(&lz4[..], None, &Limits::default()).expect_err("lz4");
        assert!(error.to_string().contains("lz4 frame"), "{error}");
    }

    #[test]
    fn formats_ingest_does_not_read_are_named() {
        for (stored, format) in [
            (b"PK\x03\x04rest of a zip".to_vec(), "zip archive"),
            (b"7z\xbc\xaf\x27\x1cmore".to_vec(), "7z archive"),
        ] {
            let error =
                OpenedInput::open(&stored[..], None, &Limits::default()).expect_err("not readable");
            assert!(!error.is_transient());
            assert!(
                error.to_string().contains(&format!("object is a {format}")),
                "{error}"
            );
        }
    }

    #[test]
    fn gzip_bomb_is_refused_by_expansion_ratio() {
        let bomb = gzip(&vec![b' '; 20 << 20]);
        let mut input = OpenedInput::open(&bomb[..], Some(bomb.len() as u64), &Limits::default())
            .expect("opens");
        let error = read_all(&mut input).expect_err("refused");
        assert!(
            matches!(error, StreamError::DecompressedTooLarge { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("gzip bomb"));
    }

    #[test]
    fn gzip_bomb_is_refused_by_absolute_limit_when_size_is_unknown() {
        let bomb = gzip(&vec![b' '; 4 << 20]);
        let limits = Limits {
            max_decompressed_bytes: 1 << 20,
            ..Limits::default()
        };
        let mut input = OpenedInput::open(&bomb[..], None, &limits).expect("opens");
        let error = read_all(&mut input).expect_err("refused");
        assert!(matches!(
            error,
            StreamError::DecompressedTooLarge { limit } if limit == 1 << 20
        ));
    }

    #[test]
    fn object_over_the_limit_is_refused_before_reading_when_its_size_is_known() {
        let limits = Limits {
            max_object_bytes: 10,
            ..Limits::default()
        };
        let error = OpenedInput::open(&[b' '; 11][..], Some(11), &limits).expect_err("refused");
        assert!(matches!(error, StreamError::ObjectTooLarge { limit: 10 }));
    }

    #[test]
    fn object_over_the_limit_is_refused_while_reading_when_its_size_is_unknown() {
        let limits = Limits {
            max_object_bytes: 100_000,
            ..Limits::default()
        };
        let data = vec![b' '; 200_000];
        let error = match OpenedInput::open(&data[..], None, &limits) {
            Err(error) => error,
            Ok(mut input) => read_all(&mut input).expect_err("refused"),
        };
        assert!(matches!(
            error,
            StreamError::ObjectTooLarge { limit: 100_000 }
        ));
    }

    /// JSON Lines that gzip cannot shrink much, so half of it lies past the head.
    fn gzip_beyond_the_head() -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let lines: String = (0..220_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("{{\"a\":\"{state:016x}\"}}\n")
            })
            .collect();
        gzip(lines.as_bytes())
    }

    #[test]
    fn truncated_gzip_is_corrupt_not_transient() {
        let data = gzip_beyond_the_head();
        assert!(
            data.len() / 2 > HEAD_BYTES,
            "the failure comes after the head"
        );
        let cut = &data[..data.len() / 2];
        let mut input = OpenedInput::open(cut, None, &Limits::default()).expect("opens");
        let error = read_all(&mut input).expect_err("corrupt");
        assert!(matches!(error, StreamError::Corrupt(_)), "{error:?}");
        assert!(!error.is_transient());
    }

    #[test]
    fn source_failure_is_transient_even_through_the_decoder() {
        struct Failing<'a>(&'a [u8]);
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
                }
                let count = self.0.len().min(buf.len()).min(4096);
                buf[..count].copy_from_slice(&self.0[..count]);
                self.0 = &self.0[count..];
                Ok(count)
            }
        }
        let data = gzip_beyond_the_head();
        assert!(
            data.len() / 2 > HEAD_BYTES,
            "the failure comes after the head"
        );
        let mut input =
            OpenedInput::open(Failing(&data[..data.len() / 2]), None, &Limits::default())
                .expect("opens");
        let error = read_all(&mut input).expect_err("fails");
        assert!(error.is_transient(), "{error:?}");
    }
}
