//! A fault-injecting object store layer for tests: an outage a real server cannot be made to
//! produce on cue (every request failing like a 503, hanging past the request timeout, or
//! refused like bad credentials).
//! Switched at run time through a shared [`FaultSwitch`]; transparent while healthy.

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Healthy = 0,
    /// Every request fails at once with a transient error.
    Unavailable = 1,
    /// Every request hangs (the caller's timeout ends it).
    Hang = 2,
    /// Every request is refused for good, as a store refusing the credentials answers.
    Denied = 3,
}

/// Flips the store between healthy and failing; counts the requests it refused.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    mode: AtomicU8,
    refused: AtomicU64,
}

impl FaultSwitch {
    pub fn set(&self, f: Fault) {
        self.mode.store(f as u8, Ordering::SeqCst);
    }
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
    async fn check(&self, op: &str) -> Result<()> {
        match self.mode.load(Ordering::SeqCst) {
            1 => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                Err(object_store::Error::Generic {
                    store: "faulty",
                    source: format!("injected outage during {op}").into(),
                })
            }
            2 => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
                unreachable!("a pending future never completes")
            }
            3 => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                Err(object_store::Error::PermissionDenied {
                    path: op.to_string(),
                    source: "injected: access denied".into(),
                })
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    switch: Arc<FaultSwitch>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> (Arc<FaultyStore>, Arc<FaultSwitch>) {
        let switch = Arc::new(FaultSwitch::default());
        (
            Arc::new(FaultyStore {
                inner,
                switch: switch.clone(),
            }),
            switch,
        )
    }
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.switch.check("put").await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.switch.check("put_multipart").await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.switch.check("get").await?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        if self.switch.mode.load(Ordering::SeqCst) != Fault::Healthy as u8 {
            self.switch.refused.fetch_add(1, Ordering::SeqCst);
            return locations
                .map(|_| {
                    Err(object_store::Error::Generic {
                        store: "faulty",
                        source: "injected outage during delete".into(),
                    })
                })
                .boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if self.switch.mode.load(Ordering::SeqCst) != Fault::Healthy as u8 {
            self.switch.refused.fetch_add(1, Ordering::SeqCst);
            return futures::stream::once(async {
                Err(object_store::Error::Generic {
                    store: "faulty",
                    source: "injected outage during list".into(),
                })
            })
            .boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.switch.check("list").await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.switch.check("copy").await?;
        self.inner.copy_opts(from, to, options).await
    }
}
