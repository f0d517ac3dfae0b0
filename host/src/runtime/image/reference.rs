//! Image references: Docker's normalisation (`busybox` → `docker.io/library/busybox:latest`),
//! bracketed IPv6 registries, digests.

use oci_client::Reference;

use super::ImageError;

/// Parses and normalises an image reference.
pub(super) fn parse(reference: &str) -> Result<Reference, ImageError> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(ImageError::Invalid("empty image reference".into()));
    }
    let parsed = crate::plugin::oci::parse_reference(reference)
        .map_err(|e| ImageError::Invalid(format!("{e:#}")))?;
    if let Some(digest) = parsed.digest() {
        check_sha256(digest).map_err(|e| {
            ImageError::Invalid(format!("invalid image reference {reference:?}: {e}"))
        })?;
    }
    Ok(parsed)
}

/// The normalised form of an image reference: `busybox` → `docker.io/library/busybox:latest`,
/// `a/b:tag` → `docker.io/a/b:tag`, `host:5000/x` → `host:5000/x:latest`, and
/// `…@sha256:…` kept pinned.
pub fn normalize_reference(reference: &str) -> Result<String, ImageError> {
    Ok(parse(reference)?.whole())
}

/// `registry/repository` of a normalised reference (empty for a bare digest).
pub(super) fn repository_of(reference: &str) -> String {
    if bare_digest(reference).is_some() {
        return String::new();
    }
    match parse(reference) {
        Ok(r) => format!("{}/{}", r.registry(), r.repository()),
        Err(_) => String::new(),
    }
}

/// `sha256:<hex>` when `s` is a bare digest (with or without the `sha256:` prefix, as long
/// as it has all 64 hex digits).
pub(super) fn bare_digest(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| format!("sha256:{hex}"))
}

/// Accepts exactly `sha256:` followed by 64 lowercase hex digits.
pub(super) fn check_sha256(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{digest:?} is not a sha256 digest (sha256:<64 lowercase hex digits>)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalisation() {
        let n = |r: &str| normalize_reference(r).unwrap();
        assert_eq!(n("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(n("a/b:tag"), "docker.io/a/b:tag");
        assert_eq!(
            n("docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            n("index.docker.io/library/busybox:1"),
            "docker.io/library/busybox:1"
        );
        assert_eq!(n("127.0.0.1:5000/busybox:1"), "127.0.0.1:5000/busybox:1");
        assert_eq!(n("localhost:5000/x/y"), "localhost:5000/x/y:latest");
        assert_eq!(n("quay.io/a/b:c"), "quay.io/a/b:c");
        assert_eq!(n("[::1]:5000/busybox:2"), "[::1]:5000/busybox:2");
        assert_eq!(
            n(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            n(&format!("127.0.0.1:5000/bb:1@{D}")),
            format!("127.0.0.1:5000/bb:1@{D}")
        );
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "  ",
            "library/UPPER",
            "busybox@sha256:abc",
            "a b",
            "busybox@md5:00",
        ] {
            assert!(
                matches!(normalize_reference(bad), Err(ImageError::Invalid(_))),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn digests() {
        assert_eq!(bare_digest(D).as_deref(), Some(D));
        assert_eq!(bare_digest(&D[7..]).as_deref(), Some(D));
        assert_eq!(bare_digest("busybox"), None);
        assert_eq!(
            repository_of("docker.io/library/busybox:latest"),
            "docker.io/library/busybox"
        );
        assert_eq!(repository_of(D), "");
        assert!(check_sha256(D).is_ok());
        assert!(check_sha256("sha256:ABC").is_err());
    }
}
