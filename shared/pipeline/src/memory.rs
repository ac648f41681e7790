//! An in-memory store for unit tests of use cases and handlers, with failure injection.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ports::{
    Buckets, DeleteObject, ListObjects, ObjectBody, Payload, ReadObject, StoreError, WriteObject,
};

/// Objects by bucket and key. Clones share the same objects.
#[derive(Debug, Clone, Default)]
pub struct MemoryBuckets {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<(String, String), Vec<u8>>,
    /// The next this-many reads fail with a retryable error.
    failing_reads: usize,
}

impl MemoryBuckets {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn insert(&self, bucket: &str, key: &str, bytes: impl Into<Vec<u8>>) {
        self.state()
            .objects
            .insert((bucket.to_owned(), key.to_owned()), bytes.into());
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.state()
            .objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Every key of `bucket`, sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        self.state()
            .objects
            .keys()
            .filter(|(name, _)| name == bucket)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// Makes the next `count` reads fail as a throttled or unreachable store would.
    pub fn fail_next_reads(&self, count: usize) {
        self.state().failing_reads = count;
    }
}

impl Buckets for MemoryBuckets {
    type Store = MemoryBucket;
    fn bucket(&self, name: &str) -> MemoryBucket {
        MemoryBucket {
            buckets: self.clone(),
            name: name.to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MemoryBucket {
    buckets: MemoryBuckets,
    name: String,
}

impl ReadObject for MemoryBucket {
    async fn get(&self, key: &str) -> Result<ObjectBody, StoreError> {
        let mut state = self.buckets.state();
        if state.failing_reads > 0 {
            state.failing_reads -= 1;
            return Err(StoreError::Failed {
                operation: "GetObject",
                key: key.to_owned(),
                retryable: true,
                source: "injected: service unavailable".into(),
            });
        }
        let bytes = state
            .objects
            .get(&(self.name.clone(), key.to_owned()))
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_owned(),
            })?;
        Ok(ObjectBody {
            len: Some(bytes.len() as u64),
            reader: Box::pin(io::Cursor::new(bytes)),
        })
    }
}

impl WriteObject for MemoryBucket {
    async fn put(
        &self,
        key: &str,
        payload: Payload,
        _content_type: &'static str,
    ) -> Result<(), StoreError> {
        let bytes = payload.into_bytes().map_err(|error| StoreError::Failed {
            operation: "PutObject",
            key: key.to_owned(),
            retryable: false,
            source: Box::new(error),
        })?;
        self.buckets.insert(&self.name, key, bytes);
        Ok(())
    }
}

impl ListObjects for MemoryBucket {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = self.buckets.keys(&self.name);
        keys.retain(|key| key.starts_with(prefix));
        Ok(keys)
    }
}

impl DeleteObject for MemoryBucket {
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.buckets
            .state()
            .objects
            .remove(&(self.name.clone(), key.to_owned()));
        Ok(())
    }
}

/// A classifier fake for tests: `positive` when a text contains "love", `negative` for
/// "hate", else `neutral`. A text containing `POISON` fails for good; the next
/// [`KeywordClassifier::fail_next_calls`] calls fail as a throttled service would.
#[derive(Debug)]
pub struct KeywordClassifier {
    model: crate::ports::ModelInfo,
    failing_calls: Mutex<usize>,
    calls: Mutex<Vec<usize>>,
}

impl Default for KeywordClassifier {
    fn default() -> Self {
        Self {
            model: crate::ports::ModelInfo {
                name: "keywords".to_owned(),
                version: "1".to_owned(),
                backend: "fake".to_owned(),
                labels: ["negative", "neutral", "positive"]
                    .map(str::to_owned)
                    .to_vec(),
            },
            failing_calls: Mutex::new(0),
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl KeywordClassifier {
    pub fn fail_next_calls(&self, count: usize) {
        *self
            .failing_calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = count;
    }

    /// How many texts each call received, in call order.
    pub fn calls(&self) -> Vec<usize> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn label(text: &str) -> &'static str {
        if text.contains("love") {
            "positive"
        } else if text.contains("hate") {
            "negative"
        } else {
            "neutral"
        }
    }
}

impl crate::ports::Classify for KeywordClassifier {
    fn model(&self) -> &crate::ports::ModelInfo {
        &self.model
    }

    async fn classify(
        &self,
        texts: Vec<String>,
    ) -> Result<crate::ports::Classified, crate::ports::ClassifyError> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(texts.len());
        {
            let mut failing = self
                .failing_calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *failing > 0 {
                *failing -= 1;
                return Err(crate::ports::ClassifyError::new(
                    crate::ports::ClassifyFailure::Transient,
                    "throttled",
                ));
            }
        }
        if texts.iter().any(|text| text.contains("POISON")) {
            return Err(crate::ports::ClassifyError::new(
                crate::ports::ClassifyFailure::Input,
                "this text cannot be classified",
            ));
        }
        let predictions = texts
            .iter()
            .map(|text| {
                let label = Self::label(text);
                let scores: BTreeMap<String, f32> = self
                    .model
                    .labels
                    .iter()
                    .map(|name| (name.clone(), if name == label { 0.8 } else { 0.1 }))
                    .collect();
                tweets::Prediction {
                    label: Some(label.to_owned()),
                    score: 0.8,
                    labels: vec![label.to_owned()],
                    scores,
                }
            })
            .collect();
        Ok(crate::ports::Classified {
            predictions,
            ..crate::ports::Classified::default()
        })
    }
}
