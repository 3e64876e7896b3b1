//! The projector: a task per projection that tails the log from the projection's applied offset
//! and applies entries in batches, publishing the applied offset so readers can wait for it.

use std::sync::Arc;
use std::time::Duration;

use fjall::Keyspace;
use octo_core::Offset;
use octo_log::{EventLog, LogFilter, QueueBound, Subscription};
use tokio::sync::watch;

use crate::Projection;
use crate::store::{ProjectionStore, StoreError};

/// Entries applied per committed batch at most; bounds the work lost to a crash and the time
/// between applied-offset updates.
pub const APPLY_BATCH_ENTRIES_MAX: usize = 512;

/// Why waiting for an offset ended without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// Retry or answer `unavailable`: the projection had not applied the offset in time.
    #[error("projection had applied {applied} of {wanted} when the wait timed out")]
    Timeout { wanted: Offset, applied: Offset },
    /// Stop: the projector stopped (see its logged error).
    #[error("the projector stopped")]
    Stopped,
}

/// What readers hold: the projection, its state keyspace, and its applied offset.
pub struct ProjectionHandle<P> {
    projection: Arc<P>,
    keyspace: Keyspace,
    applied: watch::Receiver<Offset>,
    task: tokio::task::JoinHandle<()>,
}

impl<P: Projection> ProjectionHandle<P> {
    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The state, as committed (consistent with [`ProjectionHandle::applied`] or newer).
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// The newest offset whose effects the state holds.
    pub fn applied(&self) -> Offset {
        *self.applied.borrow()
    }

    /// Waits until the projection has applied `offset` (read your writes).
    ///
    /// # Errors
    /// [`WaitError`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for(&self, offset: Offset, timeout: Duration) -> Result<(), WaitError> {
        let mut applied = self.applied.clone();
        let reached =
            tokio::time::timeout(timeout, applied.wait_for(|applied| *applied >= offset)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WaitError::Stopped),
            Err(_) => Err(WaitError::Timeout {
                wanted: offset,
                applied: self.applied(),
            }),
        }
    }
}

impl<P> Drop for ProjectionHandle<P> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| StoreError::Storage {
            path: std::path::PathBuf::new(),
            detail: format!("projection task failed: {e}"),
        })?
}

/// Starts a projector for `projection`: it catches up from the stored applied offset, then
/// follows the log.
///
/// # Errors
/// [`StoreError`] if the projection's state cannot be opened.
pub async fn spawn_projector<P: Projection>(
    log: Arc<dyn EventLog>,
    store: ProjectionStore,
    projection: P,
) -> Result<ProjectionHandle<P>, StoreError> {
    let (keyspace, applied) = {
        let store = store.clone();
        blocking(move || Ok((store.keyspace::<P>()?, store.applied::<P>()?))).await?
    };
    let (publish, applied_receiver) = watch::channel(applied);
    let projection = Arc::new(projection);
    let task = tokio::spawn(run::<P>(
        log,
        store,
        Arc::clone(&projection),
        keyspace.clone(),
        applied,
        publish,
    ));
    Ok(ProjectionHandle {
        projection,
        keyspace,
        applied: applied_receiver,
        task,
    })
}

async fn run<P: Projection>(
    log: Arc<dyn EventLog>,
    store: ProjectionStore,
    projection: Arc<P>,
    keyspace: Keyspace,
    mut applied: Offset,
    publish: watch::Sender<Offset>,
) {
    // The version in use is swapped in once it has caught up with the log as it was at start.
    let mut retire_at = Some(log.head());
    if retire_at.is_some_and(|head| applied >= head) {
        retire_at = None;
        let store = store.clone();
        if let Err(e) = blocking(move || store.retire_older::<P>()).await {
            tracing::warn!(projection = P::NAME, error = %e, "cannot drop an older version");
        }
    }
    let mut subscription =
        match Subscription::new(log, LogFilter::all(), applied, QueueBound::default()) {
            Ok(subscription) => subscription,
            Err(e) => {
                tracing::error!(projection = P::NAME, error = %e, "projector cannot subscribe");
                return;
            }
        };
    loop {
        let mut batch = Vec::with_capacity(64);
        match subscription.next().await {
            Ok(entry) => batch.push(entry),
            Err(e) => {
                tracing::error!(projection = P::NAME, error = %e, "projector lost the log");
                return;
            }
        }
        // Take whatever is ready without waiting, up to the batch bound.
        while batch.len() < APPLY_BATCH_ENTRIES_MAX {
            match tokio::time::timeout(Duration::ZERO, subscription.next()).await {
                Ok(Ok(entry)) => batch.push(entry),
                Ok(Err(e)) => {
                    tracing::error!(projection = P::NAME, error = %e, "projector lost the log");
                    return;
                }
                Err(_) => break,
            }
        }
        let (batch_store, projection, keyspace) =
            (store.clone(), Arc::clone(&projection), keyspace.clone());
        let result = blocking(move || {
            batch_store.apply(&*projection, &keyspace, batch.iter().map(|entry| &**entry))
        })
        .await;
        match result {
            Ok(offset) => {
                assert!(offset > applied, "projection went backwards");
                applied = offset;
                publish.send_replace(applied);
                if retire_at.is_some_and(|head| applied >= head) {
                    retire_at = None;
                    let store = store.clone();
                    if let Err(e) = blocking(move || store.retire_older::<P>()).await {
                        tracing::warn!(projection = P::NAME, error = %e, "cannot drop an older version");
                    }
                }
            }
            Err(e) => {
                tracing::error!(projection = P::NAME, error = %e, "projection stopped");
                return;
            }
        }
    }
}
