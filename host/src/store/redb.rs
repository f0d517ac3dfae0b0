//! [`RedbStore`]: the embedded [`Store`], one redb file.
//!
//! # Layout
//!
//! Three tables, all written by one write transaction per batch:
//!
//! * `objects`: key (`&str`) → `varint(mod_revision) varint(mod_revision - create_revision) value`.
//!   A key that was just created costs two or three header bytes.
//! * `changelog`: revision (`u64`) → `kind:u8 varint(key_len) key varint(value_len) value prev`,
//!   where `prev` (the rest of the record) is only stored for updates: a create has none and a
//!   delete's previous value is its value.
//! * `meta`: `"revision"` (the newest revision) and `"compacted"` (log entries at or below it are
//!   gone), written in the same transaction as the data they describe, so a read transaction sees
//!   a consistent pair of data and revision.
//!
//! # Writes: one writer thread, group commit
//!
//! [`Store::write`] sends the operation to a dedicated OS thread and awaits a oneshot reply. The
//! thread blocks for the first request, then takes whatever else is queued (up to
//! [`RedbStoreConfig::max_batch_ops`]) and applies all of it in ONE write transaction, committed
//! once with [`Durability::Immediate`] (fsync). Each operation's precondition is checked on its
//! own, against the state left by the operations before it in the batch; a failing operation
//! fails alone and takes no revision, and each successful one takes the next revision, so a batch
//! of N successful operations takes N consecutive revisions. Only after the commit are the
//! in-memory revision counters advanced, the callers answered and the batch's events published.
//! A batch in which nothing succeeded is aborted instead of committed (no fsync).
//!
//! # Compaction
//!
//! The change log keeps the last [`RedbStoreConfig::retain_revisions`] revisions. Compaction is
//! incremental: every write batch deletes at most [`RedbStoreConfig::compact_per_batch`] of the
//! oldest entries, in the same transaction. [`RedbStore::compact`] forces it (for tests and
//! maintenance).
//!
//! # Watches
//!
//! Committed batches are published on a `tokio::sync::broadcast` channel. A watch subscribes to it
//! FIRST, then (if it starts in the past) replays the change log from a read snapshot, in chunks,
//! then follows the live batches, skipping everything at or below the last revision it has
//! processed (its cursor). Revisions are contiguous, so a live batch starting after `cursor + 1`
//! reveals a gap: the watch then goes back to the log (every published batch is committed, so the
//! log has it) — the same recovery as for a `Lagged` receiver. If the log no longer holds the
//! revisions after the cursor, the stream yields [`StoreError::Compacted`] and ends. A watch from
//! a revision newer than the current one is accepted and delivers from `after + 1` once the store
//! gets there (as etcd does). The stream ends when the store is dropped.
//!
//! # Reads
//!
//! Reads use redb read transactions (MVCC), so they never block the writer. `get` is a point
//! lookup on cached B-tree pages and runs inline; `list` and `count`, which may walk many keys,
//! run on `spawn_blocking`. A `list` page comes from one read transaction and reports the
//! revision stored in that snapshot.

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
};
use anyhow::Context as _;
use futures::StreamExt as _;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{
    Event, EventKind, KeyValue, ListResult, Revision, Store, StoreError, StoreResult, WatchStream,
    WriteOp, WriteResult,
};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("changelog");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// Tuning of a [`RedbStore`]. `Default` gives production values.
#[derive(Clone, Debug)]
pub struct RedbStoreConfig {
    /// How many revisions the change log keeps (watches can start this far back). Default 100,000.
    pub retain_revisions: u64,
    /// At most this many of the oldest log entries are deleted per write batch, so compaction
    /// never stalls writes. Default 1,000.
    pub compact_per_batch: u64,
    /// At most this many queued operations go into one write transaction. Default 512.
    pub max_batch_ops: usize,
    /// Capacity of the queue in front of the writer thread (callers wait when it is full).
    /// Default 8,192.
    pub queue_capacity: usize,
    /// How many committed batches the live watch feed buffers per watcher before a slow watcher
    /// lags (it then recovers from the change log). Default 1,024.
    pub watch_buffer_batches: usize,
    /// How many log entries a watch reads per blocking read when it replays. Default 1,024.
    pub watch_replay_chunk: usize,
    /// Batches that take longer than this to apply and commit are logged as warnings.
    /// Default 100 ms.
    pub slow_commit_threshold: Duration,
    /// redb page cache size in bytes (`None`: redb's default).
    pub cache_size_bytes: Option<usize>,
}

impl Default for RedbStoreConfig {
    fn default() -> Self {
        Self {
            retain_revisions: 100_000,
            compact_per_batch: 1_000,
            max_batch_ops: 512,
            queue_capacity: 8_192,
            watch_buffer_batches: 1_024,
            watch_replay_chunk: 1_024,
            slow_commit_threshold: Duration::from_millis(100),
            cache_size_bytes: None,
        }
    }
}

/// Counters of the writer, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedbStoreStats {
    /// Write transactions committed (one fsync each).
    pub commits: u64,
    /// Requests (successful or not) answered by committed transactions.
    pub committed_requests: u64,
    /// The most requests one committed transaction has carried.
    pub largest_batch: u64,
}

/// The embedded store. See the module documentation for the design.
pub struct RedbStore {
    // Field order matters for Drop: the request sender goes first, so that the writer thread
    // sees the queue closed; `_writer` then joins it; the broadcast sender goes after, so that
    // watches see the feed closed once the writer (which holds the other sender) has ended.
    requests: mpsc::Sender<Request>,
    _writer: WriterThread,
    events: broadcast::Sender<Arc<[Event]>>,
    shared: Arc<Shared>,
}

/// State shared by the store, the writer thread and the readers.
struct Shared {
    db: Database,
    /// Newest committed revision (advanced after each commit, before callers are answered).
    revision: AtomicU64,
    /// Log entries at or below this revision are gone.
    compacted: AtomicU64,
    commits: AtomicU64,
    committed_requests: AtomicU64,
    largest_batch: AtomicU64,
    replay_chunk: usize,
}

/// Joins the writer thread when dropped.
struct WriterThread(Option<JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && handle.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}

enum Request {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<StoreResult<WriteResult>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<StoreResult<Revision>>,
    },
}

enum Work {
    Write(WriteOp),
    Compact(Revision),
}

enum Reply {
    Write(oneshot::Sender<StoreResult<WriteResult>>),
    Compact(oneshot::Sender<StoreResult<Revision>>),
}

enum Outcome {
    Write(StoreResult<WriteResult>),
    Compact(StoreResult<Revision>),
}

impl Request {
    fn split(self) -> (Work, Reply) {
        match self {
            Request::Write { op, reply } => (Work::Write(op), Reply::Write(reply)),
            Request::Compact { revision, reply } => {
                (Work::Compact(revision), Reply::Compact(reply))
            }
        }
    }
}

impl Reply {
    // A caller that has gone away (its future was dropped) is not an error.
    fn send(self, outcome: Outcome) {
        match (self, outcome) {
            (Reply::Write(tx), Outcome::Write(result)) => {
                let _ = tx.send(result);
            }
            (Reply::Compact(tx), Outcome::Compact(result)) => {
                let _ = tx.send(result);
            }
            (reply, _) => reply.fail(StoreError::Internal(
                "store writer: reply does not match its request".to_owned(),
            )),
        }
    }

