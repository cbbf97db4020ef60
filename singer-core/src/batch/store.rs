//! Batch files in object storage, through the `object_store` crate: manifest entries and
//! storage roots with a scheme other than `file://` (`s3://bucket/prefix` with the `s3`
//! feature, configured from the standard `AWS_*` environment variables such as
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`; `memory://` within one process).
//!
//! Files are staged locally: a writer completes its file on disk and uploads it (multipart
//! above one part, so memory stays bounded) before its BATCH message exists; a reader
//! downloads an object into an anonymous temporary file and reads that. Local paths and
//! `file://` URLs never come here.
//!
//! Requests are retried as `object_store` does (backoff, at most 3 minutes from the first
//! attempt); `SINGER_STORE_RETRY_TIMEOUT` (seconds) shortens or lengthens that window.
//! Errors name the object's URL and what failed, never a credential (requests are signed in
//! headers, so URLs hold none).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::sync::{Arc, LazyLock, Mutex};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

/// Upload part size.
const PART_BYTES: usize = 8 << 20;

/// Stores by `scheme://authority`, so one process talks to one client per bucket (and a
/// `memory://` store is shared by its writers and readers).
static STORES: LazyLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The runtime object-store calls run on (they are async; batch files are written and read
/// on plain threads).
static RUNTIME: LazyLock<Result<tokio::runtime::Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("batch-store")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the object-store runtime: {e}"))
});

/// True for a URL that goes through object storage.
pub fn is_remote(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| !scheme.eq_ignore_ascii_case("file") && !scheme.is_empty())
}

fn block_on<T: Send>(f: impl Future<Output = T> + Send) -> Result<T, String> {
    let rt = RUNTIME.as_ref().map_err(Clone::clone)?;
    if tokio::runtime::Handle::try_current().is_ok() {
        // Called from async code (a tap's sync, a target's loader), where blocking on another
        // runtime panics: wait on a thread of its own.
        return std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join())
            .map_err(|_| "the object-store thread panicked".to_string());
    }
    Ok(rt.block_on(f))
}

