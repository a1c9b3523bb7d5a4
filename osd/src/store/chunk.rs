//! How one data chunk is stored: a kind byte, the xxh3-64 of the stored payload (u64 BE),
//! then the payload: the chunk's bytes as they are (kind 0), or an lz4 block of them
//! preceded by their length as a u32 LE (kind 1). A large payload may instead live in the
//! block file ([`super::blocks`]): the engine then holds a reference (kind 2): the payload's
//! kind, its checksum, its offset in the block file (u64 BE) and its length (u32 BE).
//!
//! The OSD compresses chunks itself, once, and asks the engine not to compress (fjall would
//! otherwise lz4 every large value twice: into its journal and again into its blob files,
//! and hold the uncompressed value in its memtable in between). Like BlueStore, a chunk is
//! kept compressed only when that saves at least an eighth of it, and the checksum covers
//! the bytes as stored, so corruption on disk is caught before decompression runs on it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::blocks::BlockReader;
use super::keys::CHUNK_SIZE;

/// Whether chunks are compressed (the `[osd] compression` setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// lz4, kept where it saves at least 1/8 of the chunk (the default).
    #[default]
    Lz4,
    /// Chunks are stored as written: no CPU spent trying, for data known not to compress.
    None,
}

const RAW: u8 = 0;
const LZ4: u8 = 1;
const BLOCK_REF: u8 = 2;
const REFERENCE_LEN: usize = 2 + 8 + 8 + 4;
const HEADER_LEN: usize = 1 + 8;
const LENGTH_PREFIX_LEN: usize = 4;
/// Chunks shorter than this are not worth a compression attempt.
const MIN_COMPRESSED_LEN: usize = 4096;

fn checksum(payload: &[u8]) -> [u8; 8] {
    xxhash_rust::xxh3::xxh3_64(payload).to_be_bytes()
}

fn stored(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER_LEN + payload.len());
    value.push(kind);
    value.extend_from_slice(&checksum(payload));
    value.extend_from_slice(payload);
    value
}

/// A chunk's payload as it will be stored, with its kind.
pub(crate) struct Payload<'d> {
    kind: u8,
    pub bytes: Cow<'d, [u8]>,
}

/// A chunk is first judged by compressing its first quarter, at most this many bytes:
/// random, encrypted or already compressed data then costs a quarter of a full attempt or
/// less (lz4 was 7.5 % of the machine's CPU under incompressible 4 MiB writes, and 2.7 % of
/// an OSD's under incompressible 4 KiB ones). Data whose start does not compress but whose
/// rest would is stored raw: BlueStore does not even try below 8 KiB on SSDs
/// (`bluestore_compression_min_blob_size_ssd`).
const SAMPLE_LEN: usize = 8 << 10;

/// Whether `compressed` bytes for `len` save at least an eighth.
fn pays(compressed: usize, len: usize) -> bool {
    compressed <= len - len / 8
}

impl Payload<'_> {
    /// Whether the payload is the chunk's bytes themselves (not compressed).
    pub fn is_raw(&self) -> bool {
        self.kind == RAW
    }
}

/// The payload to store for a chunk's bytes: compressed where that pays.
pub(crate) fn payload(data: &[u8], compression: Compression) -> Payload<'_> {
    let worth_trying = || {
        let sample = &data[..(data.len() / 4).min(SAMPLE_LEN)];
        pays(lz4_flex::compress(sample).len(), sample.len())
    };
    if compression == Compression::Lz4 && data.len() >= MIN_COMPRESSED_LEN && worth_trying() {
        let compressed = lz4_flex::compress_prepend_size(data);
        if pays(compressed.len(), data.len()) {
            return Payload {
                kind: LZ4,
                bytes: Cow::Owned(compressed),
            };
        }
    }
    Payload {
        kind: RAW,
        bytes: Cow::Borrowed(data),
    }
}

/// The stored form of a chunk's bytes.
#[cfg(test)]
pub(crate) fn encode(data: &[u8], compression: Compression) -> Vec<u8> {
    stored_payload(&payload(data, compression))
}

/// The engine value that holds `payload` itself.
pub(crate) fn stored_payload(payload: &Payload<'_>) -> Vec<u8> {
    stored(payload.kind, &payload.bytes)
}

/// The engine's value for a chunk whose payload was written to the block file at `offset`.
pub(crate) fn block_reference(payload: &Payload<'_>, offset: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(REFERENCE_LEN);
    value.push(BLOCK_REF);
    value.push(payload.kind);
    value.extend_from_slice(&checksum(&payload.bytes));
    value.extend_from_slice(&offset.to_be_bytes());
    value.extend_from_slice(&(payload.bytes.len() as u32).to_be_bytes());
    value
}

/// A chunk held in the block file, as its reference describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockRef {
    kind: u8,
    checksum: u64,
    offset: u64,
    len: usize,
}

