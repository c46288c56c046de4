//! The object store as the tier sees it: built from a URL, every request bounded by a timeout and
//! retried with backoff in this one layer, every request counted.
//!
//! The HTTP stores' own retries are switched off (`max_retries = 0`) so a request is retried in
//! exactly one place, the same way for S3, GCS, Azure, a local directory and memory. Errors that
//! name a definite answer (not found, already exists, precondition, permission) are returned at
//! once; everything else (5xx, slow-downs, connection resets, timeouts) is transient.

use crate::backoff::Backoff;
use crate::config::StoreConfig;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutPayload, RetryConfig,
};
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Objects larger than this are uploaded in parts of this size.
pub const PART_SIZE: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("object {0} already exists")]
    AlreadyExists(String),
    #[error("object store {op} {key}: {source}")]
    Failed {
        op: &'static str,
        key: String,
        source: object_store::Error,
    },
    #[error("object store {op} {key} timed out after {after:?}")]
    TimedOut {
        op: &'static str,
        key: String,
        after: Duration,
    },
    #[error("reading local file for upload: {0}")]
    Local(#[from] std::io::Error),
}

impl StoreError {
    /// A failure retrying will not fix: the object or bucket is missing, the credentials are
    /// refused, the request is malformed. Timeouts, 5xx and slow-downs are transient.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::NotFound(_) | StoreError::AlreadyExists(_) | StoreError::Local(_) => true,
            StoreError::Failed { source, .. } => !is_transient(source),
            StoreError::TimedOut { .. } => false,
        }
    }
}

/// Builds the object store for a tier URL: `s3://bucket/prefix`, `gs://…`, `az://…`/`abfs://…`,
/// `file:///dir`, `memory://`. Returns the store and the key prefix inside it.
pub fn build(url: &str, o: &StoreConfig) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let no_retry = RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    };
    // through config keys, not `with_client_options`, which would drop the client settings
    // `from_env` read (AWS_ALLOW_HTTP and friends)
    let timeout = format!("{}ms", o.request_timeout.as_millis());
    let connect_timeout = "5s";
    let prefix = Path::from(parsed.path().trim_matches('/'));
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "s3" | "s3a" => {
            use object_store::aws::AmazonS3Builder;
            use object_store::aws::AmazonS3ConfigKey as K;
            let mut b = AmazonS3Builder::from_env()
                .with_url(url)
                .with_retry(no_retry)
                .with_config(K::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect_timeout);
            if !o.s3_endpoint.is_empty() {
                b = b.with_endpoint(&o.s3_endpoint);
            }
            if !o.s3_region.is_empty() {
                b = b.with_region(&o.s3_region);
            }
            if !o.s3_access_key_id.is_empty() {
                b = b.with_access_key_id(&o.s3_access_key_id);
            }
            if !o.s3_secret_access_key.is_empty() {
                b = b.with_secret_access_key(&o.s3_secret_access_key);
            }
            if o.s3_allow_http {
                b = b.with_allow_http(true);
            }
            if o.s3_virtual_hosted_style {
                b = b.with_virtual_hosted_style_request(true);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "gs" => {
            use object_store::gcp::GoogleCloudStorageBuilder;
            use object_store::gcp::GoogleConfigKey as K;
            let b = GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .with_retry(no_retry)
                .with_config(K::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect_timeout);
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            use object_store::azure::AzureConfigKey as K;
            use object_store::azure::MicrosoftAzureBuilder;
            let b = MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .with_retry(no_retry)
                .with_config(K::Client(ClientConfigKey::Timeout), &timeout)
                .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect_timeout);
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|_| format!("`{url}` is not an absolute file URL"))?;
            // once, when the broker starts
            #[allow(clippy::disallowed_methods)]
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| e.to_string())?
                .with_automatic_cleanup(true);
            return Ok((Arc::new(local), Path::default()));
        }
        "memory" => return Ok((Arc::new(object_store::memory::InMemory::new()), prefix)),
        other => {
            return Err(format!(
                "unsupported scheme `{other}`: use s3://, gs://, az://, file:// or memory://"
            ))
        }
    };
    // the bucket is the URL's host; what follows it is the key prefix
    Ok((store, prefix))
}

/// The bytes of a closed local segment's `.log`, as the log lends them to an upload. Called on
/// a blocking thread. A segment the log has deleted meanwhile answers `NotFound`.
pub trait SegmentData: Send + Sync + 'static {
    fn read_at(&self, pos: u64, len: usize) -> std::io::Result<Bytes>;
}

/// The store behind the retry and metrics layer. Keys are relative to the tier's prefix.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    timeout: Duration,
    max_attempts: u32,
}

impl Store {
    pub fn new(inner: Arc<dyn ObjectStore>, prefix: Path, o: &StoreConfig) -> Store {
        Store {
            inner,
            prefix,
            timeout: o.request_timeout,
            max_attempts: o.max_attempts.max(1),
        }
    }