/// The store and object path of a URL.
fn resolve(url: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}`: not a URL: {e}"))?;
    let key = format!("{}://{}", parsed.scheme(), parsed.authority());
    let path = ObjectPath::from_url_path(parsed.path())
        .map_err(|e| format!("`{url}`: bad object path: {e}"))?;
    let mut stores = STORES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = stores.get(&key) {
        return Ok((s.clone(), path));
    }
    let store = build(&parsed)?;
    stores.insert(key, store.clone());
    Ok((store, path))
}

fn build(url: &url::Url) -> Result<Arc<dyn ObjectStore>, String> {
    match url.scheme() {
        "memory" => Ok(Arc::new(object_store::memory::InMemory::new())),
        #[cfg(feature = "s3")]
        "s3" | "s3a" => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str());
            if let Some(window) = retry_timeout()? {
                builder = builder.with_retry(object_store::RetryConfig {
                    retry_timeout: window,
                    ..Default::default()
                });
            }
            builder
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                .map_err(|e| format!("`{url}`: {e}"))
        }
        other => Err(format!(
            "`{url}`: {other}:// storage is not supported by this build (local paths, file://, memory:// and, with the `s3` feature, s3://)"
        )),
    }
}

/// `SINGER_STORE_RETRY_TIMEOUT`: how long (seconds) a request is retried.
#[cfg(feature = "s3")]
fn retry_timeout() -> Result<Option<std::time::Duration>, String> {
    match std::env::var("SINGER_STORE_RETRY_TIMEOUT") {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Some(std::time::Duration::from_secs_f64(s)))
            .ok_or_else(|| format!("SINGER_STORE_RETRY_TIMEOUT: `{v}` is not a number of seconds")),
    }
}

/// Checks that a URL's store can be built (the scheme is supported, the settings are there).
pub fn check(url: &str) -> Result<(), String> {
    resolve(url).map(drop)
}

/// Joins a storage root URL and a file name.
pub fn join(root: &str, name: &str) -> String {
    format!("{}/{name}", root.trim_end_matches('/'))
}

/// Uploads a complete local file to `url` (one request up to a part's size, multipart above).
pub fn upload(local: &std::path::Path, url: &str) -> Result<(), String> {
    let (store, path) = resolve(url)?;
    let mut file = File::open(local).map_err(|e| format!("{}: {e}", local.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", local.display()))?
        .len();
    if len < PART_BYTES as u64 {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("{}: {e}", local.display()))?;
        return put_bytes(url, bytes);
    }
    block_on(async move {
        let upload = store
            .put_multipart(&path)
            .await
            .map_err(|e| format!("`{url}`: cannot start the upload: {e}"))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4)
                .await
                .map_err(|e| format!("`{url}`: upload failed: {e}"))?;
            w.write(&buf[..n]);
        }
        w.finish()
            .await
            .map(drop)
            .map_err(|e| format!("`{url}`: upload failed: {e}"))
    })?
}

/// Writes `bytes` as the object `url`, whole (readers never see part of it).
pub fn put_bytes(url: &str, bytes: Vec<u8>) -> Result<(), String> {
    let (store, path) = resolve(url)?;
    block_on(async move {
        store
            .put(&path, bytes.into())
            .await
            .map(drop)
            .map_err(|e| format!("`{url}`: upload failed: {e}"))
    })?
}

/// Reads the object `url` whole; `None` when there is none.
pub fn get_bytes(url: &str) -> Result<Option<Vec<u8>>, String> {
    let (store, path) = resolve(url)?;
    block_on(async move {
        match store.get(&path).await {
            Ok(got) => got
                .bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| format!("`{url}`: cannot read: {e}")),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(format!("`{url}`: cannot read: {e}")),
        }
    })?
}

/// Deletes the object `url` (one that is not there is not an error).
pub fn delete(url: &str) -> Result<(), String> {
    let (store, path) = resolve(url)?;
    block_on(async move {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(format!("`{url}`: cannot delete: {e}")),
        }
    })?
}

/// Deletes every object under the folder `url`.
pub fn delete_all(url: &str) -> Result<(), String> {
    use futures_util::StreamExt;
    let (store, path) = resolve(url)?;
    let listed: Vec<ObjectPath> = block_on(async {
        let mut out = Vec::new();
        let mut stream = store.list(Some(&path));
        while let Some(meta) = stream.next().await {
            out.push(
                meta.map_err(|e| format!("`{url}`: cannot list: {e}"))?
                    .location,
            );
        }
        Ok::<_, String>(out)
    })??;
    for location in listed {
        block_on(async {
            match store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(format!("`{url}`: cannot delete {location}: {e}")),
            }
        })??;
    }
    Ok(())
}

/// Downloads `url` into an anonymous temporary file, positioned at its start.
pub fn download(url: &str) -> Result<File, String> {
    let (store, path) = resolve(url)?;
    let mut file =
        tempfile::tempfile().map_err(|e| format!("cannot make a temporary file: {e}"))?;
    block_on(async {
        use futures_util::StreamExt;
        let got = store
            .get(&path)
            .await
            .map_err(|e| format!("cannot open: {e}"))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("cannot read: {e}"))?;
            file.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    })??;
    file.rewind().map_err(|e| e.to_string())?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_round_trip_and_unknown_schemes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let local = dir.path().join("f");
        std::fs::write(&local, vec![7u8; (PART_BYTES * 2) + 5]).unwrap_or_else(|e| panic!("{e}"));
        upload(&local, "memory:///b/x/f").unwrap_or_else(|e| panic!("{e}"));
        let mut back = Vec::new();
        download("memory:///b/x/f")
            .and_then(|mut f| f.read_to_end(&mut back).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.len(), PART_BYTES * 2 + 5);
        assert!(
            download("memory:///b/none")
                .unwrap_err()
                .contains("cannot open")
        );
        assert!(download("ftp://h/x").unwrap_err().contains("ftp://"));
        put_bytes("memory:///b/d/one", b"1".to_vec()).unwrap_or_else(|e| panic!("{e}"));
        put_bytes("memory:///b/d/two", b"2".to_vec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get_bytes("memory:///b/d/one"), Ok(Some(b"1".to_vec())));
        delete("memory:///b/d/one").unwrap_or_else(|e| panic!("{e}"));
        delete("memory:///b/d/one").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get_bytes("memory:///b/d/one"), Ok(None));
        delete_all("memory:///b/d").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get_bytes("memory:///b/d/two"), Ok(None));
        assert!(is_remote("s3://b/k") && !is_remote("file:///x") && !is_remote("/x"));
    }
}
