//! Restoring a backup (effects): the manifest is read and checked, then every
//! file's size and SHA-256 and every partition file's structure and count,
//! all before anything is written; then the store is filled in
//! `data_dir/store` (with a new epoch, so clients resync), and the blobs and
//! the audit chain id are copied. The target data directory must be empty.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::format::{FormatError, MANIFEST, Manifest, RecordReader, check_file, digest};
use super::{BackupError, io_at, require_empty};
use crate::store::embedded::Loader;

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The restored store's new epoch.
    pub epoch: String,
    /// Records loaded, all keyspaces.
    pub records: u64,
    /// Files copied (blobs, chain id).
    pub files: usize,
    /// When the snapshot was taken, ms since the Unix epoch.
    pub snapshot_ms: u64,
}

/// Reads and checks `from/manifest.json`.
pub fn read_manifest(from: &Path) -> Result<Manifest, BackupError> {
    let path = from.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FormatError::Manifest(format!(
                "{} is missing: the backup is incomplete (the manifest is written last)",
                path.display()
            ))
            .into());
        }
        Err(e) => return Err(io_at(&path)(e)),
    };
    Ok(Manifest::parse(&text)?)
}

fn open(from: &Path, rel: &str) -> Result<BufReader<File>, BackupError> {
    let path = from.join(rel);
    match File::open(&path) {
        Ok(f) => Ok(BufReader::with_capacity(256 << 10, f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(FormatError::Manifest(format!("{rel} is listed but missing from the backup")).into())
        }
        Err(e) => Err(io_at(&path)(e)),
    }
}

/// Checks every file of the backup in `from` against `manifest`, reading each once.
pub fn verify(from: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    for p in &manifest.partitions {
        if !Loader::knows(&p.name) {
            return Err(FormatError::Manifest(format!("partition {} is unknown to this chatd", p.name)).into());
        }
        let actual = digest(&p.file, open(from, &p.file)?)?;
        check_file(&p.file, (&p.sha256, p.bytes), (&actual.0, actual.1))?;
        let mut r = RecordReader::new(open(from, &p.file)?, &p.file)?;
        while r.next_record()?.is_some() {}
        if r.count() != p.records {
            return Err(FormatError::BadCount { file: p.file.clone(), said: p.records, read: r.count() }.into());
        }
    }
    for f in &manifest.files {
        let actual = digest(&f.path, open(from, &f.path)?)?;
        check_file(&f.path, (&f.sha256, f.bytes), (&actual.0, actual.1))?;
    }
    Ok(())
}

/// Restores the backup in `from` into the empty (or absent) `data_dir`.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Restored, BackupError> {
    require_empty(data_dir, "data directory")?;
    let manifest = read_manifest(from)?;
    verify(from, &manifest)?;
    crate::files::private_dir(data_dir).map_err(io_at(data_dir))?;
    let mut loader = Loader::create(&data_dir.join("store"))?;
    let mut records = 0;
    for p in &manifest.partitions {
        let mut r = RecordReader::new(open(from, &p.file)?, &p.file)?;
        while let Some((k, v)) = r.next_record()? {
            loader.insert(&p.name, k, v)?;
            records += 1;
        }
    }
    let epoch = loader.finish()?;
    for f in &manifest.files {
        let to = data_dir.join(&f.path);
        if let Some(parent) = to.parent() {
            crate::files::private_dir(parent).map_err(io_at(parent))?;
        }
        let mut dst = super::format::Hashing::new(File::create(&to).map_err(io_at(&to))?);
        std::io::copy(&mut open(from, &f.path)?, &mut dst).map_err(io_at(&to))?;
        let (dst, sha, bytes) = dst.finish();
        dst.sync_all().map_err(io_at(&to))?;
        // Changed since it was verified: say so rather than keep a wrong file.
        check_file(&f.path, (&f.sha256, f.bytes), (&sha, bytes))?;
    }
    Ok(Restored { epoch, records, files: manifest.files.len(), snapshot_ms: manifest.snapshot_ms })
}
