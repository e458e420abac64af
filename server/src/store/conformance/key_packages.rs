//! Conformance cases of the KeyPackage directory: publishes kept once each
//! within the caps, one KeyPackage per device per claim and never the same
//! twice (racing claims included), and everything kept across a reopen.

use super::harness::ConformanceFactory;
use crate::store::key_packages::{
    Claimed, KeyPackageStore, MAX_DEVICES_PER_USER, MAX_KEY_PACKAGES_PER_DEVICE, Published,
};

fn packages(device: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("kp/{device}/{i}").into_bytes()).collect()
}

/// Publishes count per device and keep a KeyPackage once; the caps refuse
/// whole publishes; a claim takes one per device that holds any, each once,
/// also when claims race; a reopen keeps what is left.
pub async fn key_packages_are_claimed_once<F: ConformanceFactory>(factory: &mut F)
where
    F::Store: KeyPackageStore,
{
    let store = factory.fresh().await;
    assert_eq!(store.key_package_count("ann", "phone").await.expect("count"), 0);
    assert_eq!(store.claim_key_packages("ann", &[]).await.expect("claim none"), vec![]);
    let phone = packages("phone", 3);
    assert_eq!(store.publish_key_packages("ann", "phone", &phone).await.expect("publish"), Published::Held(3));
    // Published again (a retry): kept once.
    assert_eq!(store.publish_key_packages("ann", "phone", &phone[..2]).await.expect("again"), Published::Held(3));
    let laptop = packages("laptop", 1);
    assert_eq!(store.publish_key_packages("ann", "laptop", &laptop).await.expect("laptop"), Published::Held(1));
    assert_eq!(store.key_package_count("ann", "phone").await.expect("count"), 3);
    assert_eq!(store.key_package_count("bob", "phone").await.expect("other user"), 0);

    // Past the device cap: nothing of it is written.
    let many = packages("phone-more", MAX_KEY_PACKAGES_PER_DEVICE as usize);
    assert_eq!(store.publish_key_packages("ann", "phone", &many).await.expect("full"), Published::Full(3));
    assert_eq!(store.key_package_count("ann", "phone").await.expect("count"), 3);

    // One per device, by device id, each handed out once.
    let first = store.claim_key_packages("ann", &[]).await.expect("claim");
    assert_eq!(first.iter().map(|c| c.device_id.as_str()).collect::<Vec<_>>(), ["laptop", "phone"]);
    assert_eq!(first[0], Claimed { device_id: "laptop".into(), package: laptop[0].clone() });
    assert!(phone.contains(&first[1].package));
    let second = store.claim_key_packages("ann", &[]).await.expect("claim again");
    assert_eq!(second.len(), 1, "the laptop has none left: {second:?}");
    assert_ne!(second[0].package, first[1].package, "never the same KeyPackage twice");
    assert_eq!(store.key_package_count("ann", "phone").await.expect("count"), 1);

    // A claim may leave out devices (the claimer's group has them already).
    let skipped = store.claim_key_packages("ann", &["phone".to_owned()]).await.expect("claim skipping");
    assert_eq!(skipped, vec![], "the phone is skipped and the laptop has none left");
    assert_eq!(store.key_package_count("ann", "phone").await.expect("count"), 1, "nothing taken from the phone");

    // Racing claims: the last phone KeyPackage goes to one of them.
    let (a, b) = tokio::join!(store.claim_key_packages("ann", &[]), store.claim_key_packages("ann", &[]));
    let (a, b) = (a.expect("claim a"), b.expect("claim b"));
    assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
    assert_eq!(store.key_package_count("ann", "phone").await.expect("count"), 0);

    // A user's devices are capped; a device that holds some may add more.
    for d in 0..MAX_DEVICES_PER_USER {
        let device = format!("d{d}");
        let held = store.publish_key_packages("cy", &device, &packages(&device, 1)).await.expect("device");
        assert_eq!(held, Published::Held(1));
    }
    let extra = store.publish_key_packages("cy", "one-more", &packages("x", 1)).await.expect("extra device");
    assert_eq!(extra, Published::TooManyDevices);
    let more = store.publish_key_packages("cy", "d0", &packages("d0-more", 2)).await.expect("more");
    assert_eq!(more, Published::Held(3));

    let store = factory.reopen(store).await;
    assert_eq!(store.key_package_count("cy", "d0").await.expect("after reopen"), 3);
    assert_eq!(store.claim_key_packages("ann", &[]).await.expect("after reopen"), vec![]);

    // An erasure forgets every device's, and nobody else's.
    store.publish_key_packages("dee", "d", &packages("dee", 1)).await.expect("dee");
    store.forget_key_packages("cy").await.expect("forget");
    assert_eq!(store.key_package_count("cy", "d0").await.expect("count"), 0);
    assert_eq!(store.claim_key_packages("cy", &[]).await.expect("claim"), vec![]);
    assert_eq!(store.key_package_count("dee", "d").await.expect("others kept"), 1);
}
