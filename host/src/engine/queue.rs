//! The work queue of a controller, with client-go's workqueue semantics:
//!
//! - **dedupe**: a key that is already queued is not queued twice (the `dirty` set);
//! - **one worker per key**: a key being processed is in the `processing` set and is not
//!   handed out again until [`WorkQueue::done`]; if it was added meanwhile, `done` queues it
//!   again, so the change that arrived during processing is processed afterwards;
//! - **delays**: [`WorkQueue::add_after`] holds a key until its time (the earliest time wins
//!   when a key is added after two delays);
//! - **per-key exponential backoff**: [`WorkQueue::add_rate_limited`] delays a key by
//!   `base · 2^failures` (5 ms, 10 ms, … up to 1000 s by default) until
//!   [`WorkQueue::forget`] resets it.
//!
//! Time is tokio's, so tests can pause it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The per-key exponential backoff of [`WorkQueue::add_rate_limited`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// client-go's default controller rate limiter: 5 ms doubling up to 1000 s.
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl Backoff {
    /// The delay after `failures` earlier failures (`base · 2^failures`, capped).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.checked_pow(failures).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

struct State<K> {
    /// Ready keys, in order.
    queue: VecDeque<K>,
    /// Keys that need processing (queued, or added while being processed).
    dirty: HashSet<K>,
    /// Keys a worker holds.
    processing: HashSet<K>,
    /// Delayed keys by due time (the counter keeps equal times apart).
    waiting: BTreeMap<(Instant, u64), K>,
    waiting_at: HashMap<K, (Instant, u64)>,
    seq: u64,
    failures: HashMap<K, u32>,
    shutting_down: bool,
}

impl<K: Clone + Eq + Hash> State<K> {
    fn add(&mut self, key: K) {
        if self.shutting_down || self.dirty.contains(&key) {
            return;
        }
        self.dirty.insert(key.clone());
        if !self.processing.contains(&key) {
            self.queue.push_back(key);
        }
    }

    fn add_at(&mut self, key: K, at: Instant) {
        if self.shutting_down {
            return;
        }
        if let Some(&(existing, seq)) = self.waiting_at.get(&key) {
            if existing <= at {
                return;
            }
            self.waiting.remove(&(existing, seq));
        }
        self.seq += 1;
        let slot = (at, self.seq);
        self.waiting.insert(slot, key.clone());
        self.waiting_at.insert(key, slot);
    }

    /// Move the delayed keys that are due into the queue.
    fn promote(&mut self, now: Instant) {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.waiting_at.remove(&key);
            self.add(key);
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.waiting.keys().next().map(|(at, _)| *at)
    }
}

/// A work queue of keys (see the [module](self) docs). Share it as `Arc<WorkQueue<K>>`.
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    backoff: Backoff,
}

impl<K: Clone + Eq + Hash + Send> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new(Backoff::default())
    }
}

