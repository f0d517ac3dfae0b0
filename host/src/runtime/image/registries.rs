//! Registry credentials and the registries file.
//!
//! The registries file follows k3s's `registries.yaml`:
//!
//! ```yaml
//! mirrors:
//!   docker.io:                  # a registry, or "*" for every registry
//!     endpoint:
//!       - "https://mirror.example.com:5000"
//!       - "http://10.0.0.2:5000"   # http:// = plain HTTP
//!   registry.internal:5000:     # plain HTTP for the registry itself
//!     endpoint: ["http://registry.internal:5000"]
//! configs:
//!   mirror.example.com:5000:
//!     auth: { username: bob, password: secret }   # or auth: <base64 user:password>
//!     tls: { ca_file: /etc/ssl/mirror-ca.pem, insecure_skip_verify: false }
//! ```
//!
//! A pull tries the mirror endpoints in order, then the registry itself. Without
//! configuration, registries on loopback (`127.0.0.0/8`, `::1`, `localhost`) speak plain
//! HTTP (as Docker does) and all others HTTPS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use serde::Deserialize;

/// Credentials for one registry (from a Pod's `imagePullSecrets` or the registries file).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RegistryAuth {
    /// The registry host (`host[:port]`; Docker Hub is `docker.io`).
    pub registry: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl RegistryAuth {
    /// The credentials in a `.dockerconfigjson` (a `kubernetes.io/dockerconfigjson` Secret:
    /// `{"auths": {"host": {"username": …, "password": …} | {"auth": base64("user:pw")}}}`)
    /// or a legacy `.dockercfg` (the same map without `auths`). Entries it cannot read are
    /// skipped.
    pub fn from_docker_config_json(bytes: &[u8]) -> Vec<RegistryAuth> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(default)]
            username: Option<String>,
            #[serde(default)]
            password: Option<String>,
            #[serde(default)]
            auth: Option<String>,
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return Vec::new();
        };
        let map = match value.get("auths") {
            Some(auths) => auths.clone(),
            None => value,
        };
        let Ok(map) = serde_json::from_value::<BTreeMap<String, serde_json::Value>>(map) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, entry) in map {
            let Ok(entry) = serde_json::from_value::<Entry>(entry) else {
                continue;
            };
            let Some((username, password)) = credentials(
                entry.username.as_deref(),
                entry.password.as_deref(),
                entry.auth.as_deref(),
            ) else {
                continue;
            };
            out.push(RegistryAuth {
                registry: registry_host(&key),
                username,
                password,
            });
        }
        out
    }
}

/// `username`/`password`, or the base64 `auth` (`user:password`) when they are absent.
fn credentials(
    username: Option<&str>,
    password: Option<&str>,
    auth: Option<&str>,
) -> Option<(String, String)> {
    match (username, password) {
        (Some(u), Some(p)) if !u.is_empty() => Some((u.to_string(), p.to_string())),
        _ => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth?.trim())
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (u, p) = decoded.split_once(':')?;
            Some((u.to_string(), p.to_string()))
        }
    }
}

/// The registry host a docker config key names: `https://index.docker.io/v1/` →
/// `docker.io`, `http://host:5000/path` → `host:5000`.
pub(super) fn registry_host(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// One place to pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// A mirror (not the registry itself): requests carry `?ns=<registry>`.
    pub mirror: bool,
    /// Credentials from the registries file.
    pub auth: Option<(String, String)>,
    /// Extra CA certificates (PEM).
    pub ca_files: Vec<PathBuf>,
    /// Skip TLS verification.
    pub insecure_skip_verify: bool,
}

/// `registries.yaml` (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Registry (or `*`) → mirror endpoints.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Endpoint host → credentials and TLS settings.
    #[serde(default)]
    pub configs: BTreeMap<String, EndpointConfig>,
}

