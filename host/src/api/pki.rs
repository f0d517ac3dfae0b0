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
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tugboat-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
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
}
