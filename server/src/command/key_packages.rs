//! The MLS KeyPackage directory of end-to-end encrypted conversations:
//! a device publishes KeyPackages and asks how many it has left; a member
//! about to add people to an E2E group claims one KeyPackage of each of
//! their devices. The server never reads a KeyPackage: the client that
//! claims one checks that its credential names the user it asked for. Each
//! is handed out once (the store removes it as it is claimed). Service
//! accounts take no part (they never join E2E conversations).

use super::request::{Requester, err, store_err};
use crate::shard::UserRate;
use crate::store::key_packages::{
    KeyPackageStore, MAX_DEVICES_PER_USER, MAX_KEY_PACKAGE_BYTES, MAX_KEY_PACKAGES_PER_DEVICE, Published,
};
use chat_protocol::WireError;
use chat_protocol::v1::{self, ErrorCode, Role, reply};

/// Most users one claim names.
pub const MAX_CLAIM_USERS: usize = 50;

fn no_service(req: &Requester) -> Result<(), WireError> {
    if req.caller.role == Role::Service {
        return Err(err(ErrorCode::Forbidden, "service accounts take no part in end-to-end encryption"));
    }
    Ok(())
}

fn device(id: &str) -> Result<(), WireError> {
    chat_protocol::limits::check_device_id(id).map_err(|e| e.to_wire())
}

fn count(device_id: String, available: u32) -> reply::Result {
    reply::Result::KeyPackageCount(v1::KeyPackageCount { device_id, available })
}

/// Checks a publish's shape (pure): its device id, 1-100 KeyPackages of
/// 1-4,096 bytes each.
pub fn check_publish(p: &v1::PublishKeyPackages) -> Result<(), WireError> {
    device(&p.device_id)?;
    let n = p.key_packages.len();
    if n == 0 || n > MAX_KEY_PACKAGES_PER_DEVICE as usize {
        return Err(err(
            ErrorCode::InvalidArgument,
            format!("key_packages: 1 to {MAX_KEY_PACKAGES_PER_DEVICE} per publish, not {n}"),
        ));
    }
    if let Some((i, k)) =
        p.key_packages.iter().enumerate().find(|(_, k)| k.is_empty() || k.len() > MAX_KEY_PACKAGE_BYTES)
    {
        return Err(err(
            ErrorCode::InvalidArgument,
            format!("key_packages[{i}]: {} bytes, not 1 to {MAX_KEY_PACKAGE_BYTES}", k.len()),
        ));
    }
    Ok(())
}

/// A device of the caller publishes KeyPackages; answered with how many it holds.
pub async fn publish(req: &Requester, p: v1::PublishKeyPackages) -> Result<reply::Result, WireError> {
    no_service(req)?;
    check_publish(&p)?;
    let packages: Vec<Vec<u8>> = p.key_packages.iter().map(|k| k.to_vec()).collect();
    let store = req.store();
    match store.publish_key_packages(&req.caller.user, &p.device_id, &packages).await.map_err(store_err)? {
        Published::Held(n) => Ok(count(p.device_id, n)),
        Published::Full(held) => Err(WireError::limited(
            ErrorCode::TooManyKeyPackages,
            "max_key_packages_per_device",
            format!("device {} holds {held} KeyPackages; at most {MAX_KEY_PACKAGES_PER_DEVICE} are kept", p.device_id),
            None,
        )),
        Published::TooManyDevices => Err(WireError::limited(
            ErrorCode::TooManyKeyPackages,
            "max_devices_per_user",
            format!("at most {MAX_DEVICES_PER_USER} devices of one user hold KeyPackages"),
            None,
        )),
    }
}

/// How many KeyPackages a device of the caller holds.
pub async fn count_left(req: &Requester, c: v1::CountKeyPackages) -> Result<reply::Result, WireError> {
    no_service(req)?;
    device(&c.device_id)?;
    let n = req.store().key_package_count(&req.caller.user, &c.device_id).await.map_err(store_err)?;
    Ok(count(c.device_id, n))
}

/// The users a claim names, checked and once each, in order (pure).
pub fn claim_users(c: &v1::ClaimKeyPackages) -> Result<Vec<String>, WireError> {
    let mut users: Vec<String> = Vec::with_capacity(c.user_ids.len());
    for u in &c.user_ids {
        chat_protocol::limits::check_user_id(u).map_err(|e| e.to_wire())?;
        if !users.contains(u) {
            users.push(u.clone());
        }
    }
    if users.is_empty() || users.len() > MAX_CLAIM_USERS {
        return Err(err(
            ErrorCode::InvalidArgument,
            format!("user_ids: 1 to {MAX_CLAIM_USERS} users per claim, not {}", users.len()),
        ));
    }
    Ok(users)
}

/// Most devices a claim may skip (a group's leaves: 50 users × 10 devices).
const MAX_SKIP_DEVICES: usize = MAX_CLAIM_USERS * MAX_DEVICES_PER_USER;