impl BlockRef {
    /// Where the payload starts in the block file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is the chunk's bytes as they are (not compressed).
    pub fn is_raw(&self) -> bool {
        self.kind == RAW && self.len <= CHUNK_SIZE
    }

    /// Checks `payload`, read from the block file, against the reference's checksum.
    pub fn verify(&self, payload: &[u8]) -> Result<(), String> {
        let actual = xxhash_rust::xxh3::xxh3_64(payload);
        if actual == self.checksum {
            Ok(())
        } else {
            Err(format!(
                "xxh3-64 mismatch in the block file at {}: stored {:016x}, computed {actual:016x}",
                self.offset, self.checksum
            ))
        }
    }
}

/// `Some` for a value that references the block file (`Err` if the reference is damaged).
pub(crate) fn block_ref(value: &[u8]) -> Option<Result<BlockRef, String>> {
    if value.first() != Some(&BLOCK_REF) {
        return None;
    }
    let parsed = (value.len() == REFERENCE_LEN)
        .then(|| BlockRef {
            kind: value[1],
            checksum: u64::from_be_bytes(value[2..10].try_into().expect("8 bytes")),
            offset: u64::from_be_bytes(value[10..18].try_into().expect("8 bytes")),
            len: u32::from_be_bytes(value[18..22].try_into().expect("4 bytes")) as usize,
        })
        .filter(|reference| {
            reference.len > 0
                && reference.len <= LENGTH_PREFIX_LEN + CHUNK_SIZE
                && reference.offset % super::blocks::BLOCK == 0
        });
    Some(parsed.ok_or_else(|| format!("malformed block reference {value:02x?}")))
}

/// The chunk's bytes, wherever they are stored: inline in `value`, or in the block file
/// that `value` references (read through `blocks`).
pub(crate) fn load<'v>(
    value: &'v [u8],
    blocks: Option<&'v mut BlockReader<'_>>,
) -> Result<Cow<'v, [u8]>, String> {
    let reference = match block_ref(value) {
        None => return decode(value),
        Some(reference) => reference?,
    };
    let Some(blocks) = blocks else {
        return Err("the chunk is held in a block file, and this store has none".to_owned());
    };
    let file = blocks.file();
    let payload = blocks
        .read(reference.offset, reference.len)
        .map_err(|error| {
            format!(
                "block file {} unreadable at {}+{}: {error}",
                file.path().display(),
                reference.offset,
                reference.len
            )
        })?;
    reference.verify(payload)?;
    match reference.kind {
        RAW if payload.len() <= CHUNK_SIZE => Ok(Cow::Borrowed(payload)),
        LZ4 => decompress(payload).map(Cow::Owned),
        kind => Err(format!("unknown chunk kind {kind} in the block file")),
    }
}

/// The chunk's bytes after checking the stored checksum (and decompressing); the error
/// describes the damage.
pub(crate) fn decode(value: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if value.len() < HEADER_LEN || value.len() > HEADER_LEN + LENGTH_PREFIX_LEN + CHUNK_SIZE {
        return Err(format!(
            "stored value has an impossible length {}",
            value.len()
        ));
    }
    let (header, payload) = value.split_at(HEADER_LEN);
    let expected = u64::from_be_bytes(header[1..].try_into().expect("8 bytes"));
    let actual = xxhash_rust::xxh3::xxh3_64(payload);
    if expected != actual {
        return Err(format!(
            "xxh3-64 mismatch: stored {expected:016x}, computed {actual:016x}"
        ));
    }
    match header[0] {
        RAW if payload.len() <= CHUNK_SIZE => Ok(Cow::Borrowed(payload)),
        LZ4 => decompress(payload).map(Cow::Owned),
        kind => Err(format!(
            "unknown chunk kind {kind} with a {} byte payload",
            payload.len()
        )),
    }
}

fn decompress(payload: &[u8]) -> Result<Vec<u8>, String> {
    let Some(prefix) = payload.get(..LENGTH_PREFIX_LEN) else {
        return Err("lz4 chunk without its length".to_owned());
    };
    let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if len > CHUNK_SIZE {
        return Err(format!("lz4 chunk claims {len} bytes, over the chunk size"));
    }
    let data = lz4_flex::decompress_size_prepended(payload)
        .map_err(|error| format!("lz4 chunk does not decompress: {error}"))?;
    if data.len() != len {
        return Err(format!(
            "lz4 chunk decompressed to {} bytes, {len} expected",
            data.len()
        ));
    }
    Ok(data)
}

