//! The local-filesystem adapter: a folder stands in for a bucket, so the CLI runs the same
//! use cases on a laptop.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::ports::{
    DeleteObject, ListObjects, ObjectBody, Payload, ReadObject, StoreError, WriteObject,
};

/// A folder whose files are objects. With a mount prefix, key `<prefix><rel>` is file
/// `<root>/<rel>` (a folder of raw files served as `raw/…`); without one, key `k` is
/// `<root>/k`.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    mount: String,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            mount: String::new(),
        }
    }

    /// Serves `root` under the key prefix `mount` (e.g. `raw/`).
    pub fn mounted(root: impl Into<PathBuf>, mount: &str) -> Self {
        Self {
            root: root.into(),
            mount: mount.to_owned(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file behind `key`; refuses keys that would escape the folder.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let invalid = |why: &str| StoreError::Failed {
            operation: "resolve",
            key: key.to_owned(),
            retryable: false,
            source: format!("not a valid local key: {why}").into(),
        };
        let relative = key
            .strip_prefix(&self.mount)
            .ok_or_else(|| invalid(&format!("outside the mount prefix `{}`", self.mount)))?;
        let relative = Path::new(relative);
        if relative.as_os_str().is_empty()
            || !relative
                .components()
                .all(|component| matches!(component, Component::Normal(_)))
        {
            return Err(invalid("empty, absolute, or containing `..`"));
        }
        Ok(self.root.join(relative))
    }

    /// The first two of `keys` (by index) that name one file: `a/./x.json`, `a//x.json` and
    /// `a/x.json` are three S3 keys but one path on disk, so writing all three would keep one.
    pub fn first_collision(&self, keys: &[String]) -> Result<Option<(usize, usize)>, StoreError> {
        let mut seen = std::collections::HashMap::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            if let Some(earlier) = seen.insert(self.path_of(key)?, index) {
                return Ok(Some((earlier, index)));
            }
        }
        Ok(None)
    }

    /// The key of a file below the root (the inverse of [`Self::path_of`]).
    pub fn key_of(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = relative
            .components()
            .map(|component| match component {
                Component::Normal(part) => part.to_str(),
                _ => None,
            })
            .collect();
        Some(format!("{}{}", self.mount, parts?.join("/")))
    }
}

/// Every file below `folder`, sorted, skipping hidden names (a writer's staging files among
/// them). A missing folder has no files.
pub fn files_below(folder: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            entries => entries?,
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

fn io_failure(operation: &'static str, key: &str, error: io::Error) -> StoreError {
    if error.kind() == io::ErrorKind::NotFound {
        return StoreError::NotFound {
            key: key.to_owned(),
        };
    }
    StoreError::Failed {
        operation,
        key: key.to_owned(),
        retryable: matches!(
            error.kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ),
        source: Box::new(error),
    }
}

impl ReadObject for LocalDir {
    async fn get(&self, key: &str) -> Result<ObjectBody, StoreError> {
        let path = self.path_of(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|error| io_failure("open", key, error))?;
        let metadata = file
            .metadata()
            .await
            .map_err(|error| io_failure("stat", key, error))?;
        if !metadata.is_file() {
            return Err(StoreError::NotFound {
                key: key.to_owned(),
            });
        }
        Ok(ObjectBody {
            len: Some(metadata.len()),
            reader: Box::pin(file),
        })
    }
}

impl ListObjects for LocalDir {
    /// Walks the deepest folder the prefix names, so listing one object's parts reads one
    /// folder rather than the whole tree.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let folder_key = &prefix[..prefix.rfind('/').map_or(0, |slash| slash + 1)];
        let folder = if folder_key == self.mount {
            self.root.clone()
        } else {
            self.path_of(folder_key.trim_end_matches('/'))?
        };
        let files = tokio::task::spawn_blocking(move || files_below(&folder))
            .await
            .map_err(|error| StoreError::Failed {
                operation: "list",
                key: prefix.to_owned(),
                retryable: false,
                source: Box::new(error),
            })?
            .map_err(|error| io_failure("list", prefix, error))?;
        let mut keys: Vec<String> = files
            .iter()
            .filter_map(|file| self.key_of(file))
            .filter(|key| key.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

impl DeleteObject for LocalDir {
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path_of(key)?).await {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(io_failure("delete", key, error))
            }
            _ => Ok(()),
        }
    }
}

