//! Upgrades a store written in an older on-disk format to [`FORMAT_VERSION`], when it is
//! opened. Each step is idempotent, so an upgrade cut short by a crash runs again from the
//! start; the superblock names the new format only once every record is rewritten.

use kv::{Engine, KeyRange, WriteBatch};

use super::chunk;
use super::error::Result;
use super::keys::{self, DATA_TAG, FORMAT_2_REQID_TAG};
use super::superblock::{Superblock, FORMAT_VERSION};

/// Chunks rewritten per batch (at most 4 MiB of data).
const CHUNKS_PER_BATCH: usize = 64;

/// Brings `superblock`'s store up to [`FORMAT_VERSION`] and returns the new superblock
/// (unchanged if it already was).
pub(crate) fn upgrade(engine: &dyn Engine, superblock: Superblock) -> Result<Superblock> {
    if superblock.format_version == FORMAT_VERSION {
        return Ok(superblock);
    }
    let mut rewritten = 0;
    for keyspace in engine.keyspaces()? {
        if keys::pg_of_keyspace(&keyspace).is_none() {
            continue;
        }
        // Format 1's chunks had no kind byte.
        if superblock.format_version < 2 {
            rewritten += upgrade_chunks(engine, &keyspace)?;
        }
        // Format 2 kept an index of request ids on disk; format 3 rebuilds it from the log.
        if superblock.format_version < 3 {
            let mut batch = WriteBatch::new();
            batch.delete_range(&keyspace, KeyRange::prefix(&[FORMAT_2_REQID_TAG]));
            engine.write(batch)?;
        }
        // Format 3 stored the PG info with every commit, so no entry of its log is newer
        // than the info and format 4's open has nothing to bring forward: nothing to rewrite.
    }
    engine.sync()?;
    let upgraded = Superblock {
        format_version: FORMAT_VERSION,
        ..superblock
    };
    let mut batch = WriteBatch::new();
    batch.put(
        keys::SUPER_KEYSPACE,
        keys::SUPERBLOCK_KEY,
        upgraded.encode(),
    );
    engine.write_sync(batch)?;
    tracing::info!(
        from = superblock.format_version,
        to = FORMAT_VERSION,
        rewritten,
        "upgraded the object store's on-disk format"
    );
    Ok(upgraded)
}

/// Rewrites the format 1 chunks of one PG keyspace; returns how many.
fn upgrade_chunks(engine: &dyn Engine, keyspace: &str) -> Result<u64> {
    let mut rewritten = 0;
    let mut batch = WriteBatch::new();
    let mut pending = 0;
    for entry in engine.scan(keyspace, KeyRange::prefix(&[DATA_TAG]))? {
        let (key, value) = entry?;
        let Some(upgraded) = chunk::upgrade_from_format_1(&value) else {
            continue;
        };
        batch.put(keyspace, key, upgraded);
        pending += 1;
        rewritten += 1;
        if pending == CHUNKS_PER_BATCH {
            engine.write(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    if pending > 0 {
        engine.write(batch)?;
    }
    Ok(rewritten)
}
