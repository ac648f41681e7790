//! Reads a POSIX tar archive (ustar, GNU or pax) entry by entry from a stream, so each
//! regular file is ingested as a member of its own, with its own name, and nothing but the
//! current entry's header is held.
//!
//! Layout (POSIX.1-2001 `ustar`): 512-byte header blocks, each file's data padded to a
//! multiple of 512, two zero blocks at the end. Names longer than 100 bytes come from a GNU
//! `L` entry or a pax `x` entry's `path` record before the file's own header.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

const BLOCK: u64 = 512;

/// The regular file whose data comes next in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub name: String,
    pub size: u64,
}

/// Where the reader stands between entries: how much of the current entry (data and padding)
/// is still to be skipped, and how much of its data the member reader consumed.
#[derive(Debug, Default)]
pub struct TarPosition {
    padded: u64,
    consumed: Rc<Cell<u64>>,
}

impl TarPosition {
    /// Skips what is left of the current entry, then reads headers up to the next regular
    /// file; `None` at the end of the archive.
    pub fn next_entry(&mut self, stored: &mut impl Read) -> io::Result<Option<TarEntry>> {
        skip(stored, self.padded - self.consumed.get())?;
        (self.padded, self.consumed) = (0, Rc::default());
        let mut long_name = None;
        loop {
            let mut header = [0u8; BLOCK as usize];
            if !read_block(stored, &mut header)? || header.iter().all(|byte| *byte == 0) {
                return Ok(None);
            }
            verify_checksum(&header)?;
            let size = octal_or_binary(&header[124..136])?;
            let padded = size.div_ceil(BLOCK) * BLOCK;
            match header[156] {
                b'0' | 0 | b'7' => {
                    let name = long_name.unwrap_or_else(|| ustar_name(&header));
                    self.padded = padded;
                    return Ok(Some(TarEntry { name, size }));
                }
                b'L' => long_name = Some(text(&read_data(stored, size, padded)?)),
                b'x' => long_name = pax_path(&read_data(stored, size, padded)?).or(long_name),
                // Directories, links, devices, global pax headers: no records in them.
                _ => skip(stored, padded)?,
            }
        }
    }

    /// The current entry's data as a reader that counts what it consumes, so the next call
    /// to [`Self::next_entry`] skips only the rest.
    pub fn data<'r>(&self, stored: &'r mut (impl Read + 'r), size: u64) -> impl Read + 'r {
        Counted {
            inner: stored.take(size),
            consumed: Rc::clone(&self.consumed),
        }
    }
}

struct Counted<R> {
    inner: R,
    consumed: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + count as u64);
        Ok(count)
    }
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Fills `block`; `false` at a clean end of stream (an archive without its end blocks).
fn read_block(stored: &mut impl Read, block: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < block.len() {
        match stored.read(&mut block[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(corrupt("tar archive ends inside a header".to_owned())),
            count => filled += count,
        }
    }
    Ok(true)
}

fn skip(stored: &mut impl Read, count: u64) -> io::Result<()> {
    let skipped = io::copy(&mut stored.take(count), &mut io::sink())?;
    if skipped < count {
        return Err(corrupt("tar archive ends inside an entry".to_owned()));
    }
    Ok(())
}

/// An entry's data (a long name or pax records), at most 64 KiB; the padding is skipped.
fn read_data(stored: &mut impl Read, size: u64, padded: u64) -> io::Result<Vec<u8>> {
    if size > 64 << 10 {
        return Err(corrupt(format!("tar name entry of {size} bytes")));
    }
    let mut data = vec![0; size as usize];
    stored.read_exact(&mut data)?;
    skip(stored, padded - size)?;
    Ok(data)
}

/// The header checksum: the sum of its bytes with the checksum field read as spaces.
fn verify_checksum(header: &[u8; BLOCK as usize]) -> io::Result<()> {
    let stored = octal_or_binary(&header[148..156])?;
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(at, byte)| {
            u64::from(if (148..156).contains(&at) {
                b' '
            } else {
                *byte
            })
        })
        .sum();
    if sum != stored {
        return Err(corrupt(format!(
            "tar header checksum {stored} does not match its bytes ({sum})"
        )));
    }
    Ok(())
}

