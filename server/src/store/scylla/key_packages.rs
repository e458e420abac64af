//! The KeyPackage directory in ScyllaDB: the `key_packages` table (one
//! partition per user, rows by device and reference). A claim takes each
//! device's first KeyPackage by a lightweight transaction (`DELETE ... IF
//! EXISTS`): of two claims racing for one, only one sees it applied, and the
//! other moves on to the device's next. Publishes are plain inserts after a
//! read of what the user holds, so the caps hold for one device publishing
//! at a time (as a device does). It touches no other table.

use std::collections::BTreeMap;

use super::{ScyllaStore, StoreResult};
use crate::store::key_packages::{
    Claimed, KeyPackageStore, MAX_DEVICES_PER_USER, MAX_KEY_PACKAGES_PER_DEVICE, Published, reference,
};

/// `user`'s KeyPackages by device: `(reference, package)` in reference order.
type Held = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl ScyllaStore {
    async fn held_key_packages(&self, op: &'static str, user: &str) -> StoreResult<Held> {
        let user = user.to_owned();
        self.call(op, false, move |i| async move {
            let rows: Vec<(String, Vec<u8>, Vec<u8>)> = i.rows(op, &i.st.select_key_packages, (user,), None).await?;
            let mut held = Held::new();
            for (device, r, package) in rows {
                held.entry(device).or_default().push((r, package));
            }
            Ok(held)
        })
        .await
    }
}

impl KeyPackageStore for ScyllaStore {
    async fn publish_key_packages(&self, user: &str, device: &str, packages: &[Vec<u8>]) -> StoreResult<Published> {
        const OP: &str = "publish_key_packages";
        let held = self.held_key_packages(OP, user).await?;
        let mine = held.get(device).map_or(&[][..], Vec::as_slice);
        if mine.is_empty() && held.len() >= MAX_DEVICES_PER_USER {
            return Ok(Published::TooManyDevices);
        }
        let mut new: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for p in packages {
            let r = reference(p).to_vec();
            if !mine.iter().any(|(have, _)| *have == r) {
                new.insert(r, p.clone());
            }
        }
        let total = count(mine.len() + new.len());
        if total > MAX_KEY_PACKAGES_PER_DEVICE {
            return Ok(Published::Full(count(mine.len())));
        }
        let (user, device) = (user.to_owned(), device.to_owned());
        self.call(OP, true, move |i| async move {
            for (r, package) in new {
                i.exec(OP, &i.st.insert_key_package, (user.clone(), device.clone(), r, package), None).await?;
            }
            Ok(())
        })
        .await?;
        Ok(Published::Held(total))
    }

    async fn key_package_count(&self, user: &str, device: &str) -> StoreResult<u32> {
        const OP: &str = "key_package_count";
        let (user, device) = (user.to_owned(), device.to_owned());
        self.call(OP, false, move |i| async move {
            let rows: Vec<(Vec<u8>,)> = i.rows(OP, &i.st.select_key_package_refs, (user, device), None).await?;
            Ok(count(rows.len()))
        })
        .await
    }

    async fn claim_key_packages(&self, user: &str, skip: &[String]) -> StoreResult<Vec<Claimed>> {
        const OP: &str = "claim_key_packages";
        let mut held = self.held_key_packages(OP, user).await?;
        held.retain(|device, _| !skip.contains(device));
        let user = user.to_owned();
        self.call(OP, true, move |i| async move {
            let mut claimed = Vec::new();
            for (device_id, packages) in held {
                for (r, package) in packages {
                    let stmt = &i.st.delete_key_package_if_exists;
                    let result = i.exec(OP, stmt, (user.clone(), device_id.clone(), r), None).await?;
                    if i.applied(OP, stmt, result)? {
                        claimed.push(Claimed { device_id: device_id.clone(), package });
                        break;
                    }
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn forget_key_packages(&self, user: &str) -> StoreResult<()> {
        const OP: &str = "forget_key_packages";
        let user = user.to_owned();
        self.call(OP, true, move |i| async move {
            i.exec(OP, &i.st.delete_key_packages_of_user, (user,), None).await.map(|_| ())
        })
        .await
    }
}
