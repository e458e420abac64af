//! The MLS KeyPackage directory as stored: each device of a user publishes
//! KeyPackages (opaque bytes, kept once each under a reference derived from
//! their content), and a claim takes one of each of a user's devices, so
//! that no KeyPackage is ever handed out twice. The [`KeyPackageStore`]
//! contract every backend implements (embedded: the `key_packages`
//! keyspace; ScyllaDB: the `key_packages` table, claims by lightweight
//! transaction), with [`Store`] choosing the configured one. It does not own
//! who may publish or claim (that is `crate::command::key_packages`).

use super::{Store, StoreResult};

/// Longest KeyPackage kept, in bytes (openmls's are ~300-500 with a basic
/// credential).
pub const MAX_KEY_PACKAGE_BYTES: usize = 4096;
/// Most KeyPackages one device holds at once.
pub const MAX_KEY_PACKAGES_PER_DEVICE: u32 = 100;
/// Most devices of one user holding KeyPackages at once.
pub const MAX_DEVICES_PER_USER: usize = 10;

/// The reference a KeyPackage is kept under: the first 16 bytes of its SHA-256.
pub fn reference(package: &[u8]) -> [u8; 16] {
    let digest = ring::digest::digest(&ring::digest::SHA256, package);
    let mut r = [0; 16];
    r.copy_from_slice(&digest.as_ref()[..16]);
    r
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Written: the device now holds this many.
    Held(u32),
    /// Nothing written: the device would hold more than the cap (it holds this many).
    Full(u32),
    /// Nothing written: the user has `MAX_DEVICES_PER_USER` other devices holding some.
    TooManyDevices,
}

/// One KeyPackage a claim took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The device it was published by.
    pub device_id: String,
    /// The KeyPackage.
    pub package: Vec<u8>,
}

/// Storage of the KeyPackage directory. Every write is durable on return.
#[allow(async_fn_in_trait)]
pub trait KeyPackageStore: Send + Sync + 'static {
    /// Adds `packages` (at most [`MAX_KEY_PACKAGE_BYTES`] each) of `user`'s
    /// `device`; one already held is kept once. All or nothing within the
    /// cap of [`MAX_KEY_PACKAGES_PER_DEVICE`] and [`MAX_DEVICES_PER_USER`].
    async fn publish_key_packages(&self, user: &str, device: &str, packages: &[Vec<u8>]) -> StoreResult<Published>;

    /// How many KeyPackages `user`'s `device` holds.
    async fn key_package_count(&self, user: &str, device: &str) -> StoreResult<u32>;

    /// Takes one KeyPackage of each of `user`'s devices that holds any
    /// (those in `skip` left out), by device id; each taken one is removed,
    /// so two claims never get the same.
    async fn claim_key_packages(&self, user: &str, skip: &[String]) -> StoreResult<Vec<Claimed>>;

    /// Removes every KeyPackage of every device of `user` (a GDPR erasure).
    async fn forget_key_packages(&self, user: &str) -> StoreResult<()>;
}

impl KeyPackageStore for Store {
    async fn publish_key_packages(&self, user: &str, device: &str, packages: &[Vec<u8>]) -> StoreResult<Published> {
        super::delegate!(self, s => s.publish_key_packages(user, device, packages).await)
    }

    async fn key_package_count(&self, user: &str, device: &str) -> StoreResult<u32> {
        super::delegate!(self, s => s.key_package_count(user, device).await)
    }

    async fn claim_key_packages(&self, user: &str, skip: &[String]) -> StoreResult<Vec<Claimed>> {
        super::delegate!(self, s => s.claim_key_packages(user, skip).await)
    }

    async fn forget_key_packages(&self, user: &str) -> StoreResult<()> {
        super::delegate!(self, s => s.forget_key_packages(user).await)
    }
}
