//! First-start credentials: a cluster CA, the API server's serving certificate, the admin
//! token, and a ready-to-use kubeconfig, all kept in the data directory.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The credentials a server runs with.
pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub admin_token: String,
    pub kubeconfig_path: PathBuf,
}

fn write_private(path: &Path, data: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_or<F: FnOnce() -> Result<String>>(path: &Path, make: F) -> Result<(String, bool)> {
    if path.exists() {
        return Ok((
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            false,
        ));
    }
    let v = make()?;
    write_private(path, &v)?;
    Ok((v, true))
}

fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The names the serving certificate is valid for.
fn server_sans(listen: &SocketAddr) -> Vec<SanType> {
    let mut sans = vec![];
    for dns in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        if let Ok(n) = dns.try_into() {
            sans.push(SanType::DnsName(n));
        }
    }
    if let Ok(h) = fs::read_to_string("/etc/hostname")
        && let Ok(n) = h.trim().to_string().try_into()
    {
        sans.push(SanType::DnsName(n));
    }
    let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse().ok(), "::1".parse().ok()]
        .into_iter()
        .flatten()
        .collect();
    if !listen.ip().is_unspecified() && !ips.contains(&listen.ip()) {
        ips.push(listen.ip());
    }
    sans.extend(ips.into_iter().map(SanType::IpAddress));
    sans
}

/// Load the credentials in `dir`, creating whatever is missing.
pub fn ensure(dir: &Path, listen: &SocketAddr) -> Result<Credentials> {
    let pki = dir.join("pki");
    fs::create_dir_all(&pki).with_context(|| format!("creating {}", pki.display()))?;
    let (ca_key_pem, _) = read_or(&pki.join("ca.key"), || {
        Ok(KeyPair::generate()?.serialize_pem())
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).context("parsing the CA key")?;
    let ca_params = ca_params("tugboat-ca")?;
    let (ca_pem, _) = read_or(&pki.join("ca.crt"), || {
        Ok(ca_params.self_signed(&ca_key)?.pem())
    })?;
    // The CA's parameters are fixed, so the issuer (its name and key) is rebuilt from them.
    let issuer = Issuer::new(ca_params, &ca_key);

    let sans_key = format!("{listen}");
    let stamp = pki.join("server.sans");
    let regenerate = fs::read_to_string(&stamp)
        .map(|s| s != sans_key)
        .unwrap_or(true);
    let key_path = pki.join("server.key");
    let cert_path = pki.join("server.crt");
    if regenerate || !key_path.exists() || !cert_path.exists() {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name
            .push(DnType::CommonName, "tugboat-apiserver");
        p.subject_alt_names = server_sans(listen);
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2036, 1, 1);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &issuer)?;
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&cert_path, &cert.pem())?;
        write_private(&stamp, &sans_key)?;
    }
    let key_pem = fs::read_to_string(&key_path)?;
    let cert_pem = fs::read_to_string(&cert_path)?;
    let (admin_token, _) = read_or(&dir.join("admin.token"), || Ok(random_token()))?;
    let admin_token = admin_token.trim().to_string();

    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        listen.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let kubeconfig = kubeconfig(
        &format!("https://{host}:{}", listen.port()),
        &ca_pem,
        &admin_token,
    );
    let kubeconfig_path = dir.join("kubeconfig");
    write_private(&kubeconfig_path, &kubeconfig)?;
    Ok(Credentials {
        ca_pem,
        cert_pem,
        key_pem,
        admin_token,
        kubeconfig_path,
    })
}

/// The prefix of a node join token (k3s's format: `K10<sha256 of the CA>::node:<secret>`).
const TOKEN_PREFIX: &str = "K10";

/// A node join token, parsed: the SHA-256 (hex) of the cluster CA certificate as the server
/// serves it at `/cacerts`, and the secret node agents present as a bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_hash: String,
    pub secret: String,
}

impl JoinToken {
    /// Parses `K10<hash>::node:<secret>` (a bare secret is refused: the agent could not
    /// verify the server).
    pub fn parse(s: &str) -> Result<JoinToken> {
        let s = s.trim();
        let rest = s.strip_prefix(TOKEN_PREFIX).context(
            "a join token starts with K10 (the server writes it to <data-dir>/node-token)",
        )?;
        let (hash, cred) = rest
            .split_once("::")
            .context("a join token is K10<CA hash>::node:<secret>")?;
        let secret = cred.split_once(':').map_or(cred, |(_, s)| s);
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("the join token's CA hash is not a SHA-256 in hex");
        }
        if secret.is_empty() {
            anyhow::bail!("the join token has no secret");
        }
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }

    /// The token as written and printed.
    pub fn render(&self) -> String {
        format!("{TOKEN_PREFIX}{}::node:{}", self.ca_hash, self.secret)
    }
}

/// The SHA-256 (hex) of the CA certificate bytes, as a join token names it.
pub fn ca_hash(ca_pem: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(ca_pem.as_bytes()))
}

