//! Built-in network plugin `cni-adapter`: runs a CNI network configuration list
//! (a "conflist") with the node's CNI plugin binaries, as a container runtime does.
//!
//! - `setup`: `ADD` through the chain in order, each plugin getting the previous one's
//!   result as `prevResult`; the final result is cached in the `ipam-store`
//!   (`result/<sandbox id>`) because CNI needs it for `DEL` and `CHECK`; the pod IPs are
//!   the result's `ips`. A failed `ADD` is rolled back with `DEL` over the chain. A sandbox
//!   with a cached result gets it again (idempotent).
//!   The sandbox's `lo` is brought up too (what runtimes do with CNI's `loopback`).
//! - `teardown`: `DEL` through the chain in reverse, with the cached result; the cache
//!   entry goes once every plugin succeeded (so a retry repeats what failed).
//! - `check`: `CHECK` in order with the cached result (CNI 0.4.0 and later).
//!
//! Config: the conflist itself (`{"cniVersion": "1.0.0", "name": …, "plugins": […]}`),
//! or `{"conflist": <that object or its JSON text>}`; a single plugin configuration
//! (with `type`, no `plugins`) is a chain of one. `bridge` (filled in by the host) is
//! ignored. String values `"$podCIDR"` and `"$clusterCIDR"` are replaced with the node's
//! first pod CIDR and the cluster CIDR (one conflist serves every node).

use serde_json::{Value, json};

wit_bindgen::generate!({
    world: "network",
    path: "../../wit",
});

use exports::tugboat::plugin::network_plugin::{Guest, PodNetwork, PodSandbox};
use tugboat::plugin::cni::{self, ExecError};
use tugboat::plugin::ipam_store as ipam;
use tugboat::plugin::types::Error as HostError;

#[derive(Debug, Clone, Default)]
struct Conflist {
    name: String,
    cni_version: String,
    plugins: Vec<Value>,
    disable_check: bool,
}

thread_local! {
    static CONFLIST: std::cell::RefCell<Conflist> = std::cell::RefCell::new(Conflist::default());
}

fn conflist() -> Conflist {
    CONFLIST.with(|c| c.borrow().clone())
}

fn host_err(what: &str, e: HostError) -> String {
    format!("{what}: {} ({}): {}", e.reason, e.code, e.message)
}

fn exec_err(what: &str, e: ExecError) -> String {
    match e {
        ExecError::Host(e) => host_err(what, e),
        ExecError::Plugin(e) => {
            if e.details.is_empty() {
                format!("{what}: CNI error {}: {}", e.code, e.msg)
            } else {
                format!("{what}: CNI error {}: {} ({})", e.code, e.msg, e.details)
            }
        }
    }
}

