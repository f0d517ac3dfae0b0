//! The scheduling queue of one profile, as kube-scheduler's `PriorityQueue`: an active
//! queue (highest priority first, then oldest), a backoff queue (pods that failed wait
//! 1 s, 2 s, … up to 10 s), and the unschedulable pods, which go back to active (or
//! backoff) when something that could make them fit happens: a node added or changed, a
//! placed pod gone. A pod that fails while such an event happened during its attempt goes
//! to backoff rather than unschedulable, so the event is not lost (`moveRequestCycle`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// A pod in the queue: `(namespace, name, uid)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    /// Popped, being decided or bound.
    InFlight,
}

struct Entry {
    key: PodKey,
    priority: i32,
    /// Arrival order (FIFO among equal priorities).
    seq: u64,
    attempts: u32,
    backoff_until: Instant,
    since: Instant,
    at: Where,
    /// The move cycle when it was popped.
    popped_cycle: u64,
    /// Decided alone, not in a batch (it was in a batch that made the plugin fail).
    alone: bool,
}

/// See the [module](self) docs.
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    /// `(priority, Reverse(seq), uid)`; stale items (moved or removed) are skipped.
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    /// Incremented by every move request (cluster event).
    move_cycle: u64,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// How long a pod stays unschedulable without any event before it is retried.
    max_unschedulable: Duration,
}

impl Default for SchedulingQueue {
    fn default() -> Self {
        SchedulingQueue::new(
            Duration::from_secs(1),
            Duration::from_secs(10),
            Duration::from_secs(300),
        )
    }
}

