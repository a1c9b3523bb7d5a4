//! The on-disk key layout of the object store, in one place.
//!
//! Keyspaces:
//! - `osd_super`: one key, `superblock` (format version, OSD uuid and id, chunk size).
//! - `pg:<pool>.<seed hex>` (for example `pg:1.2f`): everything of one PG. A PG is its own
//!   keyspace so that removing it touches nothing else, and so that a listing of keyspaces
//!   is the list of PGs (a keyspace without an info key is a PG whose removal was cut short).
//! - `osd_deferred`: block offset (u64 BE) -> a deferred write ([`super::deferred`]). Only
//!   ever written as log-only puts, so it holds keys only between a crash and the open that
//!   replays them.
//!
//! Inside a PG keyspace every key starts with a one-byte section tag:
//!
//! | key | value |
//! | --- | --- |
//! | `I` | PG info ([`super::PgInfo`]) as of the last change of the log's tail; the log entries after it bring it forward |
//! | `L` epoch(u32 BE) v(u64 BE) | log entry ([`super::LogEntry`]) with the PG's statistics after it, so the log is in version order |
//! //! | `O` oid | object metadata ([`super::ObjectInfo`]); the object exists iff this key does |
//! | `D` oid chunk(u32 BE) | one data chunk, checksummed and maybe compressed ([`super::chunk`]), or a reference to it in the block file |
//! | `B` oid chunk(u32 BE) | the block file range (offset u64 BE, length u64 BE) that chunk occupies ([`super::blocks`]) |
//! | `X` oid name | one xattr's value |
//! | `M` oid key | one omap value |
//!
//! `oid` is the namespace then the name, each with every 0x00 byte written as 0x00 0xFF and
//! closed by 0x00 0x01. That encoding is prefix-free (no object's `oid` starts another's, so
//! `D oid` ranges never overlap) and order-preserving, so objects list in (namespace, name)
//! byte order and one namespace is one contiguous key range. Keeping metadata (`O`) apart
//! from data (`D`) lets listings and backfill scans read only small values; keeping the block
//! records (`B`) apart lets a removal find the space it frees, and an open rebuild the
//! allocator, without reading any chunk.
//!
//! Data chunks are [`CHUNK_SIZE`] bytes of the object's logical content; chunk `i` holds
//! bytes `[i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)`. A chunk may be stored shorter than that
//! (its tail is zeros) or not at all (a hole: all zeros). No stored byte ever lies at or past
//! the object's size: truncation trims, so growing an object again exposes zeros.

use clustermap::PgId;

use super::blocks::{Extent, BLOCK};
use super::types::{Eversion, ObjectId};

/// Bytes per data chunk: a 4 KiB write into a 4 MiB object rewrites one 64 KiB chunk.
pub const CHUNK_SIZE: usize = 64 << 10;

/// The keyspace holding the superblock.
pub(crate) const SUPER_KEYSPACE: &str = "osd_super";
/// The superblock's key.
pub(crate) const SUPERBLOCK_KEY: &[u8] = b"superblock";

/// The keyspace of deferred writes' log-only copies.
pub(crate) const DEFERRED_KEYSPACE: &str = "osd_deferred";

const PG_KEYSPACE_PREFIX: &str = "pg:";

pub(crate) const INFO_KEY: &[u8] = b"I";
pub(crate) const LOG_TAG: u8 = b'L';
/// Format 2's on-disk request-id index (`R` client tid -> version), which the upgrade to
/// format 3 removes: the index is now kept in memory ([`super::pglog::ReqIdIndex`]).
pub(crate) const FORMAT_2_REQID_TAG: u8 = b'R';
pub(crate) const OBJECT_TAG: u8 = b'O';
pub(crate) const DATA_TAG: u8 = b'D';
pub(crate) const XATTR_TAG: u8 = b'X';
pub(crate) const OMAP_TAG: u8 = b'M';
pub(crate) const BLOCK_TAG: u8 = b'B';

/// The keyspace of a PG.
pub(crate) fn pg_keyspace(pg: PgId) -> String {
    format!("{PG_KEYSPACE_PREFIX}{pg}")
}

/// The PG a keyspace belongs to, or `None` for keyspaces that are not PGs.
pub(crate) fn pg_of_keyspace(name: &str) -> Option<PgId> {
    let (pool, seed) = name.strip_prefix(PG_KEYSPACE_PREFIX)?.split_once('.')?;
    let pg = PgId::new(pool.parse().ok()?, u32::from_str_radix(seed, 16).ok()?);
    // Only the canonical spelling (`1.2f`, not `1.02F` or `+1.2f`) is ours.
    (pg_keyspace(pg) == name).then_some(pg)
}

