//! The device file: the user and device ids, the signing key's public half
//! (the pair itself is in the MLS storage), when the device was made, the
//! seq applied per conversation
//! and openmls's storage (every key and group state) as length-prefixed
//! records. Written to a temporary file (0600) and renamed over the old one,
//! so a crash leaves the old state or the new, never half of one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use openmls::prelude::OpenMlsProvider as _;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

use super::{CIPHERSUITE, Device, MlsError};

/// Version 2 adds when the device was made; version 1 files read as made at 0.
const MAGIC: &[u8] = b"chatd-mls-device-2\n";
const MAGIC_1: &[u8] = b"chatd-mls-device-1\n";

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*head))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// Writes `d` to `path`.
pub(super) fn save(d: &Device, path: &Path) -> Result<(), MlsError> {
    let fail = |why: String| MlsError::File { path: path.to_path_buf(), why };
    let mut out = MAGIC.to_vec();
    put(&mut out, d.user.as_bytes());
    put(&mut out, d.device.as_bytes());
    put(&mut out, &d.signer.to_public_vec());
    out.extend_from_slice(&d.created_ms.to_be_bytes());
    out.extend_from_slice(&(d.applied.len() as u64).to_be_bytes());
    for (conv, seq) in &d.applied {
        out.extend_from_slice(&conv.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
    }
    let values = d.provider.storage().values.read().map_err(|_| fail("storage lock poisoned".into()))?;
    out.extend_from_slice(&(values.len() as u64).to_be_bytes());
    for (k, v) in values.iter() {
        put(&mut out, k);
        put(&mut out, v);
    }
    drop(values);
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(|e| fail(e.to_string()))?;
    f.write_all(&out).and_then(|()| f.sync_all()).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(e.to_string()))
}

/// Reads the device saved at `path`.
pub(super) fn load(path: &Path) -> Result<Device, MlsError> {
    let fail = |why: &str| MlsError::File { path: path.to_path_buf(), why: why.into() };
    let bytes = std::fs::read(path).map_err(|e| fail(&e.to_string()))?;
    let (body, v2) = match (bytes.strip_prefix(MAGIC), bytes.strip_prefix(MAGIC_1)) {
        (Some(b), _) => (b, true),
        (None, Some(b)) => (b, false),
        (None, None) => return Err(fail("not a chatd MLS device file")),
    };
    let mut r = Reader(body);
    let truncated = || fail("truncated");
    let user = r.string().ok_or_else(truncated)?;
    let device = r.string().ok_or_else(truncated)?;
    let public = r.bytes().ok_or_else(truncated)?.to_vec();
    let created_ms = if v2 { r.u64().ok_or_else(truncated)? } else { 0 };
    let mut applied = BTreeMap::new();
    for _ in 0..r.u64().ok_or_else(truncated)? {
        let conv = r.u64().ok_or_else(truncated)?;
        applied.insert(conv, r.u64().ok_or_else(truncated)?);
    }
    let provider = OpenMlsRustCrypto::default();
    {
        let mut values = provider.storage().values.write().map_err(|_| fail("storage lock poisoned"))?;
        for _ in 0..r.u64().ok_or_else(truncated)? {
            let k = r.bytes().ok_or_else(truncated)?.to_vec();
            values.insert(k, r.bytes().ok_or_else(truncated)?.to_vec());
        }
    }
    let signer = SignatureKeyPair::read(provider.storage(), &public, CIPHERSUITE.signature_algorithm())
        .ok_or_else(|| fail("the signing key is missing"))?;
    let groups = std::collections::HashMap::new();
    Ok(Device { user, device, provider, signer, applied, created_ms, path: Some(path.to_path_buf()), groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_reopens_as_it_was_and_a_damaged_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("chatd-mls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("device.mls");
        let _ = std::fs::remove_file(&path);
        let mut d = Device::create(&path, "alice", "laptop").unwrap();
        d.applied.insert(7, 42);
        let packages = d.new_key_packages(2).unwrap();
        assert_eq!(packages.len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = Device::open(&path).unwrap();
        assert_eq!((again.user(), again.device_id()), ("alice", "laptop"));
        assert_eq!(again.signer.to_public_vec(), d.signer.to_public_vec());
        assert_eq!(again.applied.get(&7), Some(&42));
        assert!(Device::create(&path, "alice", "laptop").is_err(), "never overwritten");

        assert_eq!(again.created_ms, d.created_ms);
        assert!(again.created_ms > 0);

        // A version-1 file (no creation time) still opens, as made at 0.
        let bytes = std::fs::read(&path).unwrap();
        let at = MAGIC.len() + 8 + "alice".len() + 8 + "laptop".len() + 8 + d.signer.to_public_vec().len();
        let v1 = [MAGIC_1, &bytes[MAGIC.len()..at], &bytes[at + 8..]].concat();
        std::fs::write(&path, &v1).unwrap();
        let old = Device::open(&path).unwrap();
        assert_eq!((old.created_ms, old.applied.get(&7)), (0, Some(&42)));
        std::fs::write(&path, &bytes).unwrap();

        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = Device::open(&path).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&path, b"something else").unwrap();
        assert!(Device::open(&path).unwrap_err().to_string().contains("not a chatd MLS device file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