impl WriteObject for LocalDir {
    /// Writes through a temporary file in the same folder and renames it into place, so a
    /// reader never sees half an object.
    async fn put(
        &self,
        key: &str,
        payload: Payload,
        _content_type: &'static str,
    ) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let owned_key = key.to_owned();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let folder = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(folder)?;
            let mut staged = tempfile::NamedTempFile::new_in(folder)?;
            match payload.path() {
                Some(spilled) => {
                    io::copy(&mut std::fs::File::open(spilled)?, staged.as_file_mut())?;
                }
                None => io::Write::write_all(staged.as_file_mut(), &payload.into_bytes()?)?,
            }
            staged.persist(&path).map_err(|error| error.error)?;
            Ok(())
        })
        .await
        .map_err(|error| StoreError::Failed {
            operation: "write",
            key: owned_key.clone(),
            retryable: false,
            source: Box::new(error),
        })?
        .map_err(|error| io_failure("write", &owned_key, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn round_trip_through_a_mounted_folder() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = LocalDir::mounted(folder.path(), "raw/");
        store
            .put(
                "raw/a b/c+d.json",
                Payload::from(b"hello".to_vec()),
                "application/json",
            )
            .await
            .expect("put");
        assert!(folder.path().join("a b/c+d.json").is_file());
        let mut body = store.get("raw/a b/c+d.json").await.expect("get");
        assert_eq!(body.len, Some(5));
        let mut text = String::new();
        body.reader.read_to_string(&mut text).await.expect("read");
        assert_eq!(text, "hello");
        assert_eq!(
            store.key_of(&folder.path().join("a b/c+d.json")).as_deref(),
            Some("raw/a b/c+d.json")
        );
    }

    #[tokio::test]
    async fn lists_files_under_a_prefix_and_deletes_them() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = LocalDir::new(folder.path());
        for key in [
            "clean/a.json/part-1",
            "clean/a.json/part-2",
            "clean/b/c.json",
            "x",
        ] {
            store
                .put(key, Payload::from(b"{}".to_vec()), "text/plain")
                .await
                .expect("put");
        }
        std::fs::write(folder.path().join("clean/a.json/.staging"), b"").expect("hidden");
        assert_eq!(
            store.list("clean/a.json/part-").await.expect("listed"),
            ["clean/a.json/part-1", "clean/a.json/part-2"]
        );
        assert_eq!(
            store.list("clean/").await.expect("listed"),
            [
                "clean/a.json/part-1",
                "clean/a.json/part-2",
                "clean/b/c.json"
            ]
        );
        assert!(store.list("nothing/here/").await.expect("empty").is_empty());
        store.delete("clean/a.json/part-1").await.expect("deleted");
        store
            .delete("clean/a.json/part-1")
            .await
            .expect("already gone");
        assert_eq!(
            store.list("").await.expect("listed"),
            ["clean/a.json/part-2", "clean/b/c.json", "x"]
        );
    }

    #[test]
    fn keys_naming_one_file_collide() {
        let dir = LocalDir::new("/out");
        let keys = |list: &[&str]| list.iter().map(|key| (*key).to_owned()).collect::<Vec<_>>();
        let distinct = keys(&["clean/a/x.json", "clean/a/y.json", "clean/b/x.json"]);
        assert_eq!(dir.first_collision(&distinct).expect("valid"), None);
        let same_file = keys(&["clean/a/x.json", "clean/b/y.json", "clean/a/./x.json"]);
        assert_eq!(
            dir.first_collision(&same_file).expect("valid"),
            Some((0, 2))
        );
        let doubled_slash = keys(&["clean/a//x.json", "clean/a/x.json"]);
        assert_eq!(
            dir.first_collision(&doubled_slash).expect("valid"),
            Some((0, 1))
        );
    }

    #[tokio::test]
    async fn missing_files_and_escaping_keys_are_refused() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = LocalDir::new(folder.path());
        assert!(matches!(
            store.get("nope.json").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(store.path_of("../etc/passwd").is_err());
        assert!(store.path_of("/etc/passwd").is_err());
        assert!(store.path_of("").is_err());
        assert!(
            LocalDir::mounted(folder.path(), "raw/")
                .path_of("clean/x")
                .is_err()
        );
    }
}