/// Mirrors of one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Mirror {
    /// URLs (`https://host[:port]` or `http://host[:port]`; no scheme means HTTPS, or plain
    /// HTTP on loopback).
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Credentials and TLS for one endpoint host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EndpointConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Credentials of an endpoint.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AuthConfig {
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// base64 of `user:password`.
    #[serde(default)]
    pub auth: Option<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS settings of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TlsConfig {
    /// A PEM file of CA certificates to trust in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (dangerous; for tests).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl RegistriesConfig {
    /// Reads a registries file (YAML); a missing file is the default configuration.
    pub fn load(path: &Path) -> anyhow::Result<RegistriesConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => RegistriesConfig::parse(&text)
                .with_context(|| format!("reading the registries file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistriesConfig::default()),
            Err(e) => {
                Err(e).with_context(|| format!("reading the registries file {}", path.display()))
            }
        }
    }

    /// Parses registries YAML (an empty document is the default).
    pub fn parse(yaml: &str) -> anyhow::Result<RegistriesConfig> {
        if yaml.trim().is_empty() {
            return Ok(RegistriesConfig::default());
        }
        let config: RegistriesConfig = serde_yaml::from_str(yaml)?;
        for (registry, mirror) in &config.mirrors {
            for url in &mirror.endpoint {
                parse_endpoint_url(url)
                    .with_context(|| format!("mirror endpoint {url:?} of {registry:?}"))?;
            }
        }
        Ok(config)
    }

    /// Where to pull `registry`'s images from, in order: its mirrors (or those of `*`), then
    /// the registry itself (unless a mirror entry already names it).
    pub(super) fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let registry = registry_host(registry);
        let mirrors = self
            .mirrors
            .get(&registry)
            .or_else(|| self.mirrors.get("*"));
        let mut out: Vec<Endpoint> = Vec::new();
        for url in mirrors.map(|m| m.endpoint.as_slice()).unwrap_or_default() {
            let Ok((host, plain_http)) = parse_endpoint_url(url) else {
                continue;
            };
            let own = host == registry
                || (registry == "docker.io" && registry_host(&host) == "docker.io");
            out.push(self.endpoint(&host, plain_http, !own));
        }
        if !out.iter().any(|e| !e.mirror) {
            let host = if registry == "docker.io" {
                "index.docker.io".to_string()
            } else {
                registry.clone()
            };
            let plain_http = crate::plugin::oci::is_loopback_registry(&registry);
            out.push(self.endpoint(&host, plain_http, false));
        }
        out
    }

    fn endpoint(&self, host: &str, plain_http: bool, mirror: bool) -> Endpoint {
        let config = self
            .configs
            .get(host)
            .or_else(|| self.configs.get(&registry_host(host)));
        let auth = config.and_then(|c| c.auth.as_ref()).and_then(|a| {
            credentials(
                a.username.as_deref(),
                a.password.as_deref(),
                a.auth.as_deref(),
            )
        });
        let tls = config.and_then(|c| c.tls.as_ref());
        Endpoint {
            host: host.to_string(),
            plain_http,
            mirror,
            auth,
            ca_files: tls.and_then(|t| t.ca_file.clone()).into_iter().collect(),
            insecure_skip_verify: tls.is_some_and(|t| t.insecure_skip_verify),
        }
    }
}

