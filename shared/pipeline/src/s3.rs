//! The S3 adapter: the only place in this crate that speaks the AWS SDK.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestIdExt;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;

use crate::aws_error;
use crate::ports::{
    BoxError, Buckets, DeleteObject, ListObjects, ObjectBody, Payload, ReadObject, StoreError,
    WriteObject,
};

/// Builds an S3 client from the standard AWS environment. `endpoint_url` (the
/// `S3_ENDPOINT_URL` setting) points it at an S3-compatible server, with path-style
/// addressing as such servers expect.
pub async fn client(endpoint_url: Option<&str>) -> Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared);
    if let Some(url) = endpoint_url {
        config = config.endpoint_url(url).force_path_style(true);
    }
    Client::from_conf(config.build())
}

/// Every bucket the client can reach.
#[derive(Debug, Clone)]
pub struct S3Buckets {
    client: Client,
}

impl S3Buckets {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Buckets through the default AWS configuration, at `S3_ENDPOINT_URL` when it is set
    /// (an S3-compatible server).
    pub async fn from_env() -> Self {
        let endpoint = std::env::var(crate::config::vars::S3_ENDPOINT_URL).ok();
        Self::new(client(endpoint.as_deref()).await)
    }
}

impl Buckets for S3Buckets {
    type Store = S3Bucket;
    fn bucket(&self, name: &str) -> S3Bucket {
        S3Bucket {
            client: self.client.clone(),
            bucket: name.to_owned(),
        }
    }
}

/// One bucket; keys are relative to it.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    client: Client,
    bucket: String,
}

impl ListObjects for S3Bucket {
    /// Every key under `prefix`, in S3's (lexicographic) order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| self.failed("ListObjectsV2", prefix, error))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key())
                    .filter(|key| !key.ends_with('/'))
                    .map(str::to_owned),
            );
        }
        Ok(keys)
    }
}

impl ReadObject for S3Bucket {
    async fn get(&self, key: &str) -> Result<ObjectBody, StoreError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            // Verifies the body against the checksum S3 stored with it, when it stored one: a
            // body cut short in transit is an error, never a shorter object.
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|error| match &error {
                SdkError::ServiceError(service)
                    if matches!(service.err(), GetObjectError::NoSuchKey(_)) =>
                {
                    StoreError::NotFound {
                        key: key.to_owned(),
                    }
                }
                _ => self.failed("GetObject", key, error),
            })?;
        Ok(ObjectBody {
            len: output
                .content_length()
                .and_then(|len| u64::try_from(len).ok()),
            reader: Box::pin(output.body.into_async_read()),
        })
    }
}

impl DeleteObject for S3Bucket {
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| self.failed("DeleteObject", key, error))?;
        Ok(())
    }
}

impl WriteObject for S3Bucket {
    async fn put(
        &self,
        key: &str,
        payload: Payload,
        content_type: &'static str,
    ) -> Result<(), StoreError> {
        let local_failure = |source: BoxError| StoreError::Failed {
            operation: "PutObject",
            key: key.to_owned(),
            retryable: false,
            source,
        };
        let body = match payload.path() {
            Some(path) => ByteStream::from_path(path)
                .await
                .map_err(|error| local_failure(error.into()))?,
            None => ByteStream::from(
                payload
                    .into_bytes()
                    .map_err(|error| local_failure(error.into()))?,
            ),
        };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|error| self.failed("PutObject", key, error))?;
        Ok(())
    }
}

/// Codes that mean the caller or the configuration is wrong: retrying cannot help.
const PERMANENT_CODES: &[&str] = &[
    "AccessDenied",
    "NoSuchBucket",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidBucketName",
    "AllAccessDisabled",
];

/// [`aws_error::summary`] and, for S3, the extended request id AWS support asks for too.
fn summary<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let mut line = aws_error::summary(error);
    if let SdkError::ServiceError(service) = error
        && let Some(id) = service.err().meta().extended_request_id()
    {
        line.push_str(&format!(", extended request id {id}"));
    }
    line
}

