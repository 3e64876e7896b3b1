//! The projector: a task per projection that tails the log from the projection's applied offset
//! and applies entries in batches, publishing the applied offset so readers can wait for it.

use std::sync::Arc;
use std::time::Duration;

use fjall::Keyspace;
use octo_core::Offset;
use octo_log::{EventLog, LogFilter, QueueBound, ReadError, ReadQuery, Subscription, TypePattern};
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

/// The log entries `P` folds: all but those of `P::SKIPS` and of the other kind than `P::KIND`.
pub fn filter_of<P: Projection>() -> LogFilter {
    LogFilter {
        kind: P::KIND,
        skip_types: P::SKIPS.iter().map(|t| TypePattern::parse(t)).collect(),
        ..LogFilter::all()
    }
}

/// Why catching up stopped.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pages a catch-up reads ahead of the one being applied. Reading and decoding a page takes about
/// as long as applying one, and on a busy machine their times vary page by page: with only the
/// next page in flight, the fold waited whenever one read ran long.
pub const CATCH_UP_READ_AHEAD: usize = 3;

/// Applies the log to `projection` from `applied` through `until` (at most the head): pages of
/// the entries `P` folds ([`filter_of`]), each committed with the offset its read scanned through,
/// read up to [`CATCH_UP_READ_AHEAD`] pages ahead of the one being applied. `on_applied` sees
/// every committed offset. Returns the applied offset.
///
/// # Errors
/// [`CatchUpError`]; what was committed before stays.
pub async fn catch_up<P: Projection>(
    log: &Arc<dyn EventLog>,
    store: &ProjectionStore,
    projection: &Arc<P>,
    keyspace: &Keyspace,
    mut applied: Offset,
    until: Offset,
    mut on_applied: impl FnMut(Offset),
) -> Result<Offset, CatchUpError> {
    if applied >= until {
        return Ok(applied);
    }
    let filter = filter_of::<P>();
    let (pages, mut next_page) = tokio::sync::mpsc::channel(CATCH_UP_READ_AHEAD);
    // The reader stops after the last page, at its first error, or once the fold below has
    // stopped taking pages.
    let reader = async move {
        let mut after = applied;
        loop {
            let page = log
                .read(ReadQuery {
                    filter: filter.clone(),
                    after,
                    until: Some(until),
                    limit: APPLY_BATCH_ENTRIES_MAX,
                })
                .await;
            let last = match &page {
                Ok(page) => {
                    after = page.scanned_through;
                    page.reached_end || after >= until
                }
                Err(_) => true,
            };
            if pages.send(page).await.is_err() || last {
                return;
            }
        }
    };
    let fold = async move {
        while let Some(page) = next_page.recv().await {
            let mut page = page?;
            let through = page.scanned_through;
            let last = page.reached_end || through >= until;
            let (store, projection, keyspace, entries) = (
                store.clone(),
                Arc::clone(projection),
                keyspace.clone(),
                std::mem::take(&mut page.entries),
            );
            let offset = blocking(move || {
                let applied = store.apply_through(
                    &*projection,
                    &keyspace,
                    entries.iter().map(|entry| &**entry),
                    Some(through),
                );
                // Freeing a page of entries is work the next page's fold need not wait for.
                tokio::task::spawn_blocking(move || drop(entries));
                applied
            })
            .await?;
            assert!(offset > applied, "projection went backwards");
            applied = offset;
            on_applied(applied);
            if last {
                break;
            }
        }
        // Every page through the last was applied; the reader stops at its first error after
        // sending it, so that was returned above.
        Ok::<_, CatchUpError>(applied)
    };
    // A fold that stops early drops its receiver, which stops the reader.
    let ((), applied) = tokio::join!(reader, fold);
    applied
}

/// Drops the versions of `P` older than the one in use once it has applied `retire_at`.
async fn retire_when_caught_up<P: Projection>(
    store: &ProjectionStore,
    applied: Offset,
    retire_at: &mut Option<Offset>,
) {
    if retire_at.is_some_and(|head| applied >= head) {
        *retire_at = None;
        let store = store.clone();
        if let Err(e) = blocking(move || store.retire_older::<P>()).await {
            tracing::warn!(projection = P::NAME, error = %e, "cannot drop an older version");
        }
    }
}

async fn run<P: Projection>(
    log: Arc<dyn EventLog>,
    store: ProjectionStore,
    projection: Arc<P>,
    keyspace: Keyspace,
    applied: Offset,
    publish: watch::Sender<Offset>,
) {
    // The version in use is swapped in once it has caught up with the log as it was at start.
    let head = log.head();
    let mut retire_at = Some(head);
    let caught_up = catch_up(
        &log,
        &store,
        &projection,
        &keyspace,
        applied,
        head,
        |offset| {
            publish.send_replace(offset);
        },
    )
    .await;
    let mut applied = match caught_up {
        Ok(applied) => applied,
        Err(e) => {
            tracing::error!(projection = P::NAME, error = %e, "projector cannot catch up");
            return;
        }
    };
    retire_when_caught_up::<P>(&store, applied, &mut retire_at).await;
    // Then follow the log; live entries come decoded, so they are all applied.
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
                retire_when_caught_up::<P>(&store, applied, &mut retire_at).await;
            }
            Err(e) => {
                tracing::error!(projection = P::NAME, error = %e, "projection stopped");
                return;
            }
        }
    }
}