impl<K: Clone + Eq + Hash + Send> WorkQueue<K> {
    /// An empty queue with this backoff for [`WorkQueue::add_rate_limited`].
    pub fn new(backoff: Backoff) -> Self {
        WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                waiting: BTreeMap::new(),
                waiting_at: HashMap::new(),
                seq: 0,
                failures: HashMap::new(),
                shutting_down: false,
            }),
            notify: Notify::new(),
            backoff,
        }
    }

    /// Queue `key` now (no-op if it is already queued, or after [`WorkQueue::shutdown`]).
    pub fn add(&self, key: K) {
        self.state.lock().add(key);
        self.notify.notify_waiters();
    }

    /// Queue `key` after `delay` (now if zero).
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        self.state.lock().add_at(key, Instant::now() + delay);
        self.notify.notify_waiters();
    }

    /// Queue `key` after its backoff, and count one more failure of it.
    pub fn add_rate_limited(&self, key: K) {
        let delay = {
            let mut s = self.state.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            let delay = self.backoff.delay(*n);
            *n = n.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
    }

    /// Reset the backoff of `key` (it succeeded).
    pub fn forget(&self, key: &K) {
        self.state.lock().failures.remove(key);
    }

    /// How many times `key` has been requeued with backoff since the last `forget`.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.state.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to process, waiting for one; `None` once the queue is shut down. The
    /// caller must call [`WorkQueue::done`] with it when finished.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut s = self.state.lock();
                if s.shutting_down {
                    return None;
                }
                s.promote(Instant::now());
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    return Some(key);
                }
                s.next_due()
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The next ready key without waiting (see [`WorkQueue::get`]).
    pub fn try_get(&self) -> Option<K> {
        let mut s = self.state.lock();
        if s.shutting_down {
            return None;
        }
        s.promote(Instant::now());
        let key = s.queue.pop_front()?;
        s.dirty.remove(&key);
        s.processing.insert(key.clone());
        Some(key)
    }

    /// Finished processing `key`: if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &K) {
        let requeued = {
            let mut s = self.state.lock();
            s.processing.remove(key);
            if s.dirty.contains(key) && !s.shutting_down {
                s.queue.push_back(key.clone());
                true
            } else {
                false
            }
        };
        if requeued {
            self.notify.notify_waiters();
        }
    }

    /// Stop: `get` returns `None` from now on (also to the workers waiting in it) and adds
    /// are ignored.
    pub fn shutdown(&self) {
        self.state.lock().shutting_down = true;
        self.notify.notify_waiters();
    }

    /// Whether [`WorkQueue::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.state.lock().shutting_down
    }

    /// Keys ready to be processed (the queue depth).
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Whether no key is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys waiting for their delay or backoff.
    pub fn waiting_len(&self) -> usize {
        self.state.lock().waiting.len()
    }

    /// Keys workers hold.
    pub fn processing_len(&self) -> usize {
        self.state.lock().processing.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn dedupes_and_keeps_order() {
        let q: WorkQueue<&str> = WorkQueue::default();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.try_get(), Some("a"));
        assert_eq!(q.try_get(), Some("b"));
        assert_eq!(q.try_get(), None);
    }

    #[test]
    fn a_key_is_never_handed_out_twice_and_is_reprocessed_if_added_meanwhile() {
        let q: WorkQueue<&str> = WorkQueue::default();
        q.add("a");
        assert_eq!(q.try_get(), Some("a"));
        // Added while being processed: not handed to another worker...
        q.add("a");
        q.add("a");
        assert_eq!(q.try_get(), None);
        assert_eq!(q.processing_len(), 1);
        // ...but processed again (once) after done.
        q.done(&"a");
        assert_eq!(q.try_get(), Some("a"));
        q.done(&"a");
        assert_eq!(q.try_get(), None);
        assert_eq!(q.processing_len(), 0);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::from_millis(5));
        assert_eq!(b.delay(1), Duration::from_millis(10));
        assert_eq!(b.delay(10), Duration::from_millis(5 * 1024));
        assert_eq!(b.delay(30), Duration::from_secs(1000));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1000));
    }

    /// `elapsed` is at least `want` (timers never fire early) and not much more.
    fn took(start: Instant, want: u64) {
        let e = start.elapsed();
        let want = Duration::from_millis(want);
        assert!(
            e >= want && e < want + Duration::from_millis(500),
            "{e:?} for {want:?}"
        );
    }

    #[tokio::test]
    async fn add_after_and_rate_limited_wait_their_turn() {
        let q: Arc<WorkQueue<&str>> = Arc::new(WorkQueue::new(Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_secs(1),
        }));
        let start = Instant::now();
        q.add_after("late", Duration::from_millis(200));
        q.add_after("soon", Duration::from_millis(50));
        // An earlier time wins over a later one for the same key.
        q.add_after("late", Duration::from_millis(400));
        assert_eq!(q.try_get(), None);
        assert_eq!(q.waiting_len(), 2);
        assert_eq!(q.get().await, Some("soon"));
        took(start, 50);
        assert_eq!(q.get().await, Some("late"));
        took(start, 200);
        q.done(&"soon");
        q.done(&"late");

        // Backoff: 20 ms, 40 ms, 80 ms; forget resets it.
        for expect in [20, 40, 80] {
            let t = Instant::now();
            q.add_rate_limited("k");
            assert_eq!(q.get().await, Some("k"));
            took(t, expect);
            q.done(&"k");
        }
        assert_eq!(q.num_requeues(&"k"), 3);
        q.forget(&"k");
        assert_eq!(q.num_requeues(&"k"), 0);
        let t = Instant::now();
        q.add_rate_limited("k");
        assert_eq!(q.get().await, Some("k"));
        took(t, 20);
        q.done(&"k");

        // A delayed key that is also added now is processed now, and again when its delay
        // ends.
        let t = Instant::now();
        q.add_after("x", Duration::from_millis(100));
        q.add("x");
        assert_eq!(q.get().await, Some("x"));
        assert!(t.elapsed() < Duration::from_millis(100));
        q.done(&"x");
        assert_eq!(q.get().await, Some("x"));
        took(t, 100);
        q.done(&"x");
    }

    #[tokio::test]
    async fn waiting_workers_wake_on_add_and_stop_on_shutdown() {
        let q: Arc<WorkQueue<u32>> = Arc::new(WorkQueue::default());
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move {
                    let mut got = vec![];
                    while let Some(k) = q.get().await {
                        got.push(k);
                        q.done(&k);
                    }
                    got
                })
            })
            .collect();
        for i in 0..100 {
            q.add(i);
        }
        while !q.is_empty() || q.processing_len() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        q.shutdown();
        q.add(1000);
        let mut all = vec![];
        for w in workers {
            all.extend(w.await.unwrap());
        }
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(q.get().await, None);
    }
}