impl S3Bucket {
    /// A failed call as the caller sees it: the SDK's code and message, the bucket and key,
    /// and S3's request ids (what AWS support asks for). The SDK's whole context, raw HTTP
    /// response included, goes to the debug log only.
    fn failed<E, R>(&self, operation: &'static str, key: &str, error: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        tracing::debug!(
            operation,
            bucket = self.bucket,
            key,
            error = %aws_sdk_s3::error::DisplayErrorContext(&error),
            "S3 call failed"
        );
        let retryable = match &error {
            SdkError::ServiceError(service) => !service
                .err()
                .code()
                .is_some_and(|code| PERMANENT_CODES.contains(&code)),
            SdkError::ConstructionFailure(_) => false,
            _ => true,
        };
        StoreError::Failed {
            operation,
            key: key.to_owned(),
            retryable,
            source: format!("{} (bucket `{}`)", summary(&error), self.bucket).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::config::{Credentials, Region};
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Two tweets as stored; S3 keeps their CRC32 (`iwiQ3w==`, base64 of the big-endian CRC).
    const STORED: &[u8] =
        b"{\"id_str\": \"1\", \"text\": \"hello\"}\n{\"id_str\": \"2\", \"text\": \"world\"}\n";
    const STORED_CRC32: &str = "iwiQ3w==";

    /// A bucket whose one GetObject answer is `body` with the stored object's checksum.
    fn bucket_answering(body: &'static [u8]) -> (S3Bucket, StaticReplayClient) {
        let response = http::Response::builder()
            .status(200)
            .header("content-length", body.len())
            .header("x-amz-checksum-crc32", STORED_CRC32)
            .body(SdkBody::from(body))
            .expect("response");
        bucket_replaying(response)
    }

    /// A bucket whose one answer is `response`.
    fn bucket_replaying(response: http::Response<SdkBody>) -> (S3Bucket, StaticReplayClient) {
        let request = http::Request::builder()
            .uri("https://tweets.s3.us-east-1.amazonaws.com/raw/x.json")
            .body(SdkBody::empty())
            .expect("request");
        let http_client = StaticReplayClient::new(vec![ReplayEvent::new(request, response)]);
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::for_tests())
            .http_client(http_client.clone())
            .build();
        let bucket = S3Buckets::new(Client::from_conf(config)).bucket("tweets");
        (bucket, http_client)
    }

    async fn read_all(bucket: &S3Bucket) -> std::io::Result<Vec<u8>> {
        let mut body = bucket.get("raw/x.json").await.expect("GetObject answered");
        let mut read = Vec::new();
        body.reader.read_to_end(&mut read).await.map(|_| read)
    }

    #[tokio::test]
    async fn an_object_cut_short_in_transit_fails_its_checksum() {
        let (bucket, http_client) = bucket_answering(&STORED[..40]);
        let error = read_all(&bucket)
            .await
            .expect_err("a short body is not the object");
        let chain = format!("{error:?}").to_lowercase();
        assert!(chain.contains("checksum"), "{chain}");
        let sent = http_client.actual_requests().next().expect("one request");
        assert_eq!(sent.headers().get("x-amz-checksum-mode"), Some("ENABLED"));
    }

    #[tokio::test]
    async fn an_intact_object_passes_its_checksum() {
        let (bucket, _) = bucket_answering(STORED);
        assert_eq!(read_all(&bucket).await.expect("intact"), STORED);
    }

    #[tokio::test]
    async fn a_failed_call_names_code_bucket_key_and_request_id_without_the_raw_response() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>\
            <Message>The specified bucket does not exist</Message><BucketName>tweets</BucketName>\
            <RequestId>4442587FB7D0A2F9</RequestId><HostId>hUxL0OWvqHVoNiKmzQ9w=</HostId></Error>";
        let response = http::Response::builder()
            .status(404)
            .header("content-type", "application/xml")
            .header("x-amz-request-id", "4442587FB7D0A2F9")
            .header("x-amz-id-2", "hUxL0OWvqHVoNiKmzQ9w=")
            .body(SdkBody::from(body))
            .expect("response");
        let (bucket, _) = bucket_replaying(response);
        let error = bucket
            .delete("raw/x.json")
            .await
            .expect_err("no such bucket");
        assert!(!error.is_retryable());
        let chain = crate::error_chain(&error);
        for expected in [
            "DeleteObject `raw/x.json` failed",
            "NoSuchBucket: The specified bucket does not exist",
            "request id 4442587FB7D0A2F9",
            "extended request id hUxL0OWvqHVoNiKmzQ9w=",
            "bucket `tweets`",
        ] {
            assert!(
                chain.contains(expected),
                "{expected:?} missing from {chain}"
            );
        }
        for raw in ["<Error>", "<?xml", "x-amz", "HTTP", "content-type"] {
            assert!(!chain.contains(raw), "{raw:?} leaked into {chain}");
        }
    }
}