/// The node join token of the server in `dir` (`<dir>/node-token`), created on first use;
/// `true` when it was just created. Its secret is the bearer credential of node agents.
pub fn ensure_node_token(dir: &Path, ca_pem: &str) -> Result<(JoinToken, bool)> {
    let (text, created) = read_or(&dir.join("node-token"), || {
        Ok(JoinToken {
            ca_hash: ca_hash(ca_pem),
            secret: random_token(),
        }
        .render()
            + "\n")
    })?;
    let token = JoinToken::parse(&text)
        .with_context(|| format!("reading {}", dir.join("node-token").display()))?;
    if token.ca_hash != ca_hash(ca_pem) {
        anyhow::bail!(
            "{} names another CA than {}: remove it to make a new token",
            dir.join("node-token").display(),
            dir.join("pki/ca.crt").display()
        );
    }
    Ok((token, created))
}

/// The CA that signs node agents' serving certificates (`<dir>/pki/node-ca.{crt,key}`),
/// created on first use: its certificate (PEM) and key. It is not the cluster CA, so that a
/// node's certificate can never pass for the API server's with clients that trust the
/// cluster CA; only the API server trusts it, when it relays to nodes.
pub fn ensure_node_ca(dir: &Path) -> Result<(String, KeyPair)> {
    let pki = dir.join("pki");
    fs::create_dir_all(&pki).with_context(|| format!("creating {}", pki.display()))?;
    let (key_pem, _) = read_or(&pki.join("node-ca.key"), || {
        Ok(KeyPair::generate()?.serialize_pem())
    })?;
    let key = KeyPair::from_pem(&key_pem).context("parsing the node CA key")?;
    let (cert_pem, _) = read_or(&pki.join("node-ca.crt"), || {
        Ok(ca_params("tugboat-node-ca")?.self_signed(&key)?.pem())
    })?;
    Ok((cert_pem, key))
}

/// A serving certificate for node `node_name`'s endpoint (logs and exec), signed by the
/// node CA of the server in `dir` ([`ensure_node_ca`]), valid for the node's name and
/// `ips`: (certificate PEM, key PEM).
pub fn issue_node_cert(dir: &Path, node_name: &str, ips: &[IpAddr]) -> Result<(String, String)> {
    let (_, ca_key) = ensure_node_ca(dir)?;
    let issuer = Issuer::new(ca_params("tugboat-node-ca")?, &ca_key);
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, format!("system:node:{node_name}"));
    let mut sans = vec![];
    if let Ok(n) = node_name.to_string().try_into() {
        sans.push(SanType::DnsName(n));
    }
    sans.extend(ips.iter().copied().map(SanType::IpAddress));
    p.subject_alt_names = sans;
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The CA's fixed parameters (the issuer is rebuilt from them and the key).
fn ca_params(common_name: &str) -> Result<CertificateParams> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(ca_params)
}

/// A kubeconfig for `server` with the admin token.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tugboat\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: tugboat\n  context:\n    cluster: tugboat\n    user: admin\n    namespace: default\ncurrent-context: tugboat\nusers:\n- name: admin\n  user:\n    token: {token}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reuses() {
        let d = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        let a = ensure(d.path(), &addr).unwrap();
        let b = ensure(d.path(), &addr).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert_eq!(a.admin_token.len(), 64);
        let kc = fs::read_to_string(&a.kubeconfig_path).unwrap();
        assert!(kc.contains("server: https://127.0.0.1:6443"));
        // A new listen address gets a new serving certificate under the same CA.
        let c = ensure(d.path(), &"127.0.0.2:7443".parse().unwrap()).unwrap();
        assert_eq!(c.ca_pem, a.ca_pem);
        assert_ne!(c.cert_pem, a.cert_pem);
    }

    #[test]
    fn node_token_names_the_ca_and_node_certs_chain_to_it() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        let d = tempfile::tempdir().unwrap();
        let a = ensure(d.path(), &"127.0.0.1:6443".parse().unwrap()).unwrap();
        let (t, created) = ensure_node_token(d.path(), &a.ca_pem).unwrap();
        assert!(created);
        let (t2, created) = ensure_node_token(d.path(), &a.ca_pem).unwrap();
        assert!(!created);
        assert_eq!(t, t2);
        assert_eq!(t.ca_hash, ca_hash(&a.ca_pem));
        let text = fs::read_to_string(d.path().join("node-token")).unwrap();
        assert!(text.starts_with("K10"), "{text}");
        assert_eq!(JoinToken::parse(&text).unwrap(), t);
        assert!(JoinToken::parse(&t.secret).is_err());
        assert!(JoinToken::parse("K10abc::node:x").is_err());
        // A token of another CA is refused.
        assert!(ensure_node_token(d.path(), "another CA").is_err());
        let (cert, key) = issue_node_cert(d.path(), "n1", &["10.1.2.3".parse().unwrap()]).unwrap();
        assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
        // It verifies against the node CA for the node's address, and not against the
        // cluster CA (a node cannot pass for the API server).
        let verify = |ca_pem: &str, host: &str| {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let verifier =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            let der: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
            let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
            verifier
                .verify_server_cert(&der[0], &[], &name, &[], rustls::pki_types::UnixTime::now())
                .is_ok()
        };
        let (node_ca, _) = ensure_node_ca(d.path()).unwrap();
        assert_ne!(node_ca, a.ca_pem);
        assert!(verify(&node_ca, "10.1.2.3"));
        assert!(verify(&node_ca, "n1"));
        assert!(!verify(&node_ca, "127.0.0.1"));
        assert!(!verify(&a.ca_pem, "10.1.2.3"));
    }
}