    fn fail(self, error: StoreError) {
        match self {
            Reply::Write(tx) => {
                let _ = tx.send(Err(error));
            }
            Reply::Compact(tx) => {
                let _ = tx.send(Err(error));
            }
        }
    }
}

/// Maps any displayable error into `StoreError::Internal` with some context.
fn internal<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Internal(format!("{context}: {e}"))
}

impl RedbStore {
    /// Opens (or creates) the store in the redb file at `path` and starts its writer thread.
    ///
    /// Every write acknowledged before a crash is found again, at the same revision, and the
    /// revision counter continues from the newest one. The writer thread ends, and the file is
    /// closed, when the returned store is dropped (dropping it waits for the batch in flight);
    /// watch streams then end. Must not be called twice for the same file at once (redb locks it).
    pub fn open(path: &Path, config: RedbStoreConfig) -> anyhow::Result<Arc<RedbStore>> {
        let mut builder = Database::builder();
        if let Some(bytes) = config.cache_size_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder
            .create(path)
            .with_context(|| format!("opening store database {}", path.display()))?;

        // Create the tables if this is a new file, so that read transactions can open them.
        let txn = db
            .begin_write()
            .context("starting the store's first transaction")?;
        let (revision, compacted) = {
            txn.open_table(OBJECTS).context("opening table objects")?;
            let log = txn.open_table(LOG).context("opening table changelog")?;
            let meta = txn.open_table(META).context("opening table meta")?;
            let revision = meta.get(META_REVISION)?.map_or(0, |g| g.value());
            let compacted = meta.get(META_COMPACTED)?.map_or(0, |g| g.value());
            if let Some((last, _)) = log.last()?
                && last.value() > revision
            {
                anyhow::bail!(
                    "store {}: change log reaches revision {} beyond the stored revision {revision}",
                    path.display(),
                    last.value()
                );
            }
            (revision, compacted)
        };
        txn.commit()
            .context("committing the store's first transaction")?;
        tracing::info!(
            path = %path.display(),
            revision,
            compacted,
            "opened store"
        );

        let shared = Arc::new(Shared {
            db,
            revision: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            commits: AtomicU64::new(0),
            committed_requests: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            replay_chunk: config.watch_replay_chunk.max(1),
        });
        let (requests, queue) = mpsc::channel(config.queue_capacity.max(1));
        let (events, _) = broadcast::channel(config.watch_buffer_batches.max(1));
        let writer = Writer {
            shared: shared.clone(),
            events: events.clone(),
            retain: config.retain_revisions,
            compact_per_batch: config.compact_per_batch.max(1),
            max_batch: config.max_batch_ops.max(1),
            slow_commit: config.slow_commit_threshold,
            revision,
            compacted,
            scratch: Vec::new(),
            works: Vec::new(),
            replies: Vec::new(),
            outcomes: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || writer.run(queue))
            .context("starting the store writer thread")?;
        Ok(Arc::new(RedbStore {
            requests,
            _writer: WriterThread(Some(handle)),
            events,
            shared,
        }))
    }

    /// Forces compaction of the change log up to `revision` (inclusive), in one transaction,
    /// serialized with the writes. Returns the compacted revision afterwards (unchanged if it was
    /// already at or past `revision`). `FutureRevision` if `revision` is newer than the store.
    pub async fn compact(&self, revision: Revision) -> StoreResult<Revision> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Compact { revision, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The writer's counters.
    pub fn stats(&self) -> RedbStoreStats {
        RedbStoreStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            committed_requests: self.shared.committed_requests.load(Ordering::Relaxed),
            largest_batch: self.shared.largest_batch.load(Ordering::Relaxed),
        }
    }
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        self.shared.get(key)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StoreResult<ListResult> {
        let shared = self.shared.clone();
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        tokio::task::spawn_blocking(move || shared.list(&prefix, start_after.as_deref(), limit))
            .await
            .map_err(internal("list task"))?
    }

    async fn count(&self, prefix: &str, start_after: Option<&str>) -> StoreResult<u64> {
        let shared = self.shared.clone();
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        tokio::task::spawn_blocking(move || shared.count(&prefix, start_after.as_deref()))
            .await
            .map_err(internal("count task"))?
    }

    /// If the returned future is dropped after the operation was queued, the operation may
    /// still be applied.
    async fn write(&self, op: WriteOp) -> StoreResult<WriteResult> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Write { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// `after > current_revision()` is accepted: events arrive from `after + 1` on.
    fn watch(&self, prefix: &str, after: Revision) -> StoreResult<WatchStream> {
        // Subscribe before anything else: every batch committed from here on reaches `live`.
        let live = self.events.subscribe();
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if after != 0 && after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: compacted,
            });
        }
        let current = self.shared.revision.load(Ordering::SeqCst);
        // Batches above `current` are committed after the subscription, so they will be
        // received; what is at or below it comes from the log.
        let (cursor, replay) = if after == 0 {
            (current, false)
        } else {
            (after, after < current)
        };
        let watch = Watch {
            shared: Arc::downgrade(&self.shared),
            live,
            prefix: Arc::from(prefix),
            cursor,
            replay,
            pending: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(watch, Watch::next).boxed())
    }

    fn current_revision(&self) -> Revision {
        self.shared.revision.load(Ordering::SeqCst)
    }

    fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

impl Shared {
    fn begin_read(&self) -> StoreResult<ReadTransaction> {
        self.db
            .begin_read()
            .map_err(internal("begin read transaction"))
    }

    fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let txn = self.begin_read()?;
        let objects = txn
            .open_table(OBJECTS)
            .map_err(internal("open table objects"))?;
        match objects.get(key).map_err(internal("read object"))? {
            None => Ok(None),
            Some(guard) => decode_object(key, guard.value()).map(Some),
        }
    }

    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StoreResult<ListResult> {
        let txn = self.begin_read()?;
        let (revision, _) = read_meta(&txn)?;
        let objects = txn
            .open_table(OBJECTS)
            .map_err(internal("open table objects"))?;
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let range = objects
            .range::<&str>((lower, Bound::Unbounded))
            .map_err(internal("list objects"))?;
        let mut items = Vec::new();
        let mut more = false;
        for entry in range {
            let (key, value) = entry.map_err(internal("list objects"))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            if limit != 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push(decode_object(key, value.value())?);
        }
        Ok(ListResult {
            items,
            revision,
            more,
        })
    }

    fn count(&self, prefix: &str, start_after: Option<&str>) -> StoreResult<u64> {
        let txn = self.begin_read()?;
        let objects = txn
            .open_table(OBJECTS)
            .map_err(internal("open table objects"))?;
        let from = match start_after {
            Some(k) if k >= prefix => k,
            _ => prefix,
        };
        let range = objects
            .range::<&str>(from..)
            .map_err(internal("count objects"))?;
        let mut count = 0;
        for entry in range {
            let (key, _) = entry.map_err(internal("count objects"))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            if start_after == Some(key) {
                continue;
            }
            count += 1;
        }
        Ok(count)
    }

    /// Reads the log after `after`, up to the snapshot's revision but at most `max_scan`
    /// entries, keeping the events under `prefix`. Returns them, the last revision scanned, and
    /// whether that is the snapshot's revision.
    fn read_log(
        &self,
        prefix: &str,
        after: Revision,
        max_scan: usize,
    ) -> StoreResult<(Vec<Event>, Revision, bool)> {
        let txn = self.begin_read()?;
        let (revision, compacted) = read_meta(&txn)?;
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: compacted,
            });
        }
        if after >= revision {
            return Ok((Vec::new(), after, true));
        }
        let log = txn
            .open_table(LOG)
            .map_err(internal("open table changelog"))?;
        let range = log
            .range(after + 1..=revision)
            .map_err(internal("read changelog"))?;
        let mut events = Vec::new();
        let mut last = after;
        for entry in range.take(max_scan) {
            let (rev, record) = entry.map_err(internal("read changelog"))?;
            let rev = rev.value();
            if rev != last + 1 {
                return Err(StoreError::Internal(format!(
                    "change log has a gap: revision {rev} follows {last}"
                )));
            }
            last = rev;
            if let Some(event) = decode_log(rev, record.value(), prefix)? {
                events.push(event);
            }
        }
        if last == after {
            return Err(StoreError::Internal(format!(
                "change log has no revision after {after} (store at {revision})"
            )));
        }
        Ok((events, last, last == revision))
    }
}

fn read_meta(txn: &ReadTransaction) -> StoreResult<(Revision, Revision)> {
    let meta = txn.open_table(META).map_err(internal("open table meta"))?;
    let revision = meta
        .get(META_REVISION)
        .map_err(internal("read meta"))?
        .map_or(0, |g| g.value());
    let compacted = meta
        .get(META_COMPACTED)
        .map_err(internal("read meta"))?
        .map_or(0, |g| g.value());
    Ok((revision, compacted))
}

// ---------------------------------------------------------------------------------------------
// The writer

struct Writer {
    shared: Arc<Shared>,
    events: broadcast::Sender<Arc<[Event]>>,
    retain: u64,
    compact_per_batch: u64,
    max_batch: usize,
    slow_commit: Duration,
    /// Last committed revision and compacted revision.
    revision: Revision,
    compacted: Revision,
    // Buffers reused from batch to batch.
    scratch: Vec<u8>,
    works: Vec<Work>,
    replies: Vec<Reply>,
    outcomes: Vec<Outcome>,
}

/// What a batch transaction did.
struct Applied {
    revision: Revision,
    compacted: Revision,
    committed: bool,
}

type Objects<'t> = Table<'t, &'static str, &'static [u8]>;
type Log<'t> = Table<'t, u64, &'static [u8]>;

impl Writer {
    fn run(mut self, mut queue: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        // Blocks for the first request, then takes what else is queued, up to the cap.
        while queue.blocking_recv_many(&mut batch, self.max_batch) > 0 {
            self.run_batch(&mut batch);
        }
        tracing::debug!("store writer stopped");
    }

    fn run_batch(&mut self, batch: &mut Vec<Request>) {
        let started = Instant::now();
        let size = batch.len();
        for request in batch.drain(..) {
            let (work, reply) = request.split();
            self.works.push(work);
            self.replies.push(reply);
        }
        let publish = self.events.receiver_count() > 0;
        let mut events = Vec::new();
        if publish {
            events.reserve(size);
        }
        let result = self.apply(publish.then_some(&mut events));
        self.works.clear();
        match result {
            Ok(applied) => {
                if applied.committed {
                    self.revision = applied.revision;
                    self.compacted = applied.compacted;
                    let shared = &self.shared;
                    shared.revision.store(applied.revision, Ordering::SeqCst);
                    shared.compacted.store(applied.compacted, Ordering::SeqCst);
                    shared.commits.fetch_add(1, Ordering::Relaxed);
                    shared
                        .committed_requests
                        .fetch_add(size as u64, Ordering::Relaxed);
                    shared
                        .largest_batch
                        .fetch_max(size as u64, Ordering::Relaxed);
                }
                for (reply, outcome) in self.replies.drain(..).zip(self.outcomes.drain(..)) {
                    reply.send(outcome);
                }
                if !events.is_empty() {
                    // No receiver is not an error: watches come and go.
                    let _ = self.events.send(Arc::from(events));
                }
            }
            Err(error) => {
                tracing::error!(batch = size, %error, "store write batch failed");
                self.outcomes.clear();
                for reply in self.replies.drain(..) {
                    reply.fail(error.clone());
                }
            }
        }
        let elapsed = started.elapsed();
        if elapsed > self.slow_commit {
            tracing::warn!(
                batch = size,
                elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                "slow store commit"
            );
        }
    }

    /// Applies `self.works` in one transaction, pushing one outcome per work, and commits.
    /// An `Err` means the whole batch failed (nothing was committed).
    fn apply(&mut self, mut events: Option<&mut Vec<Event>>) -> StoreResult<Applied> {
        let mut txn = self
            .shared
            .db
            .begin_write()
            .map_err(internal("begin write transaction"))?;
        txn.set_durability(Durability::Immediate)
            .map_err(internal("set durability"))?;
        let mut revision = self.revision;
        let mut compacted = self.compacted;
        {
            let mut objects = txn
                .open_table(OBJECTS)
                .map_err(internal("open table objects"))?;
            let mut log = txn
                .open_table(LOG)
                .map_err(internal("open table changelog"))?;
            for work in self.works.drain(..) {
                match work {
                    Work::Write(op) => {
                        let kind = match &op {
                            WriteOp::Create { .. } => EventKind::Create,
                            WriteOp::Update { .. } => EventKind::Update,
                            WriteOp::Delete { .. } => EventKind::Delete,
                        };
                        let result = apply_write(
                            &mut objects,
                            &mut log,
                            &mut self.scratch,
                            op,
                            revision + 1,
                        )?;
                        if let Ok(written) = &result {
                            revision = written.revision;
                            if let Some(events) = events.as_deref_mut() {
                                events.push(event_of(written, kind));
                            }
                        }
                        self.outcomes.push(Outcome::Write(result));
                    }
                    Work::Compact(target) => {
                        let result = if target > revision {
                            Err(StoreError::FutureRevision {
                                requested: target,
                                current: revision,
                            })
                        } else {
                            if target > compacted {
                                delete_log(&mut log, compacted, target)?;
                                compacted = target;
                            }
                            Ok(compacted)
                        };
                        self.outcomes.push(Outcome::Compact(result));
                    }
                }
            }
            // Incremental compaction: a bounded number of the oldest entries per batch.
            let goal = revision.saturating_sub(self.retain);
            if goal > compacted {
                let upto = goal.min(compacted.saturating_add(self.compact_per_batch));
                delete_log(&mut log, compacted, upto)?;
                compacted = upto;
            }
            if revision != self.revision || compacted != self.compacted {
                let mut meta = txn.open_table(META).map_err(internal("open table meta"))?;
                meta.insert(META_REVISION, revision)
                    .map_err(internal("write meta"))?;
                meta.insert(META_COMPACTED, compacted)
                    .map_err(internal("write meta"))?;
            }
        }
        if revision == self.revision && compacted == self.compacted {
            // Nothing changed (every precondition failed): no need to fsync.
            txn.abort().map_err(internal("abort write transaction"))?;
            return Ok(Applied {
                revision,
                compacted,
                committed: false,
            });
        }
        txn.commit().map_err(internal("commit write transaction"))?;
        Ok(Applied {
            revision,
            compacted,
            committed: true,
        })
    }
}

