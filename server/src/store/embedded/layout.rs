//! The layout of the database on disk: the version written on creation and
//! checked on every open, the epoch made on first open, and the upgrade of
//! an older layout (a `fjall-1` store gets its conversations' activities and
//! its users' lists). It runs once, before the writer starts.

use std::path::Path;

use fjall::PersistMode;

use super::db::{Db, Ks, decode};
use super::{key, open_error};
use crate::store::{StoreError, StoreResult};

/// The layout version written to `meta` on creation.
const LAYOUT_VERSION: &[u8] = b"fjall-2";

/// The layout before conversations had an activity: opened, it is brought
/// up to [`LAYOUT_VERSION`] (see [`backfill_activity`]).
const LAYOUT_V1: &[u8] = b"fjall-1";

/// Checks or writes the layout version and reads or makes the epoch.
pub(super) fn init(db: &Db, path: &Path) -> StoreResult<String> {
    let meta = db.ks(Ks::Meta);
    let mut batch = db.db.batch().durability(Some(PersistMode::SyncAll));
    match meta.get("layout").map_err(open_error(path))? {
        None => batch.insert(meta, "layout", LAYOUT_VERSION),
        Some(version) if &*version == LAYOUT_VERSION => {}
        Some(version) if &*version == LAYOUT_V1 => {
            backfill_activity(db, &mut batch).map_err(open_error(path))?;
            batch.insert(meta, "layout", LAYOUT_VERSION);
        }
        Some(other) => {
            let (other, ours) = (String::from_utf8_lossy(&other), String::from_utf8_lossy(LAYOUT_VERSION));
            return Err(open_error(path)(format!("store layout version {other} is not {ours}")));
        }
    }
    let epoch = match meta.get("epoch").map_err(open_error(path))? {
        Some(epoch) if !epoch.is_empty() => String::from_utf8(epoch.to_vec())
            .map_err(|_| StoreError::Corrupt { table: Ks::Meta.name(), detail: "epoch is not UTF-8".into() })?,
        Some(_) => return Err(StoreError::Corrupt { table: Ks::Meta.name(), detail: "empty epoch".into() }),
        None => {
            let epoch = format!("{:032x}", rand::random::<u128>());
            batch.insert(meta, "epoch", epoch.as_bytes());
            epoch
        }
    };
    batch.commit().map_err(open_error(path))?;
    Ok(epoch)
}

/// Brings a [`LAYOUT_V1`] database up to date in `batch`: each conversation's
/// activity is the server time of its last message (its creation if it has
/// none), and each member's list holds it there.
fn backfill_activity(
    db: &Db,
    batch: &mut fjall::OwnedWriteBatch,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use prost::Message as _;
    const OP: &str = "backfill_activity";
    for entry in db.ks(Ks::Conversations).iter() {
        let (id, value) = entry.into_inner()?;
        let rec: crate::store::ConversationRecord = decode(Ks::Conversations, &value)?;
        let range = key::pair(rec.id, 0)..=key::pair(rec.id, u64::MAX);
        let last = db.ks(Ks::Messages).range(range).next_back().map(|g| g.into_inner()).transpose()?;
        let at = match last {
            Some((_, body)) => chat_protocol::v1::Message::decode(&*body)?.server_time_ms,
            None => rec.created_at_ms,
        };
        batch.insert(db.ks(Ks::Activity), id.clone(), at.to_be_bytes().to_vec());
        for member in db.ks(Ks::Members).prefix(&id) {
            let (_, value) = member.into_inner()?;
            let m: crate::store::MemberRecord = decode(Ks::Members, &value)?;
            batch.insert(db.ks(Ks::UserActivity), key::user_activity(OP, &m.user_id, at, rec.id)?, Vec::new());
        }
    }
    Ok(())
}