/// The devices a claim leaves out, as (user, device), each checked.
fn skip_devices(c: &v1::ClaimKeyPackages) -> Result<Vec<(String, String)>, WireError> {
    if c.skip_devices.len() > MAX_SKIP_DEVICES {
        return Err(err(
            ErrorCode::InvalidArgument,
            format!("skip_devices: at most {MAX_SKIP_DEVICES}, not {}", c.skip_devices.len()),
        ));
    }
    c.skip_devices
        .iter()
        .map(|s| {
            let bad = || err(ErrorCode::InvalidArgument, format!("skip_devices: {s:?} is not user/device"));
            let (user, device) = s.rsplit_once('/').ok_or_else(bad)?;
            chat_protocol::limits::check_user_id(user).map_err(|_| bad())?;
            chat_protocol::limits::check_device_id(device).map_err(|_| bad())?;
            Ok((user.to_owned(), device.to_owned()))
        })
        .collect()
}

/// One KeyPackage of each device of each user named (users of the
/// directory; counted against `limits.key_claims_per_hour`). Users whose
/// devices have none left are named in `unavailable`; if that is all of
/// them, the claim fails with `NO_KEY_PACKAGES`.
pub async fn claim(req: &Requester, c: v1::ClaimKeyPackages) -> Result<reply::Result, WireError> {
    no_service(req)?;
    let users = claim_users(&c)?;
    let skip = skip_devices(&c)?;
    super::users::require_known(req.store(), &users).await?;
    req.ctx.check_user_rate(UserRate::KeyClaims, &req.caller.user).await?;
    let mut out = v1::ClaimedKeyPackages::default();
    for user in users {
        let skipped: Vec<String> = skip.iter().filter(|(u, _)| *u == user).map(|(_, d)| d.clone()).collect();
        let claimed = req.store().claim_key_packages(&user, &skipped).await.map_err(store_err)?;
        if claimed.is_empty() {
            out.unavailable.push(user);
            continue;
        }
        out.key_packages.extend(claimed.into_iter().map(|k| v1::ClaimedKeyPackage {
            user_id: user.clone(),
            device_id: k.device_id,
            key_package: k.package.into(),
        }));
    }
    if out.key_packages.is_empty() {
        return Err(err(
            ErrorCode::NoKeyPackages,
            format!("no KeyPackage left for {}: none of their devices has published one", out.unavailable.join(", ")),
        ));
    }
    Ok(reply::Result::KeyPackages(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(n: usize, len: usize) -> v1::PublishKeyPackages {
        v1::PublishKeyPackages { device_id: "phone-1".into(), key_packages: vec![vec![7u8; len].into(); n] }
    }

    #[test]
    fn skipped_devices_are_user_slash_device() {
        let claim = |skip: &[&str]| v1::ClaimKeyPackages {
            user_ids: vec!["ann".into()],
            skip_devices: skip.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(skip_devices(&claim(&["ann/phone-1", "bob/web-0a"])).unwrap().len(), 2);
        for bad in ["ann", "ann/", "/phone", "ann/bad device"] {
            let e = skip_devices(&claim(&[bad])).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
            assert!(e.message.contains("is not user/device"), "{}", e.message);
        }
        let many: Vec<String> = (0..=MAX_SKIP_DEVICES).map(|i| format!("ann/d{i}")).collect();
        let c = v1::ClaimKeyPackages { user_ids: vec!["ann".into()], skip_devices: many };
        assert!(skip_devices(&c).unwrap_err().message.contains("at most 500"));
    }

    #[test]
    fn a_publish_is_checked_whole() {
        assert!(check_publish(&publish(1, 300)).is_ok());
        assert!(check_publish(&publish(100, MAX_KEY_PACKAGE_BYTES)).is_ok());
        let code = |p: &v1::PublishKeyPackages| check_publish(p).unwrap_err().code;
        assert_eq!(code(&publish(0, 300)), ErrorCode::InvalidArgument);
        assert_eq!(code(&publish(101, 300)), ErrorCode::InvalidArgument);
        let e = check_publish(&publish(2, MAX_KEY_PACKAGE_BYTES + 1)).unwrap_err();
        assert!(e.message.starts_with("key_packages[0]: 4097 bytes"), "{}", e.message);
        assert_eq!(code(&publish(1, 0)), ErrorCode::InvalidArgument);
        for bad in ["", "phone/1", "a b", &"x".repeat(65)] {
            let p = v1::PublishKeyPackages { device_id: bad.into(), ..publish(1, 10) };
            assert_eq!(code(&p), ErrorCode::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn a_claim_names_each_user_once_within_the_cap() {
        let c = |ids: &[&str]| v1::ClaimKeyPackages {
            user_ids: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(claim_users(&c(&["bob", "ann", "bob"])).unwrap(), ["bob", "ann"]);
        assert_eq!(claim_users(&c(&[])).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(claim_users(&c(&["bad id"])).unwrap_err().code, ErrorCode::InvalidArgument);
        let many: Vec<String> = (0..=MAX_CLAIM_USERS).map(|i| format!("u{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(claim_users(&c(&refs)).unwrap_err().message.contains("not 51"));
    }
}
