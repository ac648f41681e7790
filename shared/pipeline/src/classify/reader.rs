//! Reads a clean object line by line on a blocking thread and hands its records over in
//! chunks, so classification starts before the object is read.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tweets::frame::Framer;
use tweets::{RawRecord, Rejection, SourceRef, Tweet};

use crate::text_lines::{EMPTY_TEXT, is_empty_text};

/// Longest line accepted from a clean object (ingest's own records are far smaller).
const MAX_LINE_BYTES: usize = 16 << 20;

/// Records read from the clean object, handed from the reading thread in chunks.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) tweets: Vec<(Tweet, SourceRef)>,
    pub(super) rejections: Vec<Rejection>,
    /// Bytes of the object read once this chunk was complete.
    pub(super) consumed: u64,
    pub(super) read: Duration,
}

/// Reads the clean object line by line on a blocking thread, sending parsed tweets and
/// rejections in chunks of `batch_size` tweets. Returns how many records it read.
pub(super) fn read_chunks(
    reader: impl std::io::Read,
    key: &str,
    batch_size: usize,
    sender: &mpsc::Sender<Chunk>,
) -> std::io::Result<u64> {
    let mut framer = Framer::new(reader, MAX_LINE_BYTES);
    let mut records = 0;
    let mut chunk = new_chunk();
    let mut reading = Instant::now();
    while let Some(frame) = framer.next_frame()? {
        let position = SourceRef {
            key: key.to_owned(),
            index: records,
            offset: frame.offset,
            line: frame.line,
        };
        records += 1;
        let parsed = match frame.problem {
            Some(problem) => Err(problem.to_string()),
            None => serde_json::from_slice::<Tweet>(&frame.bytes)
                .map_err(|error| format!("not a normalized tweet record: {error}"))
                .and_then(|tweet| {
                    if is_empty_text(&tweet.text) {
                        Err(EMPTY_TEXT.to_owned())
                    } else {
                        Ok(tweet)
                    }
                }),
        };
        match parsed {
            Ok(tweet) => chunk.tweets.push((tweet, position)),
            Err(error) => chunk.rejections.push(Rejection::new(
                position,
                frame.len,
                error,
                Some(RawRecord {
                    bytes: &frame.bytes,
                    cut_short: frame.problem.is_some(),
                }),
            )),
        }
        if chunk.tweets.len() >= batch_size {
            chunk.consumed = framer.offset();
            chunk.read = reading.elapsed();
            if sender
                .blocking_send(std::mem::replace(&mut chunk, new_chunk()))
                .is_err()
            {
                // The classifying side stopped (and reports why); nothing left to do.
                return Ok(records);
            }
            reading = Instant::now();
        }
    }
    chunk.consumed = framer.offset();
    chunk.read = reading.elapsed();
    // A closed channel here means the classifying side already failed and reports it.
    let _ = sender.blocking_send(chunk);
    Ok(records)
}

fn new_chunk() -> Chunk {
    Chunk {
        tweets: Vec::new(),
        rejections: Vec::new(),
        consumed: 0,
        read: Duration::ZERO,
    }
}
