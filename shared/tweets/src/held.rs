//! Frames held back until their response's context arrives (v2 `includes` follow `data`):
//! in memory up to a bound, then in an anonymous temporary file, so a response of any size
//! is read with bounded memory.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

use crate::frame::{Frame, FrameProblem, FrameRole};

/// Frames of one array field, in stream order.
#[derive(Debug)]
pub struct HeldFrames {
    field: &'static str,
    in_memory: Vec<Frame>,
    bytes_in_memory: usize,
    memory_limit: usize,
    spilled: Option<BufWriter<File>>,
}

impl HeldFrames {
    /// Holds up to `memory_limit` bytes of frames in memory before spilling all of them.
    pub fn new(field: &'static str, memory_limit: usize) -> Self {
        Self {
            field,
            in_memory: Vec::new(),
            bytes_in_memory: 0,
            memory_limit,
            spilled: None,
        }
    }

    pub fn field(&self) -> &'static str {
        self.field
    }

    pub fn push(&mut self, frame: Frame) -> io::Result<()> {
        if let Some(file) = &mut self.spilled {
            return write_frame(file, &frame);
        }
        self.bytes_in_memory += frame.bytes.len();
        self.in_memory.push(frame);
        if self.bytes_in_memory > self.memory_limit {
            let mut file = BufWriter::new(tempfile::tempfile()?);
            for frame in self.in_memory.drain(..) {
                write_frame(&mut file, &frame)?;
            }
            self.bytes_in_memory = 0;
            self.spilled = Some(file);
        }
        Ok(())
    }

    /// Hands every held frame to `take`, in stream order, and empties the store; reading the
    /// spill file back fails with `io_error`.
    pub fn release<E>(
        &mut self,
        mut take: impl FnMut(Frame) -> Result<(), E>,
        io_error: impl Fn(io::Error) -> E,
    ) -> Result<(), E> {
        self.bytes_in_memory = 0;
        for frame in std::mem::take(&mut self.in_memory) {
            take(frame)?;
        }
        let Some(file) = self.spilled.take() else {
            return Ok(());
        };
        let mut file = file
            .into_inner()
            .map_err(|error| io_error(error.into_error()))?;
        file.rewind().map_err(&io_error)?;
        let mut reader = BufReader::new(file);
        while let Some(frame) = read_frame(&mut reader, self.field).map_err(&io_error)? {
            take(frame)?;
        }
        Ok(())
    }
}

fn write_frame(out: &mut impl Write, frame: &Frame) -> io::Result<()> {
    let (problem, limit) = match frame.problem {
        None => (0u8, 0u64),
        Some(FrameProblem::TooLarge { limit }) => (1, limit as u64),
        Some(FrameProblem::OpenAtEndOfLine) => (2, 0),
        Some(FrameProblem::OpenAtEndOfInput) => (3, 0),
    };
    for number in [
        frame.offset,
        frame.len,
        frame.line,
        limit,
        frame.bytes.len() as u64,
    ] {
        out.write_all(&number.to_le_bytes())?;
    }
    out.write_all(&[problem])?;
    out.write_all(&frame.bytes)
}

/// The next frame written by [`write_frame`], `None` at the end of the file.
fn read_frame(input: &mut impl Read, field: &'static str) -> io::Result<Option<Frame>> {
    let mut numbers = [0u64; 5];
    for (index, number) in numbers.iter_mut().enumerate() {
        let mut bytes = [0u8; 8];
        match input.read_exact(&mut bytes) {
            Err(error) if index == 0 && error.kind() == io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            result => result?,
        }
        *number = u64::from_le_bytes(bytes);
    }
    let [offset, len, line, limit, bytes_len] = numbers;
    let mut problem = [0u8];
    input.read_exact(&mut problem)?;
    let mut bytes = vec![0; usize::try_from(bytes_len).map_err(io::Error::other)?];
    input.read_exact(&mut bytes)?;
    let problem = match problem[0] {
        0 => None,
        1 => Some(FrameProblem::TooLarge {
            limit: usize::try_from(limit).map_err(io::Error::other)?,
        }),
        2 => Some(FrameProblem::OpenAtEndOfLine),
        _ => Some(FrameProblem::OpenAtEndOfInput),
    };
    Ok(Some(Frame {
        bytes,
        offset,
        len,
        line,
        problem,
        role: FrameRole::Element(field),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(index: u64, problem: Option<FrameProblem>) -> Frame {
        Frame {
            bytes: format!("{{\"id\":\"{index}\"}}").into_bytes(),
            offset: index * 100,
            len: 13 + index,
            line: index + 1,
            problem,
            role: FrameRole::Element("data"),
        }
    }

    fn round_trip(memory_limit: usize) -> (Vec<Frame>, Vec<Frame>, bool) {
        let problems = [
            None,
            Some(FrameProblem::TooLarge { limit: 7 }),
            Some(FrameProblem::OpenAtEndOfLine),
            Some(FrameProblem::OpenAtEndOfInput),
        ];
        let frames: Vec<Frame> = (0..40)
            .map(|i| frame(i, problems[i as usize % 4]))
            .collect();
        let mut held = HeldFrames::new("data", memory_limit);
        for frame in &frames {
            held.push(frame.clone()).expect("hold");
        }
        let spilled = held.spilled.is_some();
        let mut released = Vec::new();
        held.release(
            |frame| {
                released.push(frame);
                Ok(())
            },
            |error| error,
        )
        .expect("release");
        assert!(held.in_memory.is_empty() && held.spilled.is_none());
        (frames, released, spilled)
    }

    #[test]
    fn frames_come_back_in_order_from_memory() {
        let (frames, released, spilled) = round_trip(1 << 20);
        assert!(!spilled);
        assert_eq!(released, frames);
    }

    #[test]
    fn frames_come_back_in_order_and_intact_from_the_spill_file() {
        let (frames, released, spilled) = round_trip(64);
        assert!(spilled, "40 frames of ~13 bytes exceed 64 bytes");
        assert_eq!(released, frames);
    }
}
