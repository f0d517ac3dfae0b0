//! What the node agent reads from a Pod: the command line, environment, user, resources and
//! security settings of each container, in Kubernetes' terms (pure functions, unit-tested).

use serde_json::Value;

use crate::api::defaults::Quantity;
use crate::runtime::image::ImageConfig;

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    })
}

/// The process's argv, as the kubelet computes it: `command` replaces the image's
/// entrypoint (and then the image's cmd is not used), `args` replaces the image's cmd.
pub fn argv(container: &Value, image: &ImageConfig) -> Vec<String> {
    let command = strings(container.get("command")).filter(|c| !c.is_empty());
    let args = strings(container.get("args")).filter(|a| !a.is_empty());
    match (command, args) {
        (Some(c), Some(a)) => c.into_iter().chain(a).collect(),
        (Some(c), None) => c,
        (None, Some(a)) => image.entrypoint.iter().cloned().chain(a).collect(),
        (None, None) => image
            .entrypoint
            .iter()
            .chain(image.cmd.iter())
            .cloned()
            .collect(),
    }
}

/// Expands `$(VAR)` references against `env` as Kubernetes does (`$$` escapes; unknown
/// references stay as written).
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'('
                && let Some(end) = s[i + 2..].find(')')
            {
                let name = &s[i + 2..i + 2 + end];
                if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == name) {
                    out.push_str(v);
                    i += end + 3;
                    continue;
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// CPU in milli-units and memory in bytes of a resource list entry.
fn quantity(v: Option<&Value>, milli: bool) -> Option<i64> {
    let q = Quantity::from_value(v?)?;
    let units = if milli {
        q.milli_value()?
    } else {
        q.value_rounded_up()?
    };
    i64::try_from(units).ok()
}

/// cgroup settings of a container: `(cpu shares, cpu quota, cpu period, memory limit)` as
/// the kubelet derives them (shares from the CPU request, at least 2; quota from the limit
/// over a 100 ms period; the memory limit).
pub fn cgroup_resources(container: &Value) -> (Option<u64>, Option<i64>, Option<u64>, Option<i64>) {
    let req_cpu = quantity(container.pointer("/resources/requests/cpu"), true);
    let lim_cpu = quantity(container.pointer("/resources/limits/cpu"), true);
    let shares = req_cpu
        .or(lim_cpu)
        .map(|m| u64::try_from((m * 1024) / 1000).unwrap_or(2).max(2));
    let (quota, period) = match lim_cpu {
        Some(m) if m > 0 => (Some((m * 100_000 / 1000).max(1000)), Some(100_000)),
        _ => (None, None),
    };
    let memory = quantity(container.pointer("/resources/limits/memory"), false);
    (shares, quota, period, memory)
}

/// `runAsUser`/`runAsGroup` from the container's then the pod's security context, else
/// the image's `User` when it is numeric (`uid` or `uid:gid`), else root.
pub fn user(container: &Value, pod: &Value, image: &ImageConfig) -> (u32, u32) {
    let pick = |field: &str| -> Option<u32> {
        container
            .pointer(&format!("/securityContext/{field}"))
            .or_else(|| pod.pointer(&format!("/spec/securityContext/{field}")))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let mut parts = image.user.splitn(2, ':');
    let image_uid = parts.next().and_then(|u| u.parse::<u32>().ok());
    let image_gid = parts.next().and_then(|g| g.parse::<u32>().ok());
    let uid = pick("runAsUser").or(image_uid).unwrap_or(0);
    let gid = pick("runAsGroup").or(image_gid).unwrap_or(0);
    (uid, gid)
}

/// The pod's supplemental groups (`fsGroup` and `supplementalGroups`).
pub fn supplemental_groups(pod: &Value) -> Vec<u32> {
    let mut g: Vec<u32> = pod
        .pointer("/spec/securityContext/supplementalGroups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(fs) = pod
        .pointer("/spec/securityContext/fsGroup")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
    {
        g.push(fs);
    }
    g
}

/// The container's restart decision for an exited instance.
pub fn should_restart(pod: &Value, exit_code: i32) -> bool {
    match str_at(pod, "/spec/restartPolicy") {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// `IfNotPresent` unless the tag is `latest` or absent (then `Always`), as the API's
/// defaulting does when the field is unset.
pub fn pull_policy(container: &Value) -> &'static str {
    match str_at(container, "/imagePullPolicy") {
        "Always" => "Always",
        "Never" => "Never",
        "IfNotPresent" => "IfNotPresent",
        _ => {
            let image = str_at(container, "/image");
            let last = image.rsplit('/').next().unwrap_or(image);
            if image.contains('@') {
                "IfNotPresent"
            } else if !last.contains(':') || last.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            }
        }
    }
}

/// The value of a downward API `resourceFieldRef` (`limits.cpu`, `requests.memory`, …) of
/// the named container (or the first), divided by `divisor` and rounded up, as the kubelet
/// renders it; `None` when the container sets no such value.
pub fn resource_field(pod: &Value, r: &Value) -> Option<String> {
    let resource = r.get("resource").and_then(Value::as_str)?;
    let (kind, name) = resource.split_once('.')?;
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array)?;
    let c = match r.get("containerName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => containers.iter().find(|c| c["name"] == n)?,
        _ => containers.first()?,
    };
    let q = Quantity::from_value(c.pointer(&format!("/resources/{kind}/{name}"))?)?;
    let divisor = r
        .get("divisor")
        .and_then(Quantity::from_value)
        .and_then(|d| d.milli_value())
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    let v = q.milli_value()?;
    Some(((v + divisor - 1) / divisor).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec![],
            working_dir: String::new(),
            user: "1000:2000".into(),
        }
    }

    #[test]
    fn argv_follows_kubernetes_rules() {
        let img = image();
        assert_eq!(argv(&json!({}), &img), vec!["/entry", "default"]);
        assert_eq!(argv(&json!({"args": ["x"]}), &img), vec!["/entry", "x"]);
        assert_eq!(
            argv(&json!({"command": ["/bin/sh"]}), &img),
            vec!["/bin/sh"]
        );
        assert_eq!(
            argv(
                &json!({"command": ["/bin/sh"], "args": ["-c", "echo"]}),
                &img
            ),
            vec!["/bin/sh", "-c", "echo"]
        );
    }

    #[test]
    fn variable_references_expand() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(B)", &env), "$(B)");
        assert_eq!(expand("héllo $", &env), "héllo $");
    }

    #[test]
    fn cgroup_settings_follow_requests_and_limits() {
        let c = json!({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}});
        assert_eq!(
            cgroup_resources(&c),
            (Some(256), Some(50_000), Some(100_000), Some(64 << 20))
        );
        assert_eq!(cgroup_resources(&json!({})), (None, None, None, None));
    }

    #[test]
    fn users_come_from_the_security_context_then_the_image() {
        let img = image();
        assert_eq!(user(&json!({}), &json!({}), &img), (1000, 2000));
        let pod = json!({"spec": {"securityContext": {"runAsUser": 5}}});
        assert_eq!(user(&json!({}), &pod, &img), (5, 2000));
        let c = json!({"securityContext": {"runAsUser": 7, "runAsGroup": 8}});
        assert_eq!(user(&c, &pod, &img), (7, 8));
    }

    #[test]
    fn restart_and_pull_policies() {
        assert!(should_restart(&json!({"spec": {}}), 0));
        assert!(!should_restart(
            &json!({"spec": {"restartPolicy": "OnFailure"}}),
            0
        ));
        assert!(should_restart(
            &json!({"spec": {"restartPolicy": "OnFailure"}}),
            1
        ));
        assert!(!should_restart(
            &json!({"spec": {"restartPolicy": "Never"}}),
            1
        ));
        assert_eq!(pull_policy(&json!({"image": "busybox"})), "Always");
        assert_eq!(
            pull_policy(&json!({"image": "r:5000/busybox:1"})),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&json!({"image": "r:5000/busybox"})), "Always");
    }
}
