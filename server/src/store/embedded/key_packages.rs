//! The KeyPackage directory in the embedded store: the `key_packages`
//! keyspace (`len(user)(2) | user | device | 0x00 | reference(16)` ->
//! KeyPackage), the [`KeyPackageStore`] impl (counts on a snapshot; publishes
//! and claims queued to the writer, which alone removes, so a claim never
//! takes what another took) and the writer's side of both.

use std::collections::BTreeMap;

use fjall::Slice;

use super::EmbeddedStore;
use super::db::{Ks, backend};
use super::key;
use super::ops::{Done, Op};
use super::txn::Txn;
use crate::store::key_packages::{
    Claimed, KeyPackageStore, MAX_DEVICES_PER_USER, MAX_KEY_PACKAGES_PER_DEVICE, Published, reference,
};
use crate::store::{StoreError, StoreResult};

/// The key of every KeyPackage of `user`'s `device`, as a prefix.
fn device_prefix(op: &'static str, user: &str, device: &str) -> StoreResult<Vec<u8>> {
    let mut k = key::user_convs_prefix(op, user)?;
    k.extend_from_slice(device.as_bytes());
    k.push(0);
    Ok(k)
}

impl KeyPackageStore for EmbeddedStore {
    async fn publish_key_packages(&self, user: &str, device: &str, packages: &[Vec<u8>]) -> StoreResult<Published> {
        let op = Op::PublishKeyPackages { user: user.into(), device: device.into(), packages: packages.to_vec() };
        match self.submit(op).await? {
            Done::Published(p) => Ok(p),
            _ => Err(StoreError::Corrupt { table: "key_packages", detail: "publish answered otherwise".into() }),
        }
    }

    async fn key_package_count(&self, user: &str, device: &str) -> StoreResult<u32> {
        const OP: &str = "key_package_count";
        let held = self.scan_prefix(OP, Ks::KeyPackages, &device_prefix(OP, user, device)?)?.len();
        Ok(u32::try_from(held).unwrap_or(u32::MAX))
    }

    async fn claim_key_packages(&self, user: &str, skip: &[String]) -> StoreResult<Vec<Claimed>> {
        match self.submit(Op::ClaimKeyPackages { user: user.into(), skip: skip.to_vec() }).await? {
            Done::Claimed(c) => Ok(c),
            _ => Err(StoreError::Corrupt { table: "key_packages", detail: "claim answered otherwise".into() }),
        }
    }

    async fn forget_key_packages(&self, user: &str) -> StoreResult<()> {
        self.submit(Op::ForgetKeyPackages { user: user.into() }).await.map(|_| ())
    }
}

impl Txn<'_> {
    /// The keys of `user`'s KeyPackages held now (staged removals of this
    /// group left out), by device.
    fn held_key_packages(&self, op: &'static str, user: &str) -> StoreResult<BTreeMap<String, Vec<Vec<u8>>>> {
        let prefix = key::user_convs_prefix(op, user)?;
        let mut by_device: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for entry in self.db().ks(Ks::KeyPackages).prefix(&prefix) {
            let k = entry.key().map_err(backend(op))?.to_vec();
            let rest = &k[prefix.len()..];
            let Some(end) = rest.iter().position(|&b| b == 0) else {
                return Err(StoreError::Corrupt { table: "key_packages", detail: "a key has no device".into() });
            };
            let device = String::from_utf8_lossy(&rest[..end]).into_owned();
            if self.get(Ks::KeyPackages, &k)?.is_some() {
                by_device.entry(device).or_default().push(k);
            }
        }
        Ok(by_device)
    }

    /// Stages `packages` of `user`'s `device` within the caps (see
    /// [`KeyPackageStore::publish_key_packages`]).
    pub(super) fn publish_key_packages(&mut self, user: &str, device: &str, packages: &[Vec<u8>]) -> StoreResult<Done> {
        const OP: &str = "publish_key_packages";
        let held = self.held_key_packages(OP, user)?;
        let mine = held.get(device).map_or(&[][..], Vec::as_slice);
        if mine.is_empty() && held.len() >= MAX_DEVICES_PER_USER {
            return Ok(Done::Published(Published::TooManyDevices));
        }
        let prefix = device_prefix(OP, user, device)?;
        let mut new: BTreeMap<Vec<u8>, &Vec<u8>> = BTreeMap::new();
        for p in packages {
            let mut k = prefix.clone();
            k.extend_from_slice(&reference(p));
            if !mine.contains(&k) {
                new.insert(k, p);
            }
        }
        let total = u32::try_from(mine.len() + new.len()).unwrap_or(u32::MAX);
        if total > MAX_KEY_PACKAGES_PER_DEVICE {
            return Ok(Done::Published(Published::Full(u32::try_from(mine.len()).unwrap_or(u32::MAX))));
        }
        for (k, p) in new {
            self.put(Ks::KeyPackages, &k, Slice::from(p.as_slice()));
        }
        Ok(Done::Published(Published::Held(total)))
    }

    /// Removes every KeyPackage of `user`.
    pub(super) fn forget_key_packages(&mut self, user: &str) -> StoreResult<Done> {
        for k in self.held_key_packages("forget_key_packages", user)?.into_values().flatten() {
            self.remove(Ks::KeyPackages, &k);
        }
        Ok(Done::Unit)
    }

    /// Removes and returns one KeyPackage of each of `user`'s devices but those in `skip`.
    pub(super) fn claim_key_packages(&mut self, user: &str, skip: &[String]) -> StoreResult<Done> {
        const OP: &str = "claim_key_packages";
        let mut claimed = Vec::new();
        for (device_id, keys) in self.held_key_packages(OP, user)? {
            if skip.contains(&device_id) {
                continue;
            }
            let Some(k) = keys.into_iter().next() else { continue };
            let Some(package) = self.get(Ks::KeyPackages, &k)? else { continue };
            self.remove(Ks::KeyPackages, &k);
            claimed.push(Claimed { device_id, package: package.to_vec() });
        }
        Ok(Done::Claimed(claimed))
    }
}
