//! The store: a revisioned key-value map with a change log, the way the API server sees etcd.
//!
//! Keys look like etcd's (`/registry/<group>/<resource>/<namespace>/<name>`), values are the
//! serialized objects (JSON bytes). Every successful write gets the next value of one global,
//! monotonically increasing revision; the API layer exposes it as `metadata.resourceVersion`.
//! A change log of revisions feeds watches; it is compacted so that it stays bounded, and a
//! watch from a revision older than the log gets [`StoreError::Compacted`] (HTTP 410).
//!
//! [`Store`] is the seam a distributed backend (etcd) plugs into; [`redb::RedbStore`] is the
//! embedded default.

pub mod redb;

use std::sync::Arc;

use futures::stream::BoxStream;

/// A revision of the store (etcd's `mod_revision`). 0 means "none".
pub type Revision = u64;

/// One stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Arc<[u8]>,
    /// Revision at which the key was created (the current incarnation of it).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

/// One change, as the change log records it and as watches deliver it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The revision this change was written at.
    pub revision: Revision,
    pub key: String,
    pub kind: EventKind,
    /// The value after the change (for `Delete`, the value it had when deleted).
    pub value: Arc<[u8]>,
    /// The value before the change, `None` for a create.
    pub prev_value: Option<Arc<[u8]>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Update,
    Delete,
}

/// One write operation, with its precondition.
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Create `key`; fails with `AlreadyExists` if it exists.
    Create { key: String, value: Vec<u8> },
    /// Replace `key`; fails with `NotFound` if missing, and with `Conflict` if
    /// `expected_revision` is `Some(r)` and the key's mod_revision is not `r`.
    Update {
        key: String,
        value: Vec<u8>,
        expected_revision: Option<Revision>,
    },
    /// Delete `key`; same preconditions as `Update`.
    Delete {
        key: String,
        expected_revision: Option<Revision>,
    },
}

/// What a successful write returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteResult {
    /// The revision the write was committed at.
    pub revision: Revision,
    /// The key's value after the write (for a delete, the value it had).
    pub kv: KeyValue,
    /// The value before the write (for an update or delete).
    pub prev: Option<KeyValue>,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("key {0} not found")]
    NotFound(String),
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The precondition failed: the key is now at `current` revision.
    #[error("key {key} was modified (revision {current}, expected {expected})")]
    Conflict {
        key: String,
        expected: Revision,
        current: Revision,
    },
    /// The requested revision has been compacted; the oldest still available is `oldest`.
    #[error("revision {requested} has been compacted (oldest available {oldest})")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// The requested revision is in the future.
    #[error("revision {requested} is newer than the store's current revision {current}")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    #[error("store is closed")]
    Closed,
    #[error("storage error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A page of a range read.
#[derive(Clone, Debug, Default)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The store revision the read was served at (a consistent snapshot).
    pub revision: Revision,
    /// True if `limit` cut the page short and more keys follow.
    pub more: bool,
}

/// Watch stream items. `Err(Compacted)` can arrive mid-stream if the watcher fell so far
/// behind that the log no longer holds what it has not seen; the stream ends after it.
pub type WatchStream = BoxStream<'static, StoreResult<Event>>;

/// The store contract. All methods are cheap to call from async code: implementations do
/// their blocking work on threads of their own.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read one key at the current revision.
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>>;

    /// Read the keys that start with `prefix`, in key order, starting strictly after
    /// `start_after` if given, at most `limit` of them (0 = no limit), from one snapshot.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> StoreResult<ListResult>;

    /// Count the keys under `prefix` (strictly after `start_after` if given).
    async fn count(&self, prefix: &str, start_after: Option<&str>) -> StoreResult<u64>;

    /// Apply one write. Durable (fsynced) before it returns Ok.
    async fn write(&self, op: WriteOp) -> StoreResult<WriteResult>;

    /// Watch keys under `prefix` for changes with revision > `after`. `after == 0` means
    /// "from now". Events arrive in revision order, without gaps or duplicates.
    fn watch(&self, prefix: &str, after: Revision) -> StoreResult<WatchStream>;

    /// The newest committed revision.
    fn current_revision(&self) -> Revision;

    /// The oldest revision a watch can still start after (`after >= this`).
    fn compacted_revision(&self) -> Revision;
}