/// `https://host:port/path` → (`host:port`, false); `http://…` → (…, true); no scheme →
/// plain HTTP only on loopback.
fn parse_endpoint_url(url: &str) -> anyhow::Result<(String, bool)> {
    let url = url.trim();
    let (rest, plain) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, Some(false))
    } else if let Some(rest) = url.strip_prefix("http://") {
        (rest, Some(true))
    } else if url.contains("://") {
        anyhow::bail!("only http:// and https:// endpoints are supported");
    } else {
        (url, None)
    };
    let host = rest
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    anyhow::ensure!(!host.is_empty(), "no host in the endpoint");
    let plain = plain.unwrap_or_else(|| crate::plugin::oci::is_loopback_registry(&host));
    Ok((host, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_json() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et");
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{b64}"}},
                "127.0.0.1:5000": {{"username": "bob", "password": "pw", "auth": "ignored"}},
                "broken.example": {{"auth": "not base64!"}},
                "http://quay.io/v2/": {{"username": "carol", "password": "x"}}
            }}}}"#
        );
        let mut auths = RegistryAuth::from_docker_config_json(json.as_bytes());
        auths.sort_by(|a, b| a.registry.cmp(&b.registry));
        let got: Vec<(&str, &str, &str)> = auths
            .iter()
            .map(|a| {
                (
                    a.registry.as_str(),
                    a.username.as_str(),
                    a.password.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("127.0.0.1:5000", "bob", "pw"),
                ("docker.io", "alice", "s3cr:et"),
                ("quay.io", "carol", "x"),
            ]
        );
        // Legacy .dockercfg: no "auths" wrapper.
        let legacy = RegistryAuth::from_docker_config_json(
            br#"{"reg.example:443": {"username": "u", "password": "p"}}"#,
        );
        assert_eq!(legacy.len(), 1);
        assert_eq!(legacy[0].registry, "reg.example:443");
        assert!(RegistryAuth::from_docker_config_json(b"not json").is_empty());
        assert!(!format!("{:?}", auths[0]).contains("pw"));
    }

    #[test]
    fn default_endpoints() {
        let config = RegistriesConfig::default();
        let e = config.endpoints("127.0.0.1:5000");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].host, "127.0.0.1:5000");
        assert!(e[0].plain_http && !e[0].mirror);
        assert!(config.endpoints("localhost:5000")[0].plain_http);
        assert!(config.endpoints("[::1]:5000")[0].plain_http);
        let hub = config.endpoints("docker.io");
        assert_eq!(hub[0].host, "index.docker.io");
        assert!(!hub[0].plain_http);
        assert!(!config.endpoints("quay.io")[0].plain_http);
    }

    #[test]
    fn registries_yaml() {
        let config = RegistriesConfig::parse(
            r#"
mirrors:
  docker.io:
    endpoint:
      - "https://mirror.example.com:5000/v2"
      - "http://10.0.0.2:5000"
  registry.internal:5000:
    endpoint: ["http://registry.internal:5000"]
  "*":
    endpoint: ["https://catch.all"]
configs:
  mirror.example.com:5000:
    auth: { username: bob, password: secret }
    tls: { ca_file: /etc/ssl/mirror-ca.pem }
  registry.internal:5000:
    auth: { auth: "dTpw" }
    tls: { insecure_skip_verify: true }
"#,
        )
        .unwrap();
        let hub = config.endpoints("docker.io");
        let hosts: Vec<(&str, bool, bool)> = hub
            .iter()
            .map(|e| (e.host.as_str(), e.plain_http, e.mirror))
            .collect();
        assert_eq!(
            hosts,
            vec![
                ("mirror.example.com:5000", false, true),
                ("10.0.0.2:5000", true, true),
                ("index.docker.io", false, false),
            ]
        );
        assert_eq!(hub[0].auth, Some(("bob".into(), "secret".into())));
        assert_eq!(
            hub[0].ca_files,
            vec![PathBuf::from("/etc/ssl/mirror-ca.pem")]
        );
        assert_eq!(hub[1].auth, None);

        // The registry itself, over plain HTTP: no fallback to HTTPS.
        let internal = config.endpoints("registry.internal:5000");
        assert_eq!(internal.len(), 1);
        assert!(internal[0].plain_http && !internal[0].mirror);
        assert_eq!(internal[0].auth, Some(("u".into(), "p".into())));
        assert!(internal[0].insecure_skip_verify);

        // "*" applies to registries without their own entry.
        let other = config.endpoints("quay.io");
        assert_eq!(other[0].host, "catch.all");
        assert_eq!(other[1].host, "quay.io");
    }

    #[test]
    fn registries_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = RegistriesConfig::load(&dir.path().join("nope.yaml")).unwrap();
        assert_eq!(missing, RegistriesConfig::default());
        let path = dir.path().join("registries.yaml");
        std::fs::write(&path, "").unwrap();
        assert_eq!(
            RegistriesConfig::load(&path).unwrap(),
            RegistriesConfig::default()
        );
        std::fs::write(&path, "mirrors: {docker.io: {endpoint: [\"ftp://x\"]}}\n").unwrap();
        let err = RegistriesConfig::load(&path).unwrap_err();
        assert!(format!("{err:#}").contains("ftp://x"), "{err:#}");
        std::fs::write(&path, "mirrorz: {}\n").unwrap();
        assert!(RegistriesConfig::load(&path).is_err());
    }
}
