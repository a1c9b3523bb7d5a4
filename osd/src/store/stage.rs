//! Staging: the chunks a transaction writes whole, encoded (compressed where that pays)
//! before the transaction is applied, outside any lock; the large ones written to the block
//! file (see [`super::blocks`]).
//!
//! The planner then stores each staged chunk's engine value as it is: the encoded chunk, or
//! a reference to its blocks. A block chunk the plan did not use (a later sub-op changed
//! it, the transaction failed or was a resend) is returned to the allocator when the
//! [`Staged`] is dropped: no batch ever referenced it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::blocks::{blocks_for, AlignedBuf, BlockFile, Extent, BLOCK};
use super::chunk::{self, Payload};
use super::config::StoreConfig;
use super::error::Result;
use super::keys::CHUNK_SIZE;
use super::txn::WriteOp;

/// One chunk, encoded, waiting for its engine value to be committed.
#[derive(Debug)]
pub(crate) struct StagedChunk {
    /// Where its payload is: in the block file, or in the value itself.
    pub extent: Option<Extent>,
    /// The engine value: the encoded chunk, or the reference to its blocks.
    pub value: Vec<u8>,
    used: bool,
}

/// The chunks of one transaction already in the block file, by (sub-op index, chunk).
/// Made by [`super::ObjectStore::stage`]; hand it to [`super::ObjectStore::apply_staged`]
/// with the same sub-ops.
#[derive(Debug, Default)]
pub struct Staged {
    inner: Option<Inner>,
    /// The block file write took the data from where it lay (see [`in_place`]).
    in_place: bool,
}

#[derive(Debug)]
struct Inner {
    blocks: Arc<BlockFile>,
    /// Where each staged sub-op's data starts in memory: a staged chunk is only used for
    /// the very bytes it was made from.
    sources: BTreeMap<usize, usize>,
    chunks: BTreeMap<(usize, u32), StagedChunk>,
}

impl Staged {
    /// The staged chunk for sub-op `op`'s chunk `chunk`, if that sub-op's data is `data`.
    pub(crate) fn chunk(&self, op: usize, chunk: u32, data: &[u8]) -> Option<&StagedChunk> {
        let inner = self.inner.as_ref()?;
        let source = *inner.sources.get(&op)?;
        (source == data.as_ptr() as usize)
            .then(|| inner.chunks.get(&(op, chunk)))
            .flatten()
    }

    /// Takes the engine value (and block range) of a chunk [`Staged::chunk`] matched, for a
    /// batch about to reference it: the space is no longer this value's to give back.
    pub(crate) fn take(&mut self, op: usize, chunk: u32) -> Option<(Vec<u8>, Option<Extent>)> {
        let staged = self.inner.as_mut()?.chunks.get_mut(&(op, chunk))?;
        staged.used = true;
        Some((std::mem::take(&mut staged.value), staged.extent))
    }

    /// How many chunks are staged (for tests and statistics).
    pub fn staged_chunks(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| inner.chunks.len())
    }

    /// Whether the chunks went to the block file straight from the sub-op's data, without
    /// a copy (for tests and statistics).
    pub fn written_in_place(&self) -> bool {
        self.in_place
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            let unused: Vec<Extent> = inner
                .chunks
                .values()
                .filter(|chunk| !chunk.used)
                .filter_map(|chunk| chunk.extent)
                .collect();
            inner.blocks.release(&unused);
        }
    }
}

/// The data a sub-op writes at a known offset (appends depend on the object's size).
fn positioned(op: &WriteOp) -> Option<(u64, &[u8])> {
    match op {
        WriteOp::Write { offset, data } => Some((*offset, data)),
        WriteOp::WriteFull { data } => Some((0, data)),
        _ => None,
    }
}