/// Store format 1 kept a chunk as the xxh3-64 of its bytes (u64 BE), then the bytes. The
/// format 2 value of such a chunk (raw: the upgrade only moves bytes), or `None` for a
/// value that is already in format 2 or is damaged (left for reads and scrub to report);
/// so an upgrade cut short can run again over chunks it already rewrote.
pub(crate) fn upgrade_from_format_1(value: &[u8]) -> Option<Vec<u8>> {
    if decode(value).is_ok() || value.len() < 8 || value.len() > 8 + CHUNK_SIZE {
        return None;
    }
    let (stored_checksum, data) = value.split_at(8);
    (stored_checksum == checksum(data)).then(|| stored(RAW, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressible(len: usize) -> Vec<u8> {
        (0..len).map(|index| (index % 251) as u8).collect()
    }

    fn incompressible(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn compressible_chunks_are_stored_smaller_and_read_back_whole() {
        for len in [MIN_COMPRESSED_LEN, 10_000, CHUNK_SIZE] {
            let data = compressible(len);
            let value = encode(&data, Compression::Lz4);
            assert_eq!(value[0], LZ4, "{len} bytes");
            assert!(
                value.len() < len / 4,
                "{len} bytes stored in {}",
                value.len()
            );
            assert_eq!(decode(&value).unwrap(), &data[..]);
        }
    }

    #[test]
    fn chunks_stay_raw_when_compression_is_off_would_not_pay_or_is_too_small() {
        let cases = [
            (compressible(CHUNK_SIZE), Compression::None),
            (incompressible(CHUNK_SIZE), Compression::Lz4),
            (compressible(MIN_COMPRESSED_LEN - 1), Compression::Lz4),
            (Vec::new(), Compression::Lz4),
        ];
        for (data, compression) in cases {
            let value = encode(&data, compression);
            assert_eq!(value[0], RAW, "{} bytes, {compression:?}", data.len());
            assert_eq!(value.len(), HEADER_LEN + data.len());
            assert_eq!(decode(&value).unwrap(), &data[..]);
        }
    }

    #[test]
    fn a_chunk_whose_start_does_not_compress_is_stored_raw_without_a_full_attempt() {
        let mut data = incompressible(SAMPLE_LEN);
        data.extend_from_slice(&compressible(CHUNK_SIZE - SAMPLE_LEN));
        assert_eq!(encode(&data, Compression::Lz4)[0], RAW);
        // The same bytes with the compressible part first are compressed.
        data.rotate_left(SAMPLE_LEN);
        assert_eq!(encode(&data, Compression::Lz4)[0], LZ4);
    }

    #[test]
    fn a_small_chunk_is_judged_by_its_first_quarter() {
        let quarter = MIN_COMPRESSED_LEN / 4;
        let mut data = incompressible(quarter);
        data.extend_from_slice(&compressible(MIN_COMPRESSED_LEN - quarter));
        assert_eq!(encode(&data, Compression::Lz4)[0], RAW);
        data.rotate_left(quarter);
        let value = encode(&data, Compression::Lz4);
        assert_eq!(value[0], LZ4);
        assert_eq!(decode(&value).unwrap(), &data[..]);
    }

    #[test]
    fn any_flipped_byte_of_either_kind_is_caught() {
        for data in [compressible(CHUNK_SIZE), incompressible(1000)] {
            let value = encode(&data, Compression::Lz4);
            for position in [0, 1, 8, 9, 13, value.len() / 2, value.len() - 1] {
                let mut damaged = value.clone();
                damaged[position] ^= 0x10;
                assert!(decode(&damaged).is_err(), "flip at {position}");
            }
        }
        assert!(decode(&[1, 2, 3]).is_err());
        assert!(decode(&vec![0; HEADER_LEN + LENGTH_PREFIX_LEN + CHUNK_SIZE + 1]).is_err());
    }

    #[test]
    fn a_well_checksummed_lz4_chunk_that_lies_about_its_length_is_refused() {
        let mut payload = ((CHUNK_SIZE + 1) as u32).to_le_bytes().to_vec();
        payload.extend_from_slice(&lz4_flex::compress(&compressible(100)));
        let error = decode(&stored(LZ4, &payload)).unwrap_err();
        assert!(error.contains("over the chunk size"), "{error}");

        let mut payload = 200u32.to_le_bytes().to_vec();
        payload.extend_from_slice(&lz4_flex::compress(&compressible(100)));
        assert!(decode(&stored(LZ4, &payload)).is_err());
        assert!(decode(&stored(7, b"payload")).is_err());
    }

    #[test]
    fn format_1_chunks_upgrade_once_and_damaged_ones_are_left_alone() {
        let data = compressible(5000);
        let mut old = xxhash_rust::xxh3::xxh3_64(&data).to_be_bytes().to_vec();
        old.extend_from_slice(&data);
        let upgraded = upgrade_from_format_1(&old).unwrap();
        assert_eq!(decode(&upgraded).unwrap(), &data[..]);
        assert_eq!(upgrade_from_format_1(&upgraded), None);
        assert_eq!(
            upgrade_from_format_1(&encode(&data, Compression::Lz4)),
            None
        );
        let mut damaged = old.clone();
        damaged[100] ^= 1;
        assert_eq!(upgrade_from_format_1(&damaged), None);
    }
}
