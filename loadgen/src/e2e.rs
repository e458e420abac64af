//! `--e2e`: every conversation of the run end-to-end encrypted with MLS, as
//! the Rust SDK's apps do it. Each user gets an in-memory device (openmls
//! through `chat_client::mls`); before the load, each publishes
//! KeyPackages, each conversation's creator makes the group and adds the
//! others with one commit, and every member joins from the Welcome as its
//! events bring it. During the load a sender encrypts each message and each
//! receiver decrypts it before the checker reads it, so the latency and
//! the loadgen's CPU per message include the crypto on both ends (the
//! server's cost is that of any message: it stores and routes bytes).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_client::mls::{Change, Device, Received};
use chat_client::v1;
use futures_util::StreamExt;

use crate::population::{Connector, Slot};
use crate::scenario::Plan;

/// Each user's device, by user index.
pub type Devices = Vec<Mutex<Device>>;

/// The device id every load user's one device has.
const DEVICE: &str = "lg";
/// Requests in flight while preparing.
const CONCURRENCY: usize = 64;

fn lock(d: &Mutex<Device>) -> std::sync::MutexGuard<'_, Device> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// An in-memory device for each of `users`.
pub fn devices(connector: &Connector, users: usize) -> anyhow::Result<Devices> {
    (0..users).map(|u| Ok(Mutex::new(Device::in_memory(&connector.user_id(u), DEVICE)?))).collect()
}

/// Every device publishes enough KeyPackages to be added to each of its
/// conversations (its own conversations' creations use one of its own too).
pub async fn publish(plan: &Plan, slots: &[std::sync::Arc<Slot>], devices: &Devices) -> anyhow::Result<()> {
    let memberships = plan.memberships();
    let mut publishes = futures_util::stream::iter(memberships.iter().enumerate())
        .map(|(u, convs)| async move {
            let n = (2 * convs.len() + 2).min(100);
            let packages = lock(&devices[u]).new_key_packages(n)?;
            slots[u].get().publish_key_packages(DEVICE, packages).await.with_context(|| format!("user {u} publishes"))
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(r) = publishes.next().await {
        r?;
    }
    Ok(())
}

/// Makes the group of each of the plan's conversations (`ids`, created
/// end-to-end encrypted) at its creator's device, which adds the others.
pub async fn start_groups(
    plan: &Plan,
    slots: &[std::sync::Arc<Slot>],
    devices: &Devices,
    connector: &Connector,
    ids: &[u64],
) -> anyhow::Result<()> {
    let mut starts = futures_util::stream::iter(plan.convs.iter().zip(ids))
        .map(|(c, &conv)| async move {
            let creator = slots[c.members[0]].get();
            let device = &devices[c.members[0]];
            let others: Vec<String> = c.members[1..].iter().map(|&u| connector.user_id(u)).collect();
            let claimed = creator.claim_key_packages(others).await.with_context(|| format!("claims for {conv}"))?;
            let ct = {
                let mut d = lock(device);
                d.start_group(conv)?;
                d.prepare(conv, &Change::Add(claimed))?
            };
            if let Some(ct) = ct {
                let stored =
                    creator.send_ciphertext(conv, ct).await.with_context(|| format!("the commit of {conv}"))?;
                lock(device).confirm(conv, stored.seq)?;
            }
            anyhow::Ok(())
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(r) = starts.next().await {
        r?;
    }
    Ok(())
}

/// Waits (at most `within`) until every member's device is in the group of
/// each of its conversations; returns how many are not.
pub async fn wait_joined(plan: &Plan, ids: &[u64], devices: &Devices, within: Duration) -> usize {
    let memberships = plan.memberships();
    let deadline = Instant::now() + within;
    loop {
        let missing = memberships
            .iter()
            .enumerate()
            .map(|(u, convs)| {
                let d = lock(&devices[u]);
                convs.iter().filter(|&&ci| d.epoch(ids[ci]).is_none()).count()
            })
            .sum();
        if missing == 0 || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `text` encrypted by `device` for `conv`.
pub fn seal(device: &Mutex<Device>, conv: u64, text: String) -> Result<v1::E2eCiphertext, chat_client::mls::MlsError> {
    lock(device).encrypt(conv, &v1::E2eContent { text, files: Vec::new() })
}

/// What `device` reads of `m` (None: a commit, a Welcome, or not for it).
pub fn open(device: &Mutex<Device>, m: &v1::Message) -> Option<String> {
    match lock(device).receive(m) {
        Ok(Received::Text { text, .. }) => Some(text),
        _ => None,
    }
}