impl SchedulingQueue {
    pub fn new(initial_backoff: Duration, max_backoff: Duration, max_unsched: Duration) -> Self {
        SchedulingQueue {
            entries: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            seq: 0,
            move_cycle: 0,
            initial_backoff,
            max_backoff,
            max_unschedulable: max_unsched,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A pending pod seen (added or changed). A new pod goes to active; an unschedulable
    /// one that changed is retried (through backoff if it is still backing off); others
    /// stay where they are.
    pub fn add(&mut self, key: PodKey, priority: i32, now: Instant) {
        let uid = key.uid.clone();
        match self.entries.get_mut(&uid) {
            None => {
                let seq = self.next_seq();
                self.entries.insert(
                    uid.clone(),
                    Entry {
                        key,
                        priority,
                        seq,
                        attempts: 0,
                        backoff_until: now,
                        since: now,
                        at: Where::Active,
                        popped_cycle: 0,
                        alone: false,
                    },
                );
                self.active.push((priority, Reverse(seq), uid));
            }
            Some(e) if e.at == Where::Unschedulable => {
                e.priority = priority;
                self.requeue(&uid, now);
            }
            Some(e) => e.priority = priority,
        }
    }

    /// Forget a pod (deleted, bound, or no longer pending).
    pub fn remove(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// Whether the queue knows the pod.
    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// Moves an entry to active, or to backoff while it is backing off.
    fn requeue(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if e.backoff_until > now {
            e.at = Where::Backoff;
            let (until, seq) = (e.backoff_until, e.seq);
            self.backoff.push(Reverse((until, seq, uid.to_string())));
        } else {
            e.at = Where::Active;
            let (p, seq) = (e.priority, e.seq);
            self.active.push((p, Reverse(seq), uid.to_string()));
        }
    }

    /// Backoff pods whose time has come go to active; unschedulable pods that waited too
    /// long are retried. Returns when the next backoff ends, if any.
    pub fn flush(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((until, _, _))) = self.backoff.peek() {
            if *until > now {
                break;
            }
            let Some(Reverse((_, _, uid))) = self.backoff.pop() else {
                break;
            };
            if let Some(e) = self.entries.get_mut(&uid)
                && e.at == Where::Backoff
            {
                e.at = Where::Active;
                let (p, seq) = (e.priority, e.seq);
                self.active.push((p, Reverse(seq), uid));
            }
        }
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.at == Where::Unschedulable
                    && now.duration_since(e.since) >= self.max_unschedulable
            })
            .map(|(u, _)| u.clone())
            .collect();
        for uid in stale {
            self.requeue(&uid, now);
        }
        self.backoff.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Up to `max` pods from active, highest priority first; they are in flight until
    /// [`SchedulingQueue::done`], [`SchedulingQueue::unschedulable`] or
    /// [`SchedulingQueue::retry`].
    /// A pod marked to be decided alone ([`SchedulingQueue::retry_alone`]) comes in a batch
    /// of its own.
    pub fn pop(&mut self, max: usize) -> Vec<PodKey> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((_, Reverse(seq), uid)) = self.active.peek() else {
                break;
            };
            let live = self
                .entries
                .get(uid)
                .filter(|e| e.at == Where::Active && e.seq == *seq);
            let Some(alone) = live.map(|e| e.alone) else {
                self.active.pop();
                continue;
            };
            if alone && !out.is_empty() {
                break;
            }
            let Some((_, _, uid)) = self.active.pop() else {
                break;
            };
            let cycle = self.move_cycle;
            if let Some(e) = self.entries.get_mut(&uid) {
                e.at = Where::InFlight;
                e.popped_cycle = cycle;
                out.push(e.key.clone());
            }
            if alone {
                break;
            }
        }
        out
    }

    /// How many pods wait in active.
    pub fn active_len(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.at == Where::Active)
            .count()
    }

    /// `(active, backoff, unschedulable, in flight)` counts.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for e in self.entries.values() {
            match e.at {
                Where::Active => c.0 += 1,
                Where::Backoff => c.1 += 1,
                Where::Unschedulable => c.2 += 1,
                Where::InFlight => c.3 += 1,
            }
        }
        c
    }

    /// Whether active has a pod (cheap: stale heap items may make it say yes wrongly,
    /// and `pop` then returns nothing).
    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// The pod was placed (or is gone): forget it.
    pub fn done(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    fn fail(&mut self, uid: &str, now: Instant) -> Option<&mut Entry> {
        let (initial, max) = (self.initial_backoff, self.max_backoff);
        let e = self.entries.get_mut(uid)?;
        e.attempts = e.attempts.saturating_add(1);
        let factor = 1u32 << (e.attempts - 1).min(16);
        e.backoff_until = now + initial.saturating_mul(factor).min(max);
        e.since = now;
        Some(e)
    }

    /// No node fits. The pod waits for a cluster event, or goes to backoff at once if one
    /// happened while it was being decided.
    pub fn unschedulable(&mut self, uid: &str, now: Instant) {
        let move_cycle = self.move_cycle;
        let Some(e) = self.fail(uid, now) else {
            return;
        };
        if e.popped_cycle < move_cycle {
            self.requeue(uid, now);
        } else {
            e.at = Where::Unschedulable;
        }
    }

    /// The attempt failed for another reason (binding, plugin fault): retry after backoff.
    pub fn retry(&mut self, uid: &str, now: Instant) {
        if self.fail(uid, now).is_some() {
            self.requeue(uid, now);
        }
    }

    /// The pod was in a batch the plugin failed on: retry it after backoff, decided alone,
    /// so that one pod that makes the plugin fail does not hold up the others.
    pub fn retry_alone(&mut self, uid: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(uid) {
            e.alone = true;
        }
        self.retry(uid, now);
    }

    /// Retry at once, without counting an attempt (the plugin was swapped or restarted
    /// while the pod was in flight).
    pub fn retry_now(&mut self, uid: &str) {
        if let Some(e) = self.entries.get_mut(uid) {
            e.at = Where::Active;
            let (p, seq) = (e.priority, e.seq);
            self.active.push((p, Reverse(seq), uid.to_string()));
        }
    }

    /// Something changed that may make unschedulable pods fit: retry them all.
    pub fn move_all(&mut self, now: Instant) {
        self.move_cycle += 1;
        let unsched: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.at == Where::Unschedulable)
            .map(|(u, _)| u.clone())
            .collect();
        for uid in unsched {
            self.requeue(&uid, now);
        }
    }

    /// How many times the pod has failed.
    pub fn attempts(&self, uid: &str) -> u32 {
        self.entries.get(uid).map_or(0, |e| e.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> PodKey {
        PodKey {
            namespace: "d".into(),
            name: n.into(),
            uid: n.into(),
        }
    }

    fn names(v: Vec<PodKey>) -> Vec<String> {
        v.into_iter().map(|k| k.name).collect()
    }

    #[test]
    fn active_pops_by_priority_then_arrival() {
        let mut q = SchedulingQueue::default();
        let now = Instant::now();
        q.add(key("a"), 0, now);
        q.add(key("b"), 10, now);
        q.add(key("c"), 0, now);
        q.add(key("a"), 0, now); // seen again: stays once
        assert_eq!(names(q.pop(10)), vec!["b", "a", "c"]);
        assert!(q.pop(10).is_empty());
        assert_eq!(q.counts(), (0, 0, 0, 3));
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_then_back_off() {
        let mut q = SchedulingQueue::default();
        let t0 = Instant::now();
        q.add(key("a"), 0, t0);
        assert_eq!(q.pop(1).len(), 1);
        q.unschedulable("a", t0);
        assert_eq!(q.counts(), (0, 0, 1, 0));
        // No event: nothing to do, even after its backoff.
        q.flush(t0 + Duration::from_secs(5));
        assert!(q.pop(1).is_empty());
        // A node appears while it is still backing off (1 s): backoff, then active.
        q.move_all(t0 + Duration::from_millis(100));
        assert_eq!(q.counts(), (0, 1, 0, 0));
        assert_eq!(
            q.flush(t0 + Duration::from_millis(500)),
            Some(t0 + Duration::from_secs(1))
        );
        assert!(q.pop(1).is_empty());
        q.flush(t0 + Duration::from_secs(1));
        assert_eq!(names(q.pop(1)), vec!["a"]);
        // Second failure: 2 s of backoff.
        q.retry("a", t0 + Duration::from_secs(2));
        q.flush(t0 + Duration::from_millis(3900));
        assert!(q.pop(1).is_empty());
        q.flush(t0 + Duration::from_secs(4));
        assert_eq!(q.pop(1).len(), 1);
        assert_eq!(q.attempts("a"), 2);
    }

    #[test]
    fn pods_of_a_failed_batch_are_retried_alone() {
        let mut q = SchedulingQueue::new(
            Duration::from_millis(1),
            Duration::from_millis(1),
            Duration::from_secs(60),
        );
        let t0 = Instant::now();
        for n in ["a", "b", "c", "d"] {
            q.add(key(n), 0, t0);
        }
        assert_eq!(names(q.pop(2)), vec!["a", "b"]);
        q.retry_alone("a", t0);
        q.retry_alone("b", t0);
        q.flush(t0 + Duration::from_secs(1));
        // a and b (the oldest) alone, then c and d together.
        assert_eq!(names(q.pop(10)), vec!["a"]);
        assert_eq!(names(q.pop(10)), vec!["b"]);
        assert_eq!(names(q.pop(10)), vec!["c", "d"]);
    }

    #[test]
    fn an_event_during_the_attempt_is_not_lost() {
        let mut q = SchedulingQueue::default();
        let t0 = Instant::now();
        q.add(key("a"), 0, t0);
        q.pop(1);
        q.move_all(t0); // a node was added while "a" was being decided
        q.unschedulable("a", t0);
        assert_eq!(q.counts(), (0, 1, 0, 0), "straight to backoff");
    }

    #[test]
    fn an_updated_unschedulable_pod_is_retried_and_stale_ones_time_out() {
        let mut q = SchedulingQueue::new(
            Duration::from_millis(10),
            Duration::from_millis(10),
            Duration::from_secs(60),
        );
        let t0 = Instant::now();
        q.add(key("a"), 0, t0);
        q.add(key("b"), 0, t0);
        q.pop(2);
        q.unschedulable("a", t0);
        q.unschedulable("b", t0);
        q.add(key("a"), 0, t0 + Duration::from_secs(1));
        assert_eq!(names(q.pop(5)), vec!["a"]);
        q.flush(t0 + Duration::from_secs(61));
        assert_eq!(names(q.pop(5)), vec!["b"]);
        q.done("a");
        q.remove("b");
        assert_eq!(q.counts(), (0, 0, 0, 0));
    }
}
