//! A store seen through a key prefix swap, so the use cases keep the bucket layout's keys
//! (`raw/…`, `clean/…`) while a laptop run reads `s3://bucket/any/prefix/` or writes under
//! an output prefix.

use crate::ports::{
    DeleteObject, ListObjects, ObjectBody, Payload, ReadObject, StoreError, WriteObject,
};

/// Keys starting with `from` are stored under `to` instead (`from` is replaced by `to`);
/// other keys are refused, so nothing lands outside the intended place.
#[derive(Debug, Clone)]
pub struct Rebased<S> {
    inner: S,
    from: String,
    to: String,
}

impl<S> Rebased<S> {
    pub fn new(inner: S, from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            inner,
            from: from.into(),
            to: to.into(),
        }
    }

    /// The key in the inner store.
    pub fn inner_key(&self, key: &str) -> Result<String, StoreError> {
        key.strip_prefix(&self.from)
            .map(|rest| format!("{}{rest}", self.to))
            .ok_or_else(|| StoreError::Failed {
                operation: "mapping",
                key: key.to_owned(),
                retryable: false,
                source: format!("key is not under `{}`", self.from).into(),
            })
    }

    /// The layout key of an inner key, if it lies under `to`.
    pub fn outer_key(&self, inner_key: &str) -> Option<String> {
        inner_key
            .strip_prefix(&self.to)
            .map(|rest| format!("{}{rest}", self.from))
    }
}

impl<S: ReadObject> ReadObject for Rebased<S> {
    async fn get(&self, key: &str) -> Result<ObjectBody, StoreError> {
        self.inner.get(&self.inner_key(key)?).await
    }
}

impl<S: WriteObject> WriteObject for Rebased<S> {
    async fn put(
        &self,
        key: &str,
        payload: Payload,
        content_type: &'static str,
    ) -> Result<(), StoreError> {
        self.inner
            .put(&self.inner_key(key)?, payload, content_type)
            .await
    }
}

impl<S: ListObjects> ListObjects for Rebased<S> {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let listed = self.inner.list(&self.inner_key(prefix)?).await?;
        Ok(listed
            .iter()
            .filter_map(|key| self.outer_key(key))
            .collect())
    }
}

impl<S: DeleteObject> DeleteObject for Rebased<S> {
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(&self.inner_key(key)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBuckets;
    use crate::ports::Buckets;

    #[tokio::test]
    async fn keys_are_swapped_both_ways() {
        let buckets = MemoryBuckets::new();
        let store = Rebased::new(buckets.bucket("b"), "", "backfill/2024/");
        store
            .put("clean/x.jsonl", Payload::from(b"{}".to_vec()), "text/plain")
            .await
            .expect("stored");
        assert_eq!(buckets.keys("b"), vec!["backfill/2024/clean/x.jsonl"]);

        let input = Rebased::new(buckets.bucket("b"), "raw/", "backfill/2024/clean/");
        assert!(input.get("raw/x.jsonl").await.is_ok());
        assert_eq!(
            input.outer_key("backfill/2024/clean/x.jsonl").as_deref(),
            Some("raw/x.jsonl")
        );
        assert!(input.get("clean/x.jsonl").await.is_err());
    }
}
