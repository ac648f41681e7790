//! An S3 Inventory report as the list of objects to backfill, for buckets too large to list:
//! the `manifest.json` S3 publishes, then each CSV file it names (gzip-compressed as S3
//! writes them), keys URL-decoded as the inventory encodes them.

use std::io::Read;

use crate::ReadObject;
use crate::event::decode_event_key;
use crate::ports::{ReadWholeError, read_whole};
use serde::Deserialize;

/// The objects an inventory lists, in its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub source_bucket: String,
    /// Current objects only: no delete markers, no earlier versions, no folder placeholders.
    pub keys: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("reading the inventory file `{key}`")]
    Read {
        key: String,
        #[source]
        source: ReadWholeError,
    },
    #[error("`{key}` is not an S3 Inventory manifest.json")]
    Manifest {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the inventory is in {format}: only CSV inventories can be read (set the inventory's \
         output format to CSV)"
    )]
    Format { format: String },
    #[error("the inventory's fileSchema `{schema}` has no `{column}` column")]
    Schema {
        schema: String,
        column: &'static str,
    },
    #[error("`{key}` is not readable CSV")]
    Csv {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{key}` row {row}: {detail}")]
    Row {
        key: String,
        row: usize,
        detail: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    source_bucket: String,
    file_format: String,
    file_schema: String,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Deserialize)]
struct ManifestFile {
    key: String,
}

/// Where each needed field sits in a row, from the manifest's `fileSchema`.
#[derive(Debug)]
struct Columns {
    key: usize,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
}

impl Columns {
    fn of(schema: &str) -> Result<Self, InventoryError> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|column| *column == name);
        Ok(Self {
            key: find("Key").ok_or_else(|| InventoryError::Schema {
                schema: schema.to_owned(),
                column: "Key",
            })?,
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
        })
    }

    /// The row's decoded key, or `None` for a row that is not a current object.
    fn current_key(&self, row: &csv::StringRecord) -> Result<Option<String>, String> {
        let field = |index: Option<usize>| index.and_then(|index| row.get(index));
        if field(self.is_latest) == Some("false") || field(self.is_delete_marker) == Some("true") {
            return Ok(None);
        }
        let encoded = row
            .get(self.key)
            .ok_or_else(|| format!("{} fields, no Key", row.len()))?;
        let key = decode_event_key(encoded).map_err(|error| error.to_string())?;
        Ok((!key.is_empty() && !key.ends_with('/')).then_some(key))
    }
}

/// Reads the manifest at `manifest_key` and every file it names from `store` (the bucket
/// the inventory is delivered to).
pub async fn read_inventory(
    store: &impl ReadObject,
    manifest_key: &str,
) -> Result<Inventory, InventoryError> {
    let manifest: Manifest = serde_json::from_slice(&read_all(store, manifest_key).await?)
        .map_err(|source| InventoryError::Manifest {
            key: manifest_key.to_owned(),
            source,
        })?;
    if !manifest.file_format.eq_ignore_ascii_case("CSV") {
        return Err(InventoryError::Format {
            format: manifest.file_format,
        });
    }
    let columns = Columns::of(&manifest.file_schema)?;
    let mut keys = Vec::new();
    for file in &manifest.files {
        let bytes = read_all(store, &file.key).await?;
        keys.extend(file_keys(&file.key, &bytes, &columns)?);
    }
    Ok(Inventory {
        source_bucket: manifest.source_bucket,
        keys,
    })
}

async fn read_all(store: &impl ReadObject, key: &str) -> Result<Vec<u8>, InventoryError> {
    read_whole(store, key)
        .await
        .map_err(|source| InventoryError::Read {
            key: key.to_owned(),
            source,
        })
}

/// The current objects of one inventory file (gzip when its key ends in `.gz`).
fn file_keys(key: &str, bytes: &[u8], columns: &Columns) -> Result<Vec<String>, InventoryError> {
    let unreadable = |source| InventoryError::Csv {
        key: key.to_owned(),
        source,
    };
    let mut text = Vec::new();
    match key.ends_with(".gz") {
        true => flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut text)
            .map_err(unreadable)?,
        false => {
            text.extend_from_slice(bytes);
            text.len()
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_slice());
    let mut keys = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let row = row.map_err(|error| unreadable(error.into()))?;
        let current = columns
            .current_key(&row)
            .map_err(|detail| InventoryError::Row {
                key: key.to_owned(),
                row: index + 1,
                detail,
            })?;
        keys.extend(current);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::Buckets;
    use crate::memory::MemoryBuckets;

    const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size";

    fn manifest(format: &str, schema: &str, files: &[&str]) -> String {
        let files: Vec<serde_json::Value> = files
            .iter()
            .map(|key| serde_json::json!({"key": key, "size": 1, "MD5checksum": "x"}))
            .collect();
        serde_json::json!({
            "sourceBucket": "tweets", "destinationBucket": "arn:aws:s3:::inventories",
            "version": "2016-11-30", "creationTimestamp": "1714521600000",
            "fileFormat": format, "fileSchema": schema, "files": files,
        })
        .to_string()
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text.as_bytes()).expect("gzip");
        encoder.finish().expect("gzip")
    }

    #[tokio::test]
    async fn current_objects_are_listed_with_their_keys_decoded() {
        let buckets = MemoryBuckets::new();
        buckets.insert(
            "inventories",
            "inv/data/1.csv.gz",
            gzip(concat!(
                "\"tweets\",\"raw/\",\"\",\"true\",\"false\",\"0\"\n",
                "\"tweets\",\"raw/may+2024/a%2Bb.json\",\"v1\",\"true\",\"false\",\"10\"\n",
                "\"tweets\",\"raw/old.json\",\"v0\",\"false\",\"false\",\"10\"\n",
                "\"tweets\",\"raw/gone.json\",\"v2\",\"true\",\"true\",\"\"\n",
            )),
        );
        buckets.insert(
            "inventories",
            "inv/data/2.csv",
            "\"tweets\",\"raw/caf%C3%A9.jsonl\",\"v1\",\"true\",\"false\",\"5\"\n",
        );
        buckets.insert(
            "inventories",
            "inv/manifest.json",
            manifest("CSV", SCHEMA, &["inv/data/1.csv.gz", "inv/data/2.csv"]),
        );
        let inventory = read_inventory(&buckets.bucket("inventories"), "inv/manifest.json")
            .await
            .expect("readable");
        assert_eq!(inventory.source_bucket, "tweets");
        assert_eq!(inventory.keys, ["raw/may 2024/a+b.json", "raw/café.jsonl"]);
    }

    #[tokio::test]
    async fn other_formats_and_schemas_without_keys_get_clear_errors() {
        let buckets = MemoryBuckets::new();
        let store = buckets.bucket("inventories");
        buckets.insert("inventories", "orc.json", manifest("ORC", SCHEMA, &[]));
        let error = read_inventory(&store, "orc.json").await.expect_err("ORC");
        assert!(error.to_string().contains("only CSV"), "{error}");
        buckets.insert(
            "inventories",
            "nokey.json",
            manifest("CSV", "Bucket, Size", &[]),
        );
        let error = read_inventory(&store, "nokey.json")
            .await
            .expect_err("no Key");
        assert!(error.to_string().contains("no `Key` column"), "{error}");
        buckets.insert("inventories", "bad.json", "{\"files\": 3}");
        let error = read_inventory(&store, "bad.json").await.expect_err("bad");
        assert!(
            error.to_string().contains("not an S3 Inventory manifest"),
            "{error}"
        );
        buckets.insert(
            "inventories",
            "badkey.json",
            manifest("CSV", SCHEMA, &["d.csv"]),
        );
        buckets.insert(
            "inventories",
            "d.csv",
            "\"tweets\",\"raw/%FF\",\"\",\"true\",\"false\",\"1\"\n",
        );
        let error = read_inventory(&store, "badkey.json")
            .await
            .expect_err("bad key");
        assert!(error.to_string().contains("`d.csv` row 1"), "{error}");
        let error = read_inventory(&store, "missing.json")
            .await
            .expect_err("missing");
        assert!(matches!(error, InventoryError::Read { .. }), "{error}");
    }
}