    fn path(&self, key: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in key.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    /// Runs `attempt` until it succeeds, fails definitely, or runs out of attempts, with an
    /// exponential backoff (100 ms doubling, capped at 5 s, with jitter) between tries.
    async fn retry<T, F, Fut>(
        &self,
        op: &'static str,
        key: &str,
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut tries = 0;
        loop {
            tries += 1;
            let started = std::time::Instant::now();
            let res = tokio::time::timeout(self.timeout, attempt()).await;
            crate::metrics::tier_request(op, started.elapsed());
            let err = match res {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(object_store::Error::NotFound { .. })) => {
                    return Err(StoreError::NotFound(key.to_string()))
                }
                Ok(Err(object_store::Error::AlreadyExists { .. })) => {
                    return Err(StoreError::AlreadyExists(key.to_string()))
                }
                Ok(Err(e)) if !is_transient(&e) => {
                    crate::metrics::tier_request_error(op);
                    return Err(StoreError::Failed {
                        op,
                        key: key.to_string(),
                        source: e,
                    });
                }
                Ok(Err(e)) => StoreError::Failed {
                    op,
                    key: key.to_string(),
                    source: e,
                },
                Err(_) => StoreError::TimedOut {
                    op,
                    key: key.to_string(),
                    after: self.timeout,
                },
            };
            crate::metrics::tier_request_error(op);
            if tries >= self.max_attempts {
                return Err(err);
            }
            tracing::debug!(op, key, attempt = tries, error = %err, "object store request failed; retrying");
            tokio::time::sleep(backoff.next_pause()).await;
        }
    }

    /// Writes a whole object. With `create`, fails with `AlreadyExists` when the key exists
    /// (a conditional write on S3, GCS and Azure; an exclusive create on local disk).
    pub async fn put(&self, key: &str, data: Bytes, create: bool) -> Result<(), StoreError> {
        let path = self.path(key);
        let mode = if create {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        let len = data.len();
        self.retry("put", key, || {
            self.inner
                .put_opts(&path, PutPayload::from(data.clone()), mode.clone().into())
        })
        .await?;
        crate::metrics::tier_uploaded(len);
        Ok(())
    }

    /// Uploads `len` bytes of local data: in one request when small, otherwise in `PART_SIZE`
    /// parts. A part that fails after its retries aborts the upload; the caller starts it again
    /// later.
    pub async fn put_data(
        &self,
        key: &str,
        source: Arc<dyn SegmentData>,
        len: u64,
    ) -> Result<(), StoreError> {
        if len as usize <= PART_SIZE {
            let data = read_at(source, 0, len as usize).await?;
            return self.put(key, data, false).await;
        }
        let path = self.path(key);
        let mut upload = self
            .retry("put_multipart", key, || self.inner.put_multipart(&path))
            .await?;
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(PART_SIZE as u64) as usize;
            let data = read_at(source.clone(), pos, n).await?;
            let part = upload.put_part(PutPayload::from(data));
            let started = std::time::Instant::now();
            let res = tokio::time::timeout(self.timeout, part).await;
            crate::metrics::tier_request("put_part", started.elapsed());
            let failed = match res {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(StoreError::Failed {
                    op: "put_part",
                    key: key.to_string(),
                    source: e,
                }),
                Err(_) => Some(StoreError::TimedOut {
                    op: "put_part",
                    key: key.to_string(),
                    after: self.timeout,
                }),
            };
            if let Some(e) = failed {
                crate::metrics::tier_request_error("put_part");
                let _ = upload.abort().await;
                return Err(e);
            }
            crate::metrics::tier_uploaded(n);
            pos += n as u64;
        }
        let res = tokio::time::timeout(self.timeout, upload.complete()).await;
        match res {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                crate::metrics::tier_request_error("complete_multipart");
                Err(StoreError::Failed {
                    op: "complete_multipart",
                    key: key.to_string(),
                    source: e,
                })
            }
            Err(_) => {
                crate::metrics::tier_request_error("complete_multipart");
                let _ = upload.abort().await;
                Err(StoreError::TimedOut {
                    op: "complete_multipart",
                    key: key.to_string(),
                    after: self.timeout,
                })
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path(key);
        let data = self
            .retry("get", key, || async {
                self.inner.get(&path).await?.bytes().await
            })
            .await?;
        crate::metrics::tier_downloaded(data.len());
        Ok(data)
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = self.path(key);
        let data = self
            .retry("get_range", key, || {
                self.inner.get_range(&path, range.clone())
            })
            .await?;
        crate::metrics::tier_downloaded(data.len());
        Ok(data)
    }

    /// Every object under `key_prefix`, as (key relative to the tier prefix, size).
    pub async fn list(&self, key_prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let path = self.path(key_prefix);
        let base = self.prefix.clone();
        self.retry("list", key_prefix, || {
            let path = path.clone();
            let base = base.clone();
            async move {
                let mut out = Vec::new();
                let mut s = self.inner.list(Some(&path));
                while let Some(meta) = s.next().await {
                    let meta = meta?;
                    let rel: Vec<String> = match meta.location.prefix_match(&base) {
                        Some(parts) => parts.map(|p| p.as_ref().to_string()).collect(),
                        None => continue,
                    };
                    out.push((rel.join("/"), meta.size));
                }
                Ok(out)
            }
        })
        .await
    }

    /// The immediate "directories" under `key_prefix`.
    pub async fn list_dirs(&self, key_prefix: &str) -> Result<Vec<String>, StoreError> {
        let path = self.path(key_prefix);
        let res = self
            .retry("list", key_prefix, || {
                self.inner.list_with_delimiter(Some(&path))
            })
            .await?;
        Ok(res
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }

    /// Deletes an object; a missing one counts as deleted.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key);
        match self.retry("delete", key, || self.inner.delete(&path)).await {
            Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn is_transient(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

/// Reads local data on a blocking thread (the source does file I/O).
async fn read_at(source: Arc<dyn SegmentData>, pos: u64, len: usize) -> Result<Bytes, StoreError> {
    let data = tokio::task::spawn_blocking(move || source.read_at(pos, len))
        .await
        .map_err(|e| StoreError::Local(std::io::Error::other(e)))??;
    if data.len() < len {
        return Err(StoreError::Local(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "local segment has {} of the {len} bytes to upload",
                data.len()
            ),
        )));
    }
    Ok(data)
}