fn push_component(out: &mut Vec<u8>, component: &[u8]) {
    for &byte in component {
        out.push(byte);
        if byte == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

/// The encoded `oid` of an object (see the module doc).
pub(crate) fn object_key(object: &ObjectId) -> Vec<u8> {
    let mut key = Vec::with_capacity(object.namespace.len() + object.name.len() + 4);
    push_component(&mut key, object.namespace.as_bytes());
    push_component(&mut key, object.name.as_bytes());
    key
}

/// The encoded prefix shared by every object of a namespace.
pub(crate) fn namespace_key(namespace: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(namespace.len() + 2);
    push_component(&mut key, namespace.as_bytes());
    key
}

/// The length of the longest `oid` plus section tag and chunk index, for the config's
/// check that every key fits the engine.
pub(crate) fn longest_object_key(max_namespace: usize, max_name: usize) -> usize {
    1 + (2 * max_namespace + 2) + (2 * max_name + 2) + 4
}

/// Splits one encoded component off the front of `bytes`.
fn take_component(bytes: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte != 0 {
            out.push(byte);
            index += 1;
            continue;
        }
        match bytes.get(index + 1)? {
            0xff => out.push(0),
            1 => return Some((out, &bytes[index + 2..])),
            _ => return None,
        }
        index += 2;
    }
    None
}

/// The object an encoded `oid` names; `None` if the bytes are not a valid `oid`.
pub(crate) fn decode_object_key(bytes: &[u8]) -> Option<ObjectId> {
    let (namespace, rest) = take_component(bytes)?;
    let (name, rest) = take_component(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(ObjectId {
        namespace: String::from_utf8(namespace).ok()?,
        name: String::from_utf8(name).ok()?,
    })
}

/// `tag` followed by `parts`.
pub(crate) fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|part| part.len()).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(tag);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

pub(crate) fn meta_key(oid: &[u8]) -> Vec<u8> {
    tagged(OBJECT_TAG, &[oid])
}

pub(crate) fn data_key(oid: &[u8], chunk: u32) -> Vec<u8> {
    tagged(DATA_TAG, &[oid, &chunk.to_be_bytes()])
}

pub(crate) fn block_key(oid: &[u8], chunk: u32) -> Vec<u8> {
    tagged(BLOCK_TAG, &[oid, &chunk.to_be_bytes()])
}

/// The value of a block record.
pub(crate) fn encode_extent(extent: Extent) -> [u8; 16] {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&extent.offset.to_be_bytes());
    value[8..].copy_from_slice(&extent.len.to_be_bytes());
    value
}

/// The range a block record names; `None` if the value is malformed.
pub(crate) fn decode_extent(value: &[u8]) -> Option<Extent> {
    let bytes: [u8; 16] = value.try_into().ok()?;
    let offset = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let len = u64::from_be_bytes(bytes[8..].try_into().ok()?);
    let aligned = offset % BLOCK == 0 && len % BLOCK == 0 && len > 0;
    (aligned && offset.checked_add(len).is_some()).then_some(Extent { offset, len })
}

pub(crate) fn xattr_key(oid: &[u8], name: &str) -> Vec<u8> {
    tagged(XATTR_TAG, &[oid, name.as_bytes()])
}

pub(crate) fn omap_key(oid: &[u8], key: &[u8]) -> Vec<u8> {
    tagged(OMAP_TAG, &[oid, key])
}

pub(crate) fn log_key(version: Eversion) -> Vec<u8> {
    tagged(LOG_TAG, &[&version.sort_key()])
}

/// The version a log key names.
pub(crate) fn version_of_log_key(key: &[u8]) -> Option<Eversion> {
    let rest = key.strip_prefix(&[LOG_TAG])?;
    let bytes: [u8; 12] = rest.try_into().ok()?;
    let epoch = u32::from_be_bytes(bytes[..4].try_into().ok()?);
    let version = u64::from_be_bytes(bytes[4..].try_into().ok()?);
    Some(Eversion::new(epoch, version))
}

/// The chunk index a data key of a known object ends with.
pub(crate) fn chunk_of_data_key(key: &[u8], prefix_len: usize) -> Option<u32> {
    let bytes: [u8; 4] = key.get(prefix_len..)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(namespace: &str, name: &str) -> ObjectId {
        ObjectId::in_namespace(namespace, name)
    }

    #[test]
    fn object_keys_round_trip_including_nul_bytes() {
        for object in [
            oid("", "a"),
            oid("ns", "name"),
            oid("\0", "\0\0x"),
            oid("a\u{1}", "é"),
        ] {
            let key = object_key(&object);
            assert_eq!(decode_object_key(&key), Some(object));
        }
        assert_eq!(decode_object_key(b"abc"), None);
        assert_eq!(decode_object_key(&[0, 7]), None);
        let mut trailing = object_key(&oid("", "a"));
        trailing.push(b'x');
        assert_eq!(decode_object_key(&trailing), None);
    }

    #[test]
    fn object_keys_sort_like_namespace_then_name_and_are_prefix_free() {
        let mut objects = vec![
            oid("", "b"),
            oid("", "a"),
            oid("", "a\0"),
            oid("", "a\0b"),
            oid("", "ab"),
            oid("a", ""),
            oid("a", "z"),
            oid("\0", "q"),
            oid("b", "a"),
        ];
        let mut by_key = objects.clone();
        objects.sort_by(|x, y| {
            (x.namespace.as_bytes(), x.name.as_bytes())
                .cmp(&(y.namespace.as_bytes(), y.name.as_bytes()))
        });
        by_key.sort_by_key(object_key);
        assert_eq!(by_key, objects);
        for x in &objects {
            for y in &objects {
                if x != y {
                    assert!(
                        !object_key(y).starts_with(&object_key(x)),
                        "{x} prefixes {y}"
                    );
                }
            }
            assert!(object_key(x).starts_with(&namespace_key(&x.namespace)));
        }
    }

    #[test]
    fn pg_keyspace_names_round_trip() {
        for pg in [PgId::new(1, 0x2f), PgId::new(0, 0), PgId::new(-3, u32::MAX)] {
            let name = pg_keyspace(pg);
            kv::keys::validate_keyspace(&name).unwrap();
            assert_eq!(pg_of_keyspace(&name), Some(pg));
        }
        assert_eq!(pg_of_keyspace("osd_super"), None);
        assert_eq!(pg_of_keyspace("pg:1.02f"), None);
        assert_eq!(pg_of_keyspace("pg:x"), None);
    }

    #[test]
    fn log_keys_name_their_version() {
        let version = Eversion::new(9, 1 << 33);
        assert_eq!(version_of_log_key(&log_key(version)), Some(version));
        assert_eq!(version_of_log_key(b"Lshort"), None);
        let key = data_key(b"oid", 77);
        assert_eq!(chunk_of_data_key(&key, 4), Some(77));
    }
}
