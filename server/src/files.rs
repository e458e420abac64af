//! Files only the server can read: the data directory holds privileged text
//! (the store), keys and certificates, so it is made `0700` and everything
//! `chatd` creates is `0600` (`0700` for directories), whatever the umask it
//! was started with. It owns no file format.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Makes every file and directory this process creates from now on private
/// to its user (umask `077`). `chatd` calls it first thing; a library user
/// decides for its own process.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` (and its parents) as `0700`, or tightens an existing one that
/// others could enter. Returns whether an existing directory was tightened.
pub fn private_dir(dir: &Path) -> io::Result<bool> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mode = m.permissions().mode();
            if mode & 0o077 == 0 {
                return Ok(false);
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
            Ok(true)
        }
        Ok(_) => Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} is not a directory", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The secret in the file at `path`, made on first use by `make` (the file
/// `0600` and written once: `create_new`, so two processes starting at once
/// never overwrite each other's; its directory private, see [`private_dir`]).
pub fn secret_file(path: &Path, make: impl FnOnce() -> Vec<u8>) -> io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            let secret = make();
            f.write_all(&secret).and_then(|()| f.sync_all())?;
            Ok(secret)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_directories_are_private() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b");
        assert!(!private_dir(&fresh).unwrap());
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(private_dir(&open).unwrap(), "an existing open directory is tightened");
        assert_eq!(std::fs::metadata(&open).unwrap().permissions().mode() & 0o777, 0o700);
        let file = root.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(private_dir(&file).is_err());
    }
}