/// Applies one write at `revision`. The outer error fails the whole batch (storage failure),
/// the inner one is this operation's own result (precondition failure).
fn apply_write(
    objects: &mut Objects<'_>,
    log: &mut Log<'_>,
    buf: &mut Vec<u8>,
    op: WriteOp,
    revision: Revision,
) -> StoreResult<StoreResult<WriteResult>> {
    match op {
        WriteOp::Create { key, value } => {
            if objects
                .get(key.as_str())
                .map_err(internal("read object"))?
                .is_some()
            {
                return Ok(Err(StoreError::AlreadyExists(key)));
            }
            encode_object(buf, revision, revision, &value);
            objects
                .insert(key.as_str(), buf.as_slice())
                .map_err(internal("write object"))?;
            encode_log(buf, EventKind::Create, &key, &value, None);
            log.insert(revision, buf.as_slice())
                .map_err(internal("write changelog"))?;
            Ok(Ok(WriteResult {
                revision,
                kv: KeyValue {
                    key,
                    value: Arc::from(value),
                    create_revision: revision,
                    mod_revision: revision,
                },
                prev: None,
            }))
        }
        WriteOp::Update {
            key,
            value,
            expected_revision,
        } => {
            let prev = match read_for_write(objects, &key, expected_revision)? {
                Ok(prev) => prev,
                Err(e) => return Ok(Err(e)),
            };
            encode_object(buf, prev.create_revision, revision, &value);
            objects
                .insert(key.as_str(), buf.as_slice())
                .map_err(internal("write object"))?;
            encode_log(buf, EventKind::Update, &key, &value, Some(&prev.value));
            log.insert(revision, buf.as_slice())
                .map_err(internal("write changelog"))?;
            Ok(Ok(WriteResult {
                revision,
                kv: KeyValue {
                    key,
                    value: Arc::from(value),
                    create_revision: prev.create_revision,
                    mod_revision: revision,
                },
                prev: Some(prev),
            }))
        }
        WriteOp::Delete {
            key,
            expected_revision,
        } => {
            let prev = match read_for_write(objects, &key, expected_revision)? {
                Ok(prev) => prev,
                Err(e) => return Ok(Err(e)),
            };
            objects
                .remove(key.as_str())
                .map_err(internal("delete object"))?;
            encode_log(buf, EventKind::Delete, &key, &prev.value, None);
            log.insert(revision, buf.as_slice())
                .map_err(internal("write changelog"))?;
            Ok(Ok(WriteResult {
                revision,
                kv: KeyValue {
                    key,
                    value: prev.value.clone(),
                    create_revision: prev.create_revision,
                    mod_revision: revision,
                },
                prev: Some(prev),
            }))
        }
    }
}

/// Reads the current value of `key` for an update or delete, checking the preconditions.
fn read_for_write(
    objects: &Objects<'_>,
    key: &str,
    expected_revision: Option<Revision>,
) -> StoreResult<StoreResult<KeyValue>> {
    let Some(guard) = objects.get(key).map_err(internal("read object"))? else {
        return Ok(Err(StoreError::NotFound(key.to_owned())));
    };
    let (create_revision, mod_revision, value) = decode_object_parts(key, guard.value())?;
    if let Some(expected) = expected_revision
        && expected != mod_revision
    {
        return Ok(Err(StoreError::Conflict {
            key: key.to_owned(),
            expected,
            current: mod_revision,
        }));
    }
    Ok(Ok(KeyValue {
        key: key.to_owned(),
        value: Arc::from(value),
        create_revision,
        mod_revision,
    }))
}

/// Deletes the log entries in `(after, upto]`.
fn delete_log(log: &mut Log<'_>, after: Revision, upto: Revision) -> StoreResult<()> {
    log.retain_in(after + 1..=upto, |_, _| false)
        .map_err(internal("compact changelog"))
}