fn parse_conflist(v: &Value) -> Result<Conflist, String> {
    let v = match v.get("conflist") {
        Some(Value::String(text)) => {
            serde_json::from_str(text).map_err(|e| format!("config.conflist: {e}"))?
        }
        Some(obj) => obj.clone(),
        None => v.clone(),
    };
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or("the conflist has no name")?
        .to_string();
    let cni_version = v
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("1.0.0")
        .to_string();
    let plugins = match v.get("plugins") {
        Some(Value::Array(p)) => p.clone(),
        Some(_) => return Err("conflist.plugins is not a list".into()),
        None if v.get("type").is_some() => vec![v.clone()],
        None => return Err("the conflist has no plugins".into()),
    };
    if plugins.is_empty() {
        return Err("the conflist has no plugins".into());
    }
    for (i, p) in plugins.iter().enumerate() {
        if p.get("type").and_then(Value::as_str).is_none() {
            return Err(format!("conflist.plugins[{i}] has no type"));
        }
    }
    Ok(Conflist {
        name,
        cni_version,
        plugins,
        disable_check: v
            .get("disableCheck")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Replaces the placeholders `$podCIDR` and `$clusterCIDR` (whole string values) with the
/// node's first pod CIDR and the cluster CIDR.
fn substitute(v: &mut Value, s: &PodSandbox) {
    match v {
        Value::String(text) if text == "$podCIDR" => {
            *text = s.pod_cidrs.first().cloned().unwrap_or_default();
        }
        Value::String(text) if text == "$clusterCIDR" => *text = s.cluster_cidr.clone(),
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, s)),
        Value::Object(fields) => fields.values_mut().for_each(|f| substitute(f, s)),
        _ => {}
    }
}

/// The network configuration handed to one plugin of the chain.
fn netconf(
    list: &Conflist,
    plugin: &Value,
    prev: Option<&Value>,
    s: &PodSandbox,
) -> (String, String) {
    let mut conf = plugin.clone();
    substitute(&mut conf, s);
    let ty = plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(obj) = conf.as_object_mut() {
        obj.insert("name".into(), json!(list.name));
        obj.insert("cniVersion".into(), json!(list.cni_version));
        match prev {
            Some(p) => {
                obj.insert("prevResult".into(), p.clone());
            }
            None => {
                obj.remove("prevResult");
            }
        }
    }
    (ty, conf.to_string())
}

fn cache_key(sandbox_id: &str) -> String {
    format!("result/{sandbox_id}")
}

fn cached(sandbox_id: &str) -> Result<Option<Value>, String> {
    let v =
        ipam::get(&cache_key(sandbox_id)).map_err(|e| host_err("reading the cached result", e))?;
    Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
}

/// The pod network a CNI result describes.
fn to_pod_network(result: &Value) -> Result<PodNetwork, String> {
    let ips = result
        .get("ips")
        .and_then(Value::as_array)
        .ok_or("the CNI result has no ips")?;
    let mut addresses = Vec::new();
    let mut gateway = None;
    for ip in ips {
        let a = ip
            .get("address")
            .and_then(Value::as_str)
            .ok_or("a CNI result ip has no address")?;
        addresses.push(a.to_string());
        if gateway.is_none() {
            gateway = ip
                .get("gateway")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
    }
    let routes = result
        .get("routes")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|r| r.get("dst").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(PodNetwork {
        addresses,
        gateway,
        routes,
    })
}

/// `DEL` through the chain in reverse; the first error, after trying every plugin.
fn del_chain(list: &Conflist, prev: Option<&Value>, s: &PodSandbox) -> Result<(), String> {
    let mut first_err = None;
    for plugin in list.plugins.iter().rev() {
        let (ty, conf) = netconf(list, plugin, prev, s);
        if let Err(e) = cni::exec(&ty, "DEL", &conf) {
            first_err.get_or_insert(exec_err(&format!("{ty} DEL"), e));
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct CniAdapter;

impl Guest for CniAdapter {
    fn init(config: String) -> Result<(), String> {
        let v: Value = serde_json::from_str(&config).map_err(|e| format!("config: {e}"))?;
        let list = parse_conflist(&v)?;
        CONFLIST.with(|c| *c.borrow_mut() = list);
        Ok(())
    }

    fn setup(s: PodSandbox) -> Result<PodNetwork, String> {
        let list = conflist();
        if let Some(result) = cached(&s.sandbox_id)? {
            return to_pod_network(&result);
        }
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let (ty, conf) = netconf(&list, plugin, prev.as_ref(), &s);
            match cni::exec(&ty, "ADD", &conf) {
                Ok(out) => {
                    let result: Value = serde_json::from_str(&out)
                        .map_err(|e| format!("{ty} ADD printed no JSON result: {e}"))?;
                    prev = Some(result);
                }
                Err(e) => {
                    let message = exec_err(&format!("{ty} ADD"), e);
                    let _ = del_chain(&list, prev.as_ref(), &s);
                    return Err(message);
                }
            }
        }
        let result = prev.ok_or("the chain returned no result")?;
        // Like container runtimes, bring the sandbox's loopback up besides the chain.
        if let Err(e) = tugboat::plugin::netlink::pod_link_up("lo") {
            let _ = del_chain(&list, Some(&result), &s);
            return Err(host_err("bringing lo up", e));
        }
        let net = match to_pod_network(&result) {
            Ok(n) => n,
            Err(e) => {
                let _ = del_chain(&list, Some(&result), &s);
                return Err(e);
            }
        };
        if let Err(e) = ipam::set(&cache_key(&s.sandbox_id), &result.to_string()) {
            let _ = del_chain(&list, Some(&result), &s);
            return Err(host_err("caching the result", e));
        }
        Ok(net)
    }

    fn teardown(s: PodSandbox) -> Result<(), String> {
        let list = conflist();
        let prev = cached(&s.sandbox_id)?;
        del_chain(&list, prev.as_ref(), &s)?;
        ipam::delete(&cache_key(&s.sandbox_id))
            .map_err(|e| host_err("dropping the cached result", e))?;
        Ok(())
    }

    fn check(s: PodSandbox) -> Result<(), String> {
        let list = conflist();
        let prev = cached(&s.sandbox_id)?.ok_or("the sandbox has no cached CNI result")?;
        if list.disable_check {
            return Ok(());
        }
        for plugin in &list.plugins {
            let (ty, conf) = netconf(&list, plugin, Some(&prev), &s);
            cni::exec(&ty, "CHECK", &conf).map_err(|e| exec_err(&format!("{ty} CHECK"), e))?;
        }
        Ok(())
    }
}

// The exports exist only in the component (a native build is for unit tests).
#[cfg(target_arch = "wasm32")]
export!(CniAdapter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conflists_and_results() {
        let list = parse_conflist(&json!({"conflist": {"cniVersion": "1.0.0", "name": "n",
            "plugins": [{"type": "bridge"}, {"type": "portmap"}]}, "bridge": "tug0"}))
        .unwrap();
        assert_eq!(list.plugins.len(), 2);
        let single = parse_conflist(&json!({"name": "n", "type": "bridge"})).unwrap();
        assert_eq!(single.plugins.len(), 1);
        assert!(parse_conflist(&json!({"name": "n", "plugins": [{}]})).is_err());
        let sandbox = PodSandbox {
            uid: "u".into(),
            namespace: "ns".into(),
            name: "p".into(),
            sandbox_id: "s".into(),
            netns: "/x".into(),
            ifname: "eth0".into(),
            node_name: "n".into(),
            pod_cidrs: vec!["10.42.3.0/24".into()],
            cluster_cidr: "10.42.0.0/16".into(),
            mtu: 0,
        };
        let mut v = json!({"ipam": {"ranges": [[{"subnet": "$podCIDR"}]]}});
        substitute(&mut v, &sandbox);
        assert_eq!(v["ipam"]["ranges"][0][0]["subnet"], "10.42.3.0/24");
        let (ty, conf) = netconf(&list, &list.plugins[1], Some(&json!({"ips": []})), &sandbox);
        assert_eq!(ty, "portmap");
        let conf: Value = serde_json::from_str(&conf).unwrap();
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["prevResult"], json!({"ips": []}));
        let net = to_pod_network(&json!({"cniVersion": "1.0.0",
            "ips": [{"address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0"}]}))
        .unwrap();
        assert_eq!(net.addresses, vec!["10.22.0.5/16".to_string()]);
        assert_eq!(net.gateway.as_deref(), Some("10.22.0.1"));
        assert_eq!(net.routes, vec!["0.0.0.0/0".to_string()]);
    }
}