/// A numeric field: octal digits (NUL or space padded), or GNU base-256 when its first
/// byte has the high bit set.
fn octal_or_binary(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|byte| byte & 0x80 != 0) {
        return Ok(field[1..]
            .iter()
            .fold(u64::from(field[0] & 0x7f), |value, byte| {
                (value << 8) | u64::from(*byte)
            }));
    }
    let digits = text(field);
    let digits = digits.trim();
    if digits.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(digits, 8)
        .map_err(|_| corrupt(format!("tar header number `{digits}` is not octal")))
}

/// Bytes up to the first NUL, as text.
fn text(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `prefix/name` from a ustar header, or the bare name.
fn ustar_name(header: &[u8; BLOCK as usize]) -> String {
    let name = text(&header[..100]);
    let prefix = if &header[257..262] == b"ustar" {
        text(&header[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// The `path` record of pax extended-header data (`<len> path=<value>\n` records).
fn pax_path(data: &[u8]) -> Option<String> {
    String::from_utf8_lossy(data).lines().find_map(|record| {
        let (_, keyword_value) = record.split_once(' ')?;
        keyword_value.strip_prefix("path=").map(str::to_owned)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ustar header for a regular file (or `kind`) named `name` of `size` bytes.
    pub(crate) fn header(name: &str, size: u64, kind: u8) -> Vec<u8> {
        let mut header = vec![0u8; BLOCK as usize];
        header[..name.len()].copy_from_slice(name.as_bytes());
        header[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        header[156] = kind;
        header[257..263].copy_from_slice(b"ustar\0");
        header[148..156].copy_from_slice(b"        ");
        let sum: u64 = header.iter().map(|byte| u64::from(*byte)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        header
    }

    /// An archive of `(name, kind, data)` entries with its two end blocks.
    pub(crate) fn archive(entries: &[(&str, u8, &[u8])]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (name, kind, data) in entries {
            bytes.extend(header(name, data.len() as u64, *kind));
            bytes.extend_from_slice(data);
            bytes.resize(bytes.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
        }
        bytes.extend([0u8; 1024]);
        bytes
    }

    fn entries(bytes: &[u8], read_first: usize) -> Vec<(String, String)> {
        let mut stored = bytes;
        let mut position = TarPosition::default();
        let mut found = Vec::new();
        while let Some(entry) = position.next_entry(&mut stored).expect("valid archive") {
            let mut data = vec![0; read_first.min(entry.size as usize)];
            position
                .data(&mut stored, entry.size)
                .read_exact(&mut data)
                .expect("data");
            found.push((entry.name, String::from_utf8(data).expect("UTF-8")));
        }
        found
    }

    #[test]
    fn regular_files_come_out_with_their_names_whatever_was_read_of_the_last() {
        let long = format!("{}/tweets.jsonl", "d".repeat(120));
        let record = format!(" path={long}\n");
        let pax = format!("{}{record}", record.len() + 3);
        let bytes = archive(&[
            ("folder/", b'5', b""),
            ("a.json", b'0', b"{\"a\":1}"),
            ("././@LongLink", b'L', format!("{long}\0").as_bytes()),
            ("ignored-short-name", b'0', b"{\"b\":2}\n{\"c\":3}"),
            ("PaxHeaders/x", b'x', pax.as_bytes()),
            ("short", b'0', b""),
        ]);
        assert_eq!(
            entries(&bytes, 1000),
            [
                ("a.json".to_owned(), "{\"a\":1}".to_owned()),
                (long.clone(), "{\"b\":2}\n{\"c\":3}".to_owned()),
                (long.clone(), String::new()),
            ]
        );
        assert_eq!(
            entries(&bytes, 3).len(),
            3,
            "partly read entries are skipped"
        );
    }

    #[test]
    fn a_damaged_header_or_a_cut_archive_is_an_error() {
        let mut bytes = archive(&[("a.json", b'0', b"{}")]);
        bytes[0] = b'b';
        let mut stored = &bytes[..];
        let error = TarPosition::default()
            .next_entry(&mut stored)
            .expect_err("checksum");
        assert!(error.to_string().contains("checksum"), "{error}");

        let bytes = archive(&[("a.json", b'0', &[b'x'; 2000])]);
        let mut stored = &bytes[..1000];
        let mut position = TarPosition::default();
        position.next_entry(&mut stored).expect("first header");
        let error = position.next_entry(&mut stored).expect_err("cut");
        assert!(error.to_string().contains("ends inside"), "{error}");
    }
}
