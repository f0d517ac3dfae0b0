//! Test support (native builds only): a [`FakeCluster`] that records the writes made through
//! it, so that tests can assert that a sync wrote nothing (or exactly what).

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value;
use tugboat_plugin_sdk::cluster::{ApiResource, DeleteOptions, PatchType, Query};
use tugboat_plugin_sdk::host::{HostError, LogLevel};
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::testing::{FakeCluster, MockHost};

/// A FakeCluster that records the writes made through it.
#[derive(Clone)]
pub struct Recorder {
    cluster: FakeCluster,
    writes: Rc<RefCell<Vec<String>>>,
}

impl Recorder {
    /// Records the writes made to `cluster` (install it with `set_mock_host`).
    pub fn new(cluster: &FakeCluster) -> Self {
        Recorder {
            cluster: cluster.clone(),
            writes: Rc::default(),
        }
    }

    fn record(&self, what: String) {
        self.writes.borrow_mut().push(what);
    }

    /// The writes recorded since the last call, as `"<verb> <Kind> <name>"`.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.writes.borrow_mut())
    }
}

fn describe(o: &Value) -> String {
    format!("{} {}", objects::str_at(o, "/kind"), objects::name(o))
}

impl MockHost for Recorder {
    fn log(&self, level: LogLevel, message: &str) {
        self.cluster.log(level, message)
    }
    fn get(&self, a: &str, k: &str, ns: Option<&str>, n: &str) -> Result<Option<Value>, HostError> {
        self.cluster.get(a, k, ns, n)
    }
    fn list(
        &self,
        a: &str,
        k: &str,
        ns: Option<&str>,
        sel: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        self.cluster.list(a, k, ns, sel)
    }
    fn create(&self, o: &Value) -> Result<Value, HostError> {
        self.record(format!("create {}", describe(o)));
        self.cluster.create(o)
    }
    fn update(&self, o: &Value) -> Result<Value, HostError> {
        self.record(format!("update {}", describe(o)));
        self.cluster.update(o)
    }
    fn delete(&self, a: &str, k: &str, ns: Option<&str>, n: &str) -> Result<(), HostError> {
        self.record(format!("delete {k} {n}"));
        self.cluster.delete(a, k, ns, n)
    }
    fn now_millis(&self) -> u64 {
        self.cluster.now_millis()
    }
    fn api_resources(&self) -> Vec<ApiResource> {
        self.cluster.api_resources()
    }
    fn select(&self, q: &Query) -> Result<Vec<Value>, HostError> {
        self.cluster.select(q)
    }
    fn patch(
        &self,
        a: &str,
        k: &str,
        ns: Option<&str>,
        n: &str,
        t: PatchType,
        p: &Value,
        sub: Option<&str>,
    ) -> Result<Value, HostError> {
        self.record(format!("patch {k} {n}"));
        self.cluster.patch(a, k, ns, n, t, p, sub)
    }
    fn update_status(&self, o: &Value) -> Result<Value, HostError> {
        self.record(format!("update-status {}", describe(o)));
        self.cluster.update_status(o)
    }
    fn delete_with(
        &self,
        a: &str,
        k: &str,
        ns: Option<&str>,
        n: &str,
        o: &DeleteOptions,
    ) -> Result<(), HostError> {
        self.record(format!("delete {k} {n}"));
        self.cluster.delete_with(a, k, ns, n, o)
    }
}
