//! Opens a raw object for framing: detects gzip, bzip2, zstd and tar by their magic bytes
//! (never by file name), splits it into members (gzip members, zstd frames, tar files),
//! transcodes UTF-16 text (by its byte-order mark) to UTF-8, names the formats it
//! cannot read, and enforces the size limits, telling apart the failures that condemn the
//! object (too big, a bomb, a corrupt stream) from a failing source, which is transient and
//! worth a retry.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use bzip2::read::MultiBzDecoder;
use encoding_rs_io::DecodeReaderBytesBuilder;
use flate2::bufread::GzDecoder;
use serde::{Deserialize, Serialize};

use crate::tar::TarPosition;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const BZIP2_MAGIC: &[u8] = b"BZh";
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

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
/// Bytes looked at to recognise a format.
const HEAD_BYTES: usize = 512;

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
    /// An uncompressed POSIX tar archive: each regular file is read as a member.
    Tar,
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
         inside (JSON, JSON Lines; plain, gzip, bzip2 or zstd; or an uncompressed tar)"
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
    /// Explains the members' read errors.
    pub probe: StreamProbe,
    stored: BufReader<Box<dyn Read + 'a>>,
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
        let mut guarded = Guard {
            inner: raw,
            read: Rc::clone(&stored_read),
            limit: limits.max_object_bytes,
            on_limit: Stop::ObjectLimit(limits.max_object_bytes),
            on_error: Some(Stop::Source),
            stop: Rc::clone(&stop),
        };
        // Formats are told apart by their first bytes (tar's magic sits at byte 257): read
        // them whatever sizes the source hands over, then put them back in front.
        let mut head = Vec::with_capacity(HEAD_BYTES);
        if let Err(error) = (&mut guarded)
            .take(HEAD_BYTES as u64)
            .read_to_end(&mut head)
        {
            return Err(classify(stop.get(), error));
        }
        if let Some(format) = unsupported_format(&head) {
            return Err(StreamError::Unsupported { format });
        }
        let compression = compression_of(&head);
        let whole: Box<dyn Read + 'a> = Box::new(io::Cursor::new(head).chain(guarded));
        let stored = BufReader::with_capacity(64 * 1024, whole);
        let by_ratio = stored_len
            .unwrap_or(limits.max_object_bytes)
            .saturating_mul(limits.max_expansion_ratio);
        Ok(Self {
            compression,
            probe: StreamProbe { stop, stored_read },
            stored,
            decompressed_limit: limits.max_decompressed_bytes.min(by_ratio),
            decompressed_read: Rc::new(Cell::new(0)),
            members_opened: 0,
            tar: TarPosition::default(),
        })
    }

    /// The next member, its text decoded (UTF-16 with a byte-order mark becomes UTF-8;
    /// anything else passes through untouched, invalid UTF-8 included: the record that holds
    /// it is rejected alone, later); `None` once the object is read.
    pub fn next_member(&mut self) -> Result<Option<Member<'_>>, StreamError> {
        if self.compression == Compression::Tar {
            return self.next_tar_member();
        }
        if self.members_opened > 0 && !self.member_follows()? {
            return Ok(None);
        }
        self.members_opened += 1;
        let stop = Rc::clone(&self.probe.stop);
        let guard = Decompressed {
            read: Rc::clone(&self.decompressed_read),
            limit: self.decompressed_limit,
            stop: Rc::clone(&stop),
        };
        let stored = &mut self.stored;
        let decoded: Box<dyn Read + '_> =
            match self.compression {
                Compression::None | Compression::Tar => Box::new(stored),
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

    /// Whether another gzip member or zstd frame follows the one just read. Anything else
    /// after one is a corrupt stream, as a gzip or zstd reader would say.
    fn member_follows(&mut self) -> Result<bool, StreamError> {
        let (magic, kind) = match self.compression {
            Compression::Gzip => (GZIP_MAGIC, "gzip member"),
            Compression::Zstd => (ZSTD_MAGIC, "zstd frame"),
            Compression::None | Compression::Bzip2 | Compression::Tar => return Ok(false),
        };
        let rest = match self.stored.fill_buf() {
            Ok(rest) => rest,
            Err(error) => return Err(self.probe.classify(error)),
        };
        if rest.is_empty() {
            return Ok(false);
        }
        if !rest.starts_with(magic) {
            return Err(StreamError::Corrupt(io::Error::other(format!(
                "bytes after {kind} {} are not another {kind}",
                self.members_opened
            ))));
        }
        Ok(true)
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
    } else if head.get(TAR_MAGIC_AT..TAR_MAGIC_AT + 5) == Some(b"ustar") {
        Compression::Tar
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
        assert_eq!(input.compression, Compression::Tar);
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

    #[test]
    fn truncated_gzip_is_corrupt_not_transient() {
        let lines: String = (0..2000).map(|id| format!("{{\"a\":{id}}}\n")).collect();
        let data = gzip(lines.as_bytes());
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
                let count = self.0.len().min(buf.len()).min(16);
                buf[..count].copy_from_slice(&self.0[..count]);
                self.0 = &self.0[count..];
                Ok(count)
            }
        }
        let lines: String = (0..2000).map(|id| format!("{{\"a\":{id}}}\n")).collect();
        let data = gzip(lines.as_bytes());
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