fn event_of(written: &WriteResult, kind: EventKind) -> Event {
    Event {
        revision: written.revision,
        key: written.kv.key.clone(),
        kind,
        value: written.kv.value.clone(),
        prev_value: written.prev.as_ref().map(|prev| prev.value.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// Watches

struct Watch {
    /// Weak, so that a forgotten watch does not keep the database open.
    shared: Weak<Shared>,
    live: broadcast::Receiver<Arc<[Event]>>,
    prefix: Arc<str>,
    /// Every revision at or below this has been dealt with (delivered, filtered out, or before
    /// the watch's start).
    cursor: Revision,
    /// The next events come from the change log, not the live feed.
    replay: bool,
    pending: VecDeque<Event>,
    done: bool,
}

impl Watch {
    async fn next(mut self) -> Option<(StoreResult<Event>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.replay {
                match self.replay_chunk().await {
                    Ok(()) => continue,
                    Err(StoreError::Closed) => return None,
                    Err(error) => {
                        self.done = true;
                        return Some((Err(error), self));
                    }
                }
            }
            match self.live.recv().await {
                Ok(batch) => self.take_live(&batch),
                // Missed batches are in the log: they were committed before being published.
                Err(RecvError::Lagged(_)) => self.replay = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    async fn replay_chunk(&mut self) -> StoreResult<()> {
        let shared = self.shared.upgrade().ok_or(StoreError::Closed)?;
        let prefix = self.prefix.clone();
        let after = self.cursor;
        let chunk = shared.replay_chunk;
        let (events, last, finished) =
            tokio::task::spawn_blocking(move || shared.read_log(&prefix, after, chunk))
                .await
                .map_err(internal("watch replay task"))??;
        self.pending.extend(events);
        self.cursor = self.cursor.max(last);
        if finished {
            self.replay = false;
        }
        Ok(())
    }

    fn take_live(&mut self, batch: &[Event]) {
        let Some(first) = batch.first() else {
            return;
        };
        if first.revision > self.cursor + 1 {
            // A gap: what is missing is committed, so it is in the log.
            self.replay = true;
            return;
        }
        for event in batch {
            if event.revision <= self.cursor {
                continue;
            }
            self.cursor = event.revision;
            if event.key.starts_with(&*self.prefix) {
                self.pending.push_back(event.clone());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encodings

const KIND_CREATE: u8 = 0;
const KIND_UPDATE: u8 = 1;
const KIND_DELETE: u8 = 2;

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, bytes.get(i + 1..)?));
        }
    }
    None
}

/// `varint(mod_revision) varint(mod_revision - create_revision) value`
fn encode_object(
    buf: &mut Vec<u8>,
    create_revision: Revision,
    mod_revision: Revision,
    value: &[u8],
) {
    buf.clear();
    put_varint(buf, mod_revision);
    put_varint(buf, mod_revision.saturating_sub(create_revision));
    buf.extend_from_slice(value);
}

fn decode_object_parts<'a>(
    key: &str,
    bytes: &'a [u8],
) -> StoreResult<(Revision, Revision, &'a [u8])> {
    let corrupt = || StoreError::Internal(format!("corrupt object record for {key}"));
    let (mod_revision, rest) = get_varint(bytes).ok_or_else(corrupt)?;
    let (age, value) = get_varint(rest).ok_or_else(corrupt)?;
    let create_revision = mod_revision.checked_sub(age).ok_or_else(corrupt)?;
    Ok((create_revision, mod_revision, value))
}

fn decode_object(key: &str, bytes: &[u8]) -> StoreResult<KeyValue> {
    let (create_revision, mod_revision, value) = decode_object_parts(key, bytes)?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Arc::from(value),
        create_revision,
        mod_revision,
    })
}

/// `kind:u8 varint(key_len) key varint(value_len) value prev` (`prev` only for updates).
fn encode_log(buf: &mut Vec<u8>, kind: EventKind, key: &str, value: &[u8], prev: Option<&[u8]>) {
    buf.clear();
    buf.push(match kind {
        EventKind::Create => KIND_CREATE,
        EventKind::Update => KIND_UPDATE,
        EventKind::Delete => KIND_DELETE,
    });
    put_varint(buf, key.len() as u64);
    buf.extend_from_slice(key.as_bytes());
    put_varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
    if kind == EventKind::Update
        && let Some(prev) = prev
    {
        buf.extend_from_slice(prev);
    }
}

/// Decodes a log record, or returns `None` if its key is not under `prefix` (without copying
/// its values).
fn decode_log(revision: Revision, bytes: &[u8], prefix: &str) -> StoreResult<Option<Event>> {
    let corrupt = || StoreError::Internal(format!("corrupt change log record at {revision}"));
    let (&kind, rest) = bytes.split_first().ok_or_else(corrupt)?;
    let (key_len, rest) = get_varint(rest).ok_or_else(corrupt)?;
    let key_len = usize::try_from(key_len).map_err(|_| corrupt())?;
    let key = rest.get(..key_len).ok_or_else(corrupt)?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt())?;
    if !key.starts_with(prefix) {
        return Ok(None);
    }
    let rest = rest.get(key_len..).ok_or_else(corrupt)?;
    let (value_len, rest) = get_varint(rest).ok_or_else(corrupt)?;
    let value_len = usize::try_from(value_len).map_err(|_| corrupt())?;
    let value: Arc<[u8]> = Arc::from(rest.get(..value_len).ok_or_else(corrupt)?);
    let rest = rest.get(value_len..).ok_or_else(corrupt)?;
    let (kind, prev_value) = match kind {
        KIND_CREATE => (EventKind::Create, None),
        KIND_UPDATE => (EventKind::Update, Some(Arc::from(rest))),
        KIND_DELETE => (EventKind::Delete, Some(value.clone())),
        _ => return Err(corrupt()),
    };
    Ok(Some(Event {
        revision,
        key: key.to_owned(),
        kind,
        value,
        prev_value,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::redb::ReadableTableMetadata as _;
    use std::collections::HashSet;

    const WAIT: Duration = Duration::from_secs(30);

    fn open(dir: &tempfile::TempDir, config: RedbStoreConfig) -> Arc<RedbStore> {
        RedbStore::open(&dir.path().join("store.redb"), config).expect("open store")
    }

    fn create(key: &str, value: &str) -> WriteOp {
        WriteOp::Create {
            key: key.to_owned(),
            value: value.as_bytes().to_vec(),
        }
    }

    fn update(key: &str, value: &str, expected_revision: Option<Revision>) -> WriteOp {
        WriteOp::Update {
            key: key.to_owned(),
            value: value.as_bytes().to_vec(),
            expected_revision,
        }
    }

    fn delete(key: &str, expected_revision: Option<Revision>) -> WriteOp {
        WriteOp::Delete {
            key: key.to_owned(),
            expected_revision,
        }
    }

    fn bytes(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    fn log_len(store: &RedbStore) -> u64 {
        let txn = store.shared.db.begin_read().expect("read");
        let log = txn.open_table(LOG).expect("log");
        log.len().expect("len")
    }

    async fn next_event(stream: &mut WatchStream) -> Event {
        tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("watch timed out")
            .expect("watch ended")
            .expect("watch error")
    }

    #[tokio::test]
    async fn create_get_update_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        let key = "/registry/core/pods/default/a";

        assert_eq!(store.get(key).await, Ok(None));
        let created = store.write(create(key, "v1")).await.expect("create");
        assert_eq!(created.revision, 1);
        assert_eq!(created.prev, None);
        let expected_kv = KeyValue {
            key: key.to_owned(),
            value: bytes("v1"),
            create_revision: 1,
            mod_revision: 1,
        };
        assert_eq!(created.kv, expected_kv);
        assert_eq!(store.get(key).await, Ok(Some(expected_kv.clone())));

        assert_eq!(
            store.write(create(key, "again")).await,
            Err(StoreError::AlreadyExists(key.to_owned()))
        );

        // Update without a precondition.
        let updated = store.write(update(key, "v2", None)).await.expect("update");
        assert_eq!(updated.revision, 2);
        assert_eq!(updated.kv.value, bytes("v2"));
        assert_eq!(updated.kv.create_revision, 1);
        assert_eq!(updated.kv.mod_revision, 2);
        assert_eq!(updated.prev, Some(expected_kv));

        // Update with a stale and a current expected revision.
        assert_eq!(
            store.write(update(key, "v3", Some(1))).await,
            Err(StoreError::Conflict {
                key: key.to_owned(),
                expected: 1,
                current: 2
            })
        );
        let updated = store
            .write(update(key, "v3", Some(2)))
            .await
            .expect("update");
        assert_eq!(updated.revision, 3);
        let got = store.get(key).await.expect("get").expect("present");
        assert_eq!((got.create_revision, got.mod_revision), (1, 3));
        assert_eq!(got.value, bytes("v3"));

        assert_eq!(
            store.write(update("/registry/none", "x", None)).await,
            Err(StoreError::NotFound("/registry/none".to_owned()))
        );

        // Delete: stale precondition, then for real.
        assert_eq!(
            store.write(delete(key, Some(2))).await,
            Err(StoreError::Conflict {
                key: key.to_owned(),
                expected: 2,
                current: 3
            })
        );
        let deleted = store.write(delete(key, Some(3))).await.expect("delete");
        assert_eq!(deleted.revision, 4);
        assert_eq!(deleted.kv.value, bytes("v3"));
        assert_eq!(deleted.kv.mod_revision, 4);
        assert_eq!(deleted.prev.as_ref().map(|p| p.mod_revision), Some(3));
        assert_eq!(store.get(key).await, Ok(None));
        assert_eq!(
            store.write(delete(key, None)).await,
            Err(StoreError::NotFound(key.to_owned()))
        );

        // Re-creating starts a new incarnation.
        let again = store.write(create(key, "v5")).await.expect("recreate");
        assert_eq!(
            (
                again.revision,
                again.kv.create_revision,
                again.kv.mod_revision
            ),
            (5, 5, 5)
        );
        assert_eq!(store.current_revision(), 5);
    }

    #[tokio::test]
    async fn revisions_are_monotonic_and_failures_take_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        let mut last = store.current_revision();
        assert_eq!(last, 0);
        for i in 0..20 {
            let key = format!("/registry/k/{}", i % 5);
            let result = if i < 5 {
                store.write(create(&key, "x")).await
            } else {
                store.write(update(&key, &i.to_string(), None)).await
            };
            let rev = result.expect("write").revision;
            assert_eq!(rev, last + 1);
            last = rev;
            // A failing write takes no revision.
            assert!(store.write(create(&key, "dup")).await.is_err());
            assert_eq!(store.current_revision(), last);
        }
        let stats = store.stats();
        assert_eq!(stats.commits, 20, "failed-only batches must not commit");
    }

    #[tokio::test]
    async fn list_and_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        for name in ["c", "a", "e", "b", "d"] {
            store
                .write(create(&format!("/registry/pods/ns1/{name}"), name))
                .await
                .expect("create");
        }
        store
            .write(create("/registry/pods/ns10/x", "x"))
            .await
            .expect("create");
        store
            .write(create("/registry/pods/ns0/y", "y"))
            .await
            .expect("create");
        store
            .write(create("/registry/services/ns1/s", "s"))
            .await
            .expect("create");

        let keys = |r: &ListResult| -> Vec<String> {
            r.items
                .iter()
                .map(|kv| kv.key.rsplit('/').next().unwrap_or_default().to_owned())
                .collect()
        };

        let all = store
            .list("/registry/pods/ns1/", None, 0)
            .await
            .expect("list");
        assert_eq!(keys(&all), ["a", "b", "c", "d", "e"]);
        assert!(!all.more);
        assert_eq!(all.revision, 8);
        assert_eq!(all.items[0].value, bytes("a"));
        assert_eq!(all.items[0].mod_revision, 2);

        let page = store
            .list("/registry/pods/ns1/", None, 2)
            .await
            .expect("list");
        assert_eq!(keys(&page), ["a", "b"]);
        assert!(page.more);
        let page = store
            .list("/registry/pods/ns1/", Some("/registry/pods/ns1/b"), 2)
            .await
            .expect("list");
        assert_eq!(keys(&page), ["c", "d"]);
        assert!(page.more);
        let page = store
            .list("/registry/pods/ns1/", Some("/registry/pods/ns1/d"), 2)
            .await
            .expect("list");
        assert_eq!(keys(&page), ["e"]);
        assert!(!page.more, "exactly the last key: no more");
        let page = store
            .list("/registry/pods/ns1/", Some("/registry/pods/ns1/c"), 2)
            .await
            .expect("list");
        assert_eq!(keys(&page), ["d", "e"]);
        assert!(!page.more);
        // start_after before the prefix: from the start of the prefix.
        let page = store
            .list("/registry/pods/ns1/", Some("/registry/a"), 1)
            .await
            .expect("list");
        assert_eq!(keys(&page), ["a"]);
        // start_after past every key of the prefix.
        let page = store
            .list("/registry/pods/ns1/", Some("/registry/pods/ns1/z"), 0)
            .await
            .expect("list");
        assert!(page.items.is_empty() && !page.more);

        let pods = store.list("/registry/pods/", None, 0).await.expect("list");
        assert_eq!(pods.items.len(), 7);
        assert_eq!(store.count("/registry/pods/ns1/", None).await, Ok(5));
        assert_eq!(store.count("/registry/pods/", None).await, Ok(7));
        assert_eq!(store.count("/registry/", None).await, Ok(8));
        assert_eq!(store.count("/registry/nodes/", None).await, Ok(0));
        // Counting after a key: what a paginated list has left.
        let page = store.list("/registry/pods/", None, 3).await.unwrap();
        let last = page.items.last().unwrap().key.clone();
        assert_eq!(store.count("/registry/pods/", Some(&last)).await, Ok(4));
        let none = store.list("/registry/nodes/", None, 0).await.expect("list");
        assert!(none.items.is_empty());
        assert_eq!(none.revision, 8);
    }

    #[tokio::test]
    async fn reopen_keeps_data_and_revisions() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = open(&dir, RedbStoreConfig::default());
            store.write(create("/registry/a", "1")).await.expect("w");
            store.write(create("/registry/b", "2")).await.expect("w");
            store
                .write(update("/registry/a", "3", Some(1)))
                .await
                .expect("w");
            store.write(delete("/registry/b", None)).await.expect("w");
            assert_eq!(store.compact(2).await, Ok(2));
            assert_eq!(store.current_revision(), 4);
        }
        // Dropping the store closed the file: it can be opened again at once.
        let store = open(&dir, RedbStoreConfig::default());
        assert_eq!(store.current_revision(), 4);
        assert_eq!(store.compacted_revision(), 2);
        let a = store.get("/registry/a").await.expect("get").expect("a");
        assert_eq!((a.create_revision, a.mod_revision), (1, 3));
        assert_eq!(a.value, bytes("3"));
        assert_eq!(store.get("/registry/b").await, Ok(None));
        let next = store.write(create("/registry/c", "x")).await.expect("w");
        assert_eq!(next.revision, 5);
        // The log survived too: replay from 2.
        let mut watch = store.watch("/registry/", 2).expect("watch");
        let revs: Vec<(Revision, EventKind)> = [
            next_event(&mut watch).await,
            next_event(&mut watch).await,
            next_event(&mut watch).await,
        ]
        .iter()
        .map(|e| (e.revision, e.kind))
        .collect();
        assert_eq!(
            revs,
            [
                (3, EventKind::Update),
                (4, EventKind::Delete),
                (5, EventKind::Create)
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_are_batched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        let tasks = 64;
        let per_task = 20;
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..per_task {
                    let key = format!("/registry/c/{t}/{i}");
                    revs.push(
                        store
                            .write(create(&key, "v"))
                            .await
                            .expect("write")
                            .revision,
                    );
                }
                revs
            }));
        }
        let mut all = Vec::new();
        for handle in handles {
            let revs = handle.await.expect("task");
            assert!(revs.windows(2).all(|w| w[0] < w[1]), "per-task order");
            all.extend(revs);
        }
        all.sort_unstable();
        let n = (tasks * per_task) as u64;
        assert_eq!(all, (1..=n).collect::<Vec<_>>(), "distinct, contiguous");
        assert_eq!(store.current_revision(), n);
        assert_eq!(store.count("/registry/c/", None).await, Ok(n));
        let stats = store.stats();
        assert_eq!(stats.committed_requests, n);
        assert!(stats.largest_batch > 1, "no batching: {stats:?}");
        assert!(stats.commits < n, "one commit per write: {stats:?}");
    }

    #[tokio::test]
    async fn same_batch_ops_see_each_other() {
        // Several operations on one key queued together (usually one batch, but the outcome
        // must be the same either way): each precondition is checked against the operations
        // before it, and a failing one fails alone.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        let key = "/registry/same";
        let (a, b, c, d) = tokio::join!(
            store.write(create(key, "1")),
            store.write(create(key, "2")),
            store.write(update(key, "3", Some(1))),
            store.write(delete(key, Some(3))),
        );
        // `join!` polls in order, so the requests are queued in this order.
        assert_eq!(a.expect("a").revision, 1);
        assert_eq!(b, Err(StoreError::AlreadyExists(key.to_owned())));
        assert_eq!(c.expect("c").revision, 2);
        assert_eq!(
            d,
            Err(StoreError::Conflict {
                key: key.to_owned(),
                expected: 3,
                current: 2
            })
        );
        assert_eq!(store.current_revision(), 2);
    }

    #[tokio::test]
    async fn watch_from_now_sees_only_new_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        store
            .write(create("/registry/a/1", "old"))
            .await
            .expect("w");
        store
            .write(create("/registry/a/2", "old"))
            .await
            .expect("w");
        let mut watch = store.watch("/registry/a/", 0).expect("watch");
        store
            .write(update("/registry/a/1", "new", None))
            .await
            .expect("w");
        store.write(delete("/registry/a/2", None)).await.expect("w");
        store.write(create("/registry/a/3", "c")).await.expect("w");

        let e = next_event(&mut watch).await;
        assert_eq!(
            e,
            Event {
                revision: 3,
                key: "/registry/a/1".to_owned(),
                kind: EventKind::Update,
                value: bytes("new"),
                prev_value: Some(bytes("old")),
            }
        );
        let e = next_event(&mut watch).await;
        assert_eq!(
            e,
            Event {
                revision: 4,
                key: "/registry/a/2".to_owned(),
                kind: EventKind::Delete,
                value: bytes("old"),
                prev_value: Some(bytes("old")),
            }
        );
        let e = next_event(&mut watch).await;
        assert_eq!(
            (e.revision, e.kind, e.prev_value),
            (5, EventKind::Create, None)
        );
        // Nothing else is pending.
        let idle = tokio::time::timeout(Duration::from_millis(100), watch.next()).await;
        assert!(idle.is_err(), "unexpected event {idle:?}");
    }

    #[tokio::test]
    async fn replayed_events_match_live_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        let mut live = store.watch("/registry/", 0).expect("watch");
        store.write(create("/registry/x", "1")).await.expect("w");
        store
            .write(update("/registry/x", "2", None))
            .await
            .expect("w");
        store.write(delete("/registry/x", None)).await.expect("w");
        let mut replay = store.watch("/registry/", 1).expect("watch");
        let first_live = next_event(&mut live).await;
        assert_eq!(first_live.revision, 1);
        for _ in 2..=3 {
            assert_eq!(next_event(&mut live).await, next_event(&mut replay).await);
        }
    }

    #[tokio::test]
    async fn watch_filters_by_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        let mut pods = store.watch("/registry/pods/", 0).expect("watch");
        for i in 0..10 {
            let prefix = if i % 2 == 0 { "pods" } else { "podsx" };
            store
                .write(create(&format!("/registry/{prefix}/{i}"), "v"))
                .await
                .expect("w");
        }
        // Replay applies the same filter.
        let mut replayed = store.watch("/registry/pods/", 1).expect("watch");
        for expected in [1, 3, 5, 7, 9] {
            let e = next_event(&mut pods).await;
            assert_eq!(e.revision, expected);
            assert!(e.key.starts_with("/registry/pods/"));
            if expected > 1 {
                assert_eq!(next_event(&mut replayed).await.revision, expected);
            }
        }
        let idle = tokio::time::timeout(Duration::from_millis(100), pods.next()).await;
        assert!(idle.is_err(), "unexpected event {idle:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_replays_then_goes_live_without_gaps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RedbStoreConfig {
            watch_replay_chunk: 37,
            ..RedbStoreConfig::default()
        };
        let store = open(&dir, config);
        for i in 0..300 {
            store
                .write(create(&format!("/registry/w/{i}"), "v"))
                .await
                .expect("w");
        }
        let total = 1_500u64;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                // Concurrent writers, so that batches hold several events.
                let mut tasks = Vec::new();
                for t in 0..8 {
                    let store = store.clone();
                    tasks.push(tokio::spawn(async move {
                        for i in 0..150 {
                            store
                                .write(create(&format!("/registry/w/t{t}/{i}"), "v"))
                                .await
                                .expect("w");
                        }
                    }));
                }
                for task in tasks {
                    task.await.expect("task");
                }
            })
        };
        // Start watching while the writers run.
        tokio::task::yield_now().await;
        let mut watch = store.watch("/registry/w/", 100).expect("watch");
        let mut expected = 101;
        while expected <= total {
            let e = next_event(&mut watch).await;
            assert_eq!(e.revision, expected, "gap or duplicate");
            expected += 1;
        }
        writer.await.expect("writer");
        let idle = tokio::time::timeout(Duration::from_millis(100), watch.next()).await;
        assert!(idle.is_err(), "unexpected event {idle:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lagging_watch_recovers_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RedbStoreConfig {
            watch_buffer_batches: 1,
            watch_replay_chunk: 10,
            ..RedbStoreConfig::default()
        };
        let store = open(&dir, config);
        let mut watch = store.watch("/registry/", 0).expect("watch");
        // The watch is not polled while these commit one by one: it lags.
        for i in 0..50 {
            store
                .write(create(&format!("/registry/l/{i}"), "v"))
                .await
                .expect("w");
        }
        // Then a slow consumer races a concurrent writer.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 50..300 {
                    store
                        .write(create(&format!("/registry/l/{i}"), "v"))
                        .await
                        .expect("w");
                }
            })
        };
        for expected in 1..=300 {
            let e = next_event(&mut watch).await;
            assert_eq!(e.revision, expected, "gap or duplicate");
            if expected % 25 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        writer.await.expect("writer");
    }

    #[tokio::test]
    async fn watch_from_the_future_starts_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        store.write(create("/registry/f/0", "v")).await.expect("w");
        let mut watch = store.watch("/registry/f/", 5).expect("watch");
        for i in 1..10 {
            store
                .write(create(&format!("/registry/f/{i}"), "v"))
                .await
                .expect("w");
        }
        assert_eq!(next_event(&mut watch).await.revision, 6);
        assert_eq!(next_event(&mut watch).await.revision, 7);
    }

    #[tokio::test]
    async fn compaction_bounds_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RedbStoreConfig {
            retain_revisions: 10,
            compact_per_batch: 3,
            ..RedbStoreConfig::default()
        };
        let store = open(&dir, config);
        for i in 0..100 {
            store
                .write(create(&format!("/registry/k/{i}"), "v"))
                .await
                .expect("w");
            assert!(log_len(&store) <= 10);
        }
        assert_eq!(store.compacted_revision(), 90);
        assert_eq!(log_len(&store), 10);

        assert_eq!(
            store.watch("/registry/", 89).err(),
            Some(StoreError::Compacted {
                requested: 89,
                oldest: 90
            })
        );
        let mut watch = store.watch("/registry/", 90).expect("watch at compacted");
        assert_eq!(next_event(&mut watch).await.revision, 91);

        // Forced compaction.
        assert_eq!(store.compact(95).await, Ok(95));
        assert_eq!(store.compact(93).await, Ok(95), "never goes back");
        assert_eq!(store.compacted_revision(), 95);
        assert_eq!(log_len(&store), 5);
        assert!(matches!(
            store.watch("/registry/", 94),
            Err(StoreError::Compacted { .. })
        ));
        assert_eq!(
            store.compact(101).await,
            Err(StoreError::FutureRevision {
                requested: 101,
                current: 100
            })
        );
        let mut watch = store.watch("/registry/", 95).expect("watch");
        assert_eq!(next_event(&mut watch).await.revision, 96);
        drop(watch);
        drop(store);

        // Incremental: with a smaller retention, each batch deletes at most 3 entries.
        let config = RedbStoreConfig {
            retain_revisions: 2,
            compact_per_batch: 3,
            ..RedbStoreConfig::default()
        };
        let store = open(&dir, config);
        assert_eq!(store.compacted_revision(), 95);
        store.write(create("/registry/k/x", "v")).await.expect("w");
        assert_eq!(store.compacted_revision(), 98);
        assert_eq!(log_len(&store), 3);
        store.write(create("/registry/k/y", "v")).await.expect("w");
        assert_eq!(store.compacted_revision(), 100);
        assert_eq!(log_len(&store), 2);
    }

    #[tokio::test]
    async fn lagging_watch_past_compaction_gets_compacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RedbStoreConfig {
            watch_buffer_batches: 1,
            ..RedbStoreConfig::default()
        };
        let store = open(&dir, config);
        store.write(create("/registry/a", "v")).await.expect("w");
        let mut watch = store.watch("/registry/", 0).expect("watch");
        for i in 0..20 {
            store
                .write(create(&format!("/registry/b/{i}"), "v"))
                .await
                .expect("w");
        }
        assert_eq!(store.compact(15).await, Ok(15));
        let item = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("timed out");
        assert_eq!(
            item,
            Some(Err(StoreError::Compacted {
                requested: 1,
                oldest: 15
            }))
        );
        let end = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("timed out");
        assert_eq!(end, None, "the stream ends after Compacted");
    }

    #[tokio::test]
    async fn dropping_the_store_ends_watches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir, RedbStoreConfig::default());
        let mut watch = store.watch("/registry/", 0).expect("watch");
        store.write(create("/registry/a", "v")).await.expect("w");
        drop(store);
        assert_eq!(next_event(&mut watch).await.revision, 1);
        let end = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("timed out");
        assert_eq!(end, None);
        // The file is closed even though a watch was alive when the store was dropped.
        let store = open(&dir, RedbStoreConfig::default());
        assert_eq!(store.current_revision(), 1);
    }

    #[test]
    fn encodings_round_trip_and_reject_garbage() {
        let mut buf = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            buf.clear();
            put_varint(&mut buf, v);
            buf.push(7);
            assert_eq!(get_varint(&buf), Some((v, &[7u8][..])));
        }
        encode_object(&mut buf, 5, 9, b"value");
        let kv = decode_object("k", &buf).expect("decode");
        assert_eq!((kv.create_revision, kv.mod_revision), (5, 9));
        assert_eq!(kv.value, bytes("value"));
        encode_object(&mut buf, 7, 7, b"");
        assert_eq!(buf.len(), 2);

        encode_log(&mut buf, EventKind::Update, "/a/b", b"new", Some(b"old"));
        let e = decode_log(4, &buf, "/a/").expect("decode").expect("match");
        assert_eq!(
            (e.revision, e.kind, e.key.as_str()),
            (4, EventKind::Update, "/a/b")
        );
        assert_eq!((e.value, e.prev_value), (bytes("new"), Some(bytes("old"))));
        assert_eq!(decode_log(4, &buf, "/b/"), Ok(None));
        encode_log(&mut buf, EventKind::Delete, "/a/b", b"old", None);
        let e = decode_log(4, &buf, "").expect("decode").expect("match");
        assert_eq!(
            (e.kind, e.prev_value),
            (EventKind::Delete, Some(bytes("old")))
        );
        encode_log(&mut buf, EventKind::Create, "/a/b", b"v", None);
        let e = decode_log(4, &buf, "").expect("decode").expect("match");
        assert_eq!((e.kind, e.prev_value), (EventKind::Create, None));

        // Truncated or garbled records are errors, not panics.
        for len in 0..buf.len() {
            let _ = decode_log(1, &buf[..len], "");
        }
        assert!(decode_log(1, &[9, 0, 0], "").is_err());
        assert!(decode_log(1, &[0, 50, b'a'], "").is_err());
        assert!(decode_object("k", &[0xff; 11]).is_err());
        assert!(decode_object("k", &[1, 5]).is_err(), "create after mod");
    }

    /// The child half of `acknowledged_writes_survive_sigkill`: does nothing unless run by it.
    #[test]
    fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_ENV) else {
            return;
        };
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let store = RedbStore::open(
                &std::path::PathBuf::from(dir).join("store.redb"),
                RedbStoreConfig::default(),
            )
            .expect("open");
            let mut tasks = Vec::new();
            for t in 0..8 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/registry/crash/{t}/{i}");
                        let rev = store.write(create(&key, "v")).await.expect("w").revision;
                        use std::io::Write as _;
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "ACK {rev} {key}");
                        let _ = out.flush();
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        });
    }

    const CRASH_ENV: &str = "TUGBOAT_REDB_CRASH_CHILD_DIR";

    #[test]
    fn acknowledged_writes_survive_sigkill() {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let module = module_path!();
        let module = module.split_once("::").map_or(module, |(_, rest)| rest);
        let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args([
                &format!("{module}::crash_child"),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_ENV, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut acked = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("read");
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (rev, key) = rest.split_once(' ').expect("ack line");
                acked.push((rev.parse::<Revision>().expect("rev"), key.to_owned()));
                if acked.len() == 500 {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        assert_eq!(acked.len(), 500, "child stopped early");

        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = open(&dir, RedbStoreConfig::default());
            let current = store.current_revision();
            for (rev, key) in &acked {
                let kv = store.get(key).await.expect("get");
                assert_eq!(kv.map(|kv| kv.mod_revision), Some(*rev), "{key}");
            }
            let max_acked = acked.iter().map(|(rev, _)| *rev).max().unwrap_or(0);
            assert!(current >= max_acked);
            // Every revision up to `current` is a create of one key: no holes, no reuse.
            let all = store.list("/registry/crash/", None, 0).await.expect("list");
            assert_eq!(all.revision, current);
            let mut revs: Vec<Revision> = all.items.iter().map(|kv| kv.mod_revision).collect();
            revs.sort_unstable();
            assert_eq!(revs, (1..=current).collect::<Vec<_>>());
            let keys: HashSet<&str> = all.items.iter().map(|kv| kv.key.as_str()).collect();
            assert_eq!(keys.len(), all.items.len());
            // The counter continues.
            let next = store
                .write(create("/registry/after", "v"))
                .await
                .expect("w");
            assert_eq!(next.revision, current + 1);
        });
    }
}
