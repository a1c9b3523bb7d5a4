//! Deferred writes (BlueStore's): a chunk too small to be worth a direct write and its own
//! flush, but large enough to weigh on the engine, goes to the block file through the page
//! cache, while the engine batch holds its reference and, as a log-only put
//! ([`kv::WriteBatch::put_log_only`]), a copy of its payload.
//!
//! Why: a small incompressible write kept in the engine is written four times or more (the
//! engine's log, fjall's journal, its flush to a table, then every compaction), and the
//! write-back of that traffic is what the slowest 1 % of small writes wait behind. Deferred,
//! it is written twice: once in the log frame that makes its batch durable (so one device
//! flush per commit, as before), once to the block file when the log's next checkpoint
//! flushes it. The engine keeps about 100 bytes.
//!
//! Durability: the engine calls the store's hook (a block file flush) before its log drops
//! any frame (see [`kv::Engine::on_log_release`]), so a payload leaves the log only once the
//! block file holds it. After a crash the log's log-only puts come back as ordinary keys in
//! [`keys::DEFERRED_KEYSPACE`], keyed by block offset; [`replay`] writes each payload again
//! whose chunk still holds exactly the reference it was written for (a later batch may have
//! moved, removed or replaced the chunk, and the space may be someone else's by then),
//! flushes, and deletes the keys.

use std::sync::Arc;

use kv::{Engine, KeyRange, WriteBatch};

use super::blocks::{blocks_for, BlockFile, Extent};
use super::chunk::{self, Payload};
use super::error::{Result, StoreError};
use super::keys;

/// Block file space a plan wrote deferred chunks to. Given back when dropped unless
/// [`Deferred::keep`] was called (its batch was written): no batch references it then.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    blocks: Option<Arc<BlockFile>>,
    extents: Vec<Extent>,
}

impl Deferred {
    /// The batch that references the space was written.
    pub fn keep(mut self) {
        self.extents.clear();
    }

    /// Writes `payload` (chunk `chunk_key` of keyspace `keyspace`) to fresh space through
    /// the page cache and adds to `batch` the chunk's reference, its block record
    /// (`block_key`) and the log-only copy of the payload.
    pub fn write(
        &mut self,
        blocks: &Arc<BlockFile>,
        batch: &mut WriteBatch,
        keyspace: &str,
        chunk_key: Vec<u8>,
        block_key: Vec<u8>,
        payload: &Payload<'_>,
    ) -> Result<()> {
        let extent = blocks.allocate(blocks_for(payload.bytes.len()))?;
        self.blocks.get_or_insert_with(|| Arc::clone(blocks));
        self.extents.push(extent);
        blocks.write_buffered(extent.offset, &payload.bytes)?;
        let reference = chunk::block_reference(payload, extent.offset);
        batch.put_log_only(
            keys::DEFERRED_KEYSPACE,
            extent.offset.to_be_bytes(),
            encode_record(keyspace, &chunk_key, &reference, &payload.bytes),
        );
        batch.put(keyspace, chunk_key, reference);
        batch.put(keyspace, block_key, keys::encode_extent(extent).to_vec());
        Ok(())
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let (Some(blocks), false) = (&self.blocks, self.extents.is_empty()) {
            blocks.release(&self.extents);
        }
    }
}

/// The log-only value: which chunk, the reference it was written with, and the payload.
fn encode_record(keyspace: &str, chunk_key: &[u8], reference: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(
        2 + keyspace.len() + 2 + chunk_key.len() + 1 + reference.len() + payload.len(),
    );
    record.extend_from_slice(&(keyspace.len() as u16).to_be_bytes());
    record.extend_from_slice(keyspace.as_bytes());
    record.extend_from_slice(&(chunk_key.len() as u16).to_be_bytes());
    record.extend_from_slice(chunk_key);
    record.push(reference.len() as u8);
    record.extend_from_slice(reference);
    record.extend_from_slice(payload);
    record
}

struct Record<'r> {
    keyspace: &'r str,
    chunk_key: &'r [u8],
    reference: &'r [u8],
    payload: &'r [u8],
}

fn decode_record(mut value: &[u8]) -> Option<Record<'_>> {
    fn take<'v>(value: &mut &'v [u8], len: usize) -> Option<&'v [u8]> {
        let (taken, rest) = (value.len() >= len).then(|| value.split_at(len))?;
        *value = rest;
        Some(taken)
    }
    let len16 =
        |value: &mut &[u8]| take(value, 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize);
    let keyspace_len = len16(&mut value)?;
    let keyspace = std::str::from_utf8(take(&mut value, keyspace_len)?).ok()?;
    let key_len = len16(&mut value)?;
    let chunk_key = take(&mut value, key_len)?;
    let reference_len = take(&mut value, 1)?[0] as usize;
    let reference = take(&mut value, reference_len)?;
    Some(Record {
        keyspace,
        chunk_key,
        reference,
        payload: value,
    })
}

/// Writes again the deferred chunks a crash may have kept from the block file (see the
/// module documentation), makes them durable, and forgets them. Returns how many were
/// written. Run at open, before the store takes writes.
pub(crate) fn replay(engine: &dyn Engine, blocks: &BlockFile) -> Result<usize> {
    let mut written = 0;
    let mut found = 0;
    for item in engine.scan(keys::DEFERRED_KEYSPACE, KeyRange::all())? {
        let (key, value) = item?;
        found += 1;
        let record = decode_record(&value).ok_or_else(|| {
            StoreError::corrupt_record(format!("deferred write {key:02x?}"), "it is malformed")
        })?;
        let offset = chunk::block_ref(record.reference)
            .and_then(Result::ok)
            .map(|reference| reference.offset());
        let Some(offset) = offset.filter(|offset| key == offset.to_be_bytes()) else {
            return Err(StoreError::corrupt_record(
                format!("deferred write {key:02x?}"),
                "its reference does not name its block",
            ));
        };
        // Only a chunk that still holds this very reference owns the space and wants
        // these bytes there.
        let current = engine.get(record.keyspace, record.chunk_key)?;
        if current.as_deref() == Some(record.reference) {
            blocks.write_buffered(offset, record.payload)?;
            written += 1;
        }
    }
    if found == 0 {
        return Ok(0);
    }
    blocks.flush()?;
    let mut batch = WriteBatch::new();
    batch.delete_range(keys::DEFERRED_KEYSPACE, KeyRange::all());
    engine.write_sync(batch)?;
    tracing::info!(
        found,
        written,
        "wrote again the deferred chunks the write-ahead log still held"
    );
    Ok(written)
}
