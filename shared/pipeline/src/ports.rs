//! Storage ports, sized like the IAM permissions they need: use cases read with
//! [`ReadObject`] and write with [`WriteObject`], never through an SDK client.

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::pin::Pin;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;
use tweets::Prediction;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An object being read: its size when the store knows it, and its bytes as a stream.
pub struct ObjectBody {
    pub len: Option<u64>,
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// `s3:GetObject` on the input prefix.
pub trait ReadObject: Sync {
    fn get(&self, key: &str) -> impl Future<Output = Result<ObjectBody, StoreError>> + Send;
}

/// `s3:PutObject` on the output prefixes.
pub trait WriteObject: Sync {
    fn put(
        &self,
        key: &str,
        payload: Payload,
        content_type: &'static str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// `s3:ListBucket` limited to a function's own output prefix: finds what a newer run of the
/// same input superseded.
pub trait ListObjects: Sync {
    /// Every key under `prefix` (folder markers excluded), sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// `s3:DeleteObject` on a function's own output prefixes. Deleting a missing key succeeds,
/// as in S3, so a retried clean-up is harmless.
pub trait DeleteObject: Sync {
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a whole object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadWholeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the body of `{key}`")]
    Body {
        key: String,
        #[source]
        source: io::Error,
    },
}

/// A small object's whole body (a manifest, an inventory file), in memory.
pub async fn read_whole(store: &impl ReadObject, key: &str) -> Result<Vec<u8>, ReadWholeError> {
    use tokio::io::AsyncReadExt;
    let mut body = store.get(key).await?;
    let mut bytes = Vec::new();
    body.reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|source| ReadWholeError::Body {
            key: key.to_owned(),
            source,
        })?;
    Ok(bytes)
}

/// Hands out a store per bucket, for handlers that learn the bucket from their event.
pub trait Buckets: Sync {
    type Store: ReadObject + WriteObject + ListObjects + DeleteObject + Send + Sync;
    fn bucket(&self, name: &str) -> Self::Store;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object `{key}` does not exist")]
    NotFound { key: String },
    #[error("{operation} `{key}` failed")]
    Failed {
        operation: &'static str,
        key: String,
        /// Whether the same call may succeed later (throttling, timeouts, 5xx).
        retryable: bool,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Failed {
                retryable: true,
                ..
            }
        )
    }
}

/// The classification port: texts in, one prediction per text out, in order. Implemented by
/// the bundled Candle model and by an Amazon ML endpoint; fakes implement it in tests.
pub trait Classify: Sync {
    /// What is classifying, stamped on every prediction.
    fn model(&self) -> &ModelInfo;

    fn classify(
        &self,
        texts: Vec<String>,
    ) -> impl Future<Output = Result<Classified, ClassifyError>> + Send;
}

/// The model behind a [`Classify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    /// `candle` or `amazon-ml`.
    pub backend: String,
    pub labels: Vec<String>,
}

/// Predictions for a batch of texts, in input order, and where the time went.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classified {
    pub predictions: Vec<Prediction>,
    /// Turning texts into model inputs (zero for a remote backend).
    pub tokenize: Duration,
    /// Computing (or, for a remote backend, waiting for) the predictions.
    pub infer: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("classifying failed")]
pub struct ClassifyError {
    pub failure: ClassifyFailure,
    #[source]
    pub source: BoxError,
}

/// What a classification failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifyFailure {
    /// The same call may succeed later (throttling, timeouts, a service error): retry.
    Transient,
    /// Something in the texts: classify them one by one so only the bad ones are rejected.
    Input,
    /// The backend cannot work at all (missing model, wrong endpoint): fail, do not retry.
    Backend,
}

impl ClassifyError {
    pub fn new(failure: ClassifyFailure, source: impl Into<BoxError>) -> Self {
        Self {
            failure,
            source: source.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.failure == ClassifyFailure::Transient
    }
}

/// Bytes to store, kept in memory while small and spilled to a temporary file past
/// [`Payload::MEMORY_LIMIT`], so large outputs do not need large memory.
#[derive(Debug)]
pub struct Payload {
    storage: Storage,
    len: u64,
}

#[derive(Debug)]
enum Storage {
    Memory(Vec<u8>),
    File(tempfile::NamedTempFile),
}

impl Default for Payload {
    fn default() -> Self {
        Self::new()
    }
}

impl Payload {
    pub const MEMORY_LIMIT: usize = 16 << 20;

    pub fn new() -> Self {
        Self {
            storage: Storage::Memory(Vec::new()),
            len: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The temporary file holding the bytes, if they spilled to disk.
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.storage {
            Storage::Memory(_) => None,
            Storage::File(file) => Some(file.path()),
        }
    }

    /// Moves the bytes to a temporary file now, so a finished output waiting for its upload
    /// holds no memory.
    pub fn spill(&mut self) -> io::Result<()> {
        if let Storage::Memory(bytes) = &self.storage {
            let mut file = tempfile::NamedTempFile::new()?;
            file.write_all(bytes)?;
            self.storage = Storage::File(file);
        }
        Ok(())
    }

    /// All the bytes in memory (reads the file back if they spilled).
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self.storage {
            Storage::Memory(bytes) => Ok(bytes),
            Storage::File(mut file) => {
                let mut bytes = Vec::with_capacity(self.len as usize);
                file.as_file_mut().seek(SeekFrom::Start(0))?;
                file.as_file_mut().read_to_end(&mut bytes)?;
                Ok(bytes)
            }
        }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Self {
            len: bytes.len() as u64,
            storage: Storage::Memory(bytes),
        }
    }
}

impl Write for Payload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Storage::Memory(bytes) = &self.storage
            && bytes.len() + buf.len() > Self::MEMORY_LIMIT
        {
            self.spill()?;
        }
        let written = match &mut self.storage {
            Storage::Memory(bytes) => {
                bytes.extend_from_slice(buf);
                buf.len()
            }
            Storage::File(file) => file.write(buf)?,
        };
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.storage {
            Storage::Memory(_) => Ok(()),
            Storage::File(file) => file.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_spills_to_disk_past_the_memory_limit_and_keeps_every_byte() {
        let mut payload = Payload::new();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..17 {
            payload.write_all(&chunk).expect("write");
        }
        payload.flush().expect("flush");
        assert!(payload.path().is_some());
        assert_eq!(payload.len(), 17 << 20);
        let bytes = payload.into_bytes().expect("read back");
        assert_eq!(bytes.len(), 17 << 20);
        assert!(bytes.iter().all(|byte| *byte == 7));
    }

    #[test]
    fn a_spilled_payload_keeps_its_bytes_and_takes_more() {
        let mut payload = Payload::from(b"abc".to_vec());
        payload.spill().expect("spilled");
        assert!(payload.path().is_some());
        payload.write_all(b"def").expect("write");
        payload.flush().expect("flush");
        assert_eq!(payload.into_bytes().expect("bytes"), b"abcdef");
    }

    #[test]
    fn small_payload_stays_in_memory() {
        let mut payload = Payload::new();
        payload.write_all(b"abc").expect("write");
        assert!(payload.path().is_none());
        assert_eq!(payload.into_bytes().expect("bytes"), b"abc");
    }
}