/// Encodes the whole chunks of `ops`, writes those whose stored form is large enough to the
/// block file (one direct write for all of them), flushes it, and returns them staged.
pub(crate) fn stage(
    blocks: &Arc<BlockFile>,
    ops: &[WriteOp],
    config: &StoreConfig,
) -> Result<Staged> {
    // (sub-op index, chunk), where the chunk starts in the sub-op's data, its payload.
    let mut payloads: Vec<((usize, u32), usize, Payload<'_>)> = Vec::new();
    let mut chunks = BTreeMap::new();
    let mut sources = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        let Some((offset, data)) = positioned(op) else {
            continue;
        };
        let chunk_len = CHUNK_SIZE as u64;
        // Writes the transaction's checks will refuse are not staged.
        let end = match offset.checked_add(data.len() as u64) {
            Some(end) if end <= config.max_object_size => end,
            _ => continue,
        };
        let mut position = offset.next_multiple_of(chunk_len);
        while position + chunk_len <= end {
            let from = (position - offset) as usize;
            let piece = &data[from..from + CHUNK_SIZE];
            let payload = chunk::payload(piece, config.compression);
            let key = (
                index,
                u32::try_from(position / chunk_len).unwrap_or(u32::MAX),
            );
            sources.insert(index, data.as_ptr() as usize);
            if payload.bytes.len() >= config.block_min_bytes {
                payloads.push((key, from, payload));
            } else {
                let chunk = StagedChunk {
                    extent: None,
                    value: chunk::stored_payload(&payload),
                    used: false,
                };
                chunks.insert(key, chunk);
            }
            position += chunk_len;
        }
    }
    if payloads.is_empty() {
        return Ok(Staged {
            inner: (!chunks.is_empty()).then(|| Inner {
                blocks: Arc::clone(blocks),
                sources,
                chunks,
            }),
            in_place: false,
        });
    }
    let total: u64 = payloads
        .iter()
        .map(|(_, _, payload)| blocks_for(payload.bytes.len()))
        .sum();
    let whole = blocks.allocate(total)?;
    let mut at = 0u64;
    for (key, _, payload) in &payloads {
        let len = payload.bytes.len();
        let extent = Extent {
            offset: whole.offset + at,
            len: blocks_for(len),
        };
        chunks.insert(
            *key,
            StagedChunk {
                extent: Some(extent),
                value: chunk::block_reference(payload, extent.offset),
                used: false,
            },
        );
        at += extent.len;
    }
    // From here on, dropping the value gives the space back.
    let mut staged = Staged {
        inner: Some(Inner {
            blocks: Arc::clone(blocks),
            sources,
            chunks,
        }),
        in_place: false,
    };
    let in_place = in_place(ops, &payloads);
    staged.in_place = in_place.is_some();
    let copied;
    let bytes = match in_place {
        Some(bytes) => bytes,
        None => {
            let mut buffer = AlignedBuf::with_capacity(total as usize);
            for (_, _, payload) in &payloads {
                buffer.push_padded(&payload.bytes);
            }
            copied = buffer;
            copied.as_slice()
        }
    };
    blocks.write(whole.offset, bytes)?;
    blocks.flush()?;
    Ok(staged)
}

/// The bytes the block payloads are, as they lie in their sub-op's data, when a direct
/// write can take them from there: all raw, whole blocks each, side by side in one
/// sub-op's data, from a block-aligned address (what a link's bulk segment delivers for a
/// large incompressible write). Saves copying them into an aligned buffer.
fn in_place<'d>(
    ops: &'d [WriteOp],
    payloads: &[((usize, u32), usize, Payload<'_>)],
) -> Option<&'d [u8]> {
    let &((op, _), first, _) = payloads.first()?;
    let (_, data) = positioned(&ops[op])?;
    let mut end = first;
    for ((index, _), start, payload) in payloads {
        let len = payload.bytes.len();
        if *index != op || *start != end || !payload.is_raw() || len % BLOCK as usize != 0 {
            return None;
        }
        end += len;
    }
    let run = &data[first..end];
    (run.as_ptr() as usize)
        .is_multiple_of(BLOCK as usize)
        .then_some(run)
}
