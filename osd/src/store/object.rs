//! The read side of the object store: stat, data reads (every chunk's checksum verified),
//! xattrs, omap pages, object listing with a cursor, and the digests deep scrub compares
//! across replicas. Writes go through [`super::Transaction`]s.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use clustermap::PgId;
use kv::KeyRange;
use xxhash_rust::xxh3::Xxh3;

use super::blocks::{BlockReader, Extent};
use super::chunk;
use super::error::{Result, StoreError};
use super::keys::{self, CHUNK_SIZE, DATA_TAG, OBJECT_TAG, OMAP_TAG, XATTR_TAG};
use super::txn::{object_section, validate_object, validate_omap_key, validate_xattr_name};
use super::types::{Eversion, ObjectId, ObjectInfo};
use super::{ObjectStore, PgHandle};

/// One page of an object listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPage {
    /// Objects in (namespace, name) byte order, with their metadata.
    pub objects: Vec<(ObjectId, ObjectInfo)>,
    /// Pass this as `after` to get the next page; `None` when the listing is complete.
    pub next: Option<ObjectId>,
}

/// One page of an object's omap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OmapPage {
    /// Entries in key order.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether entries follow the last one returned.
    pub more: bool,
}

/// What deep scrub compares between replicas: equal objects have equal digests whatever
/// their chunk layout (a hole and written zeros digest the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectDigest {
    /// The object's size.
    pub size: u64,
    /// The object's version.
    pub version: Eversion,
    /// xxh3-64 of the object's logical content (holes as zeros).
    pub data_digest: u64,
    /// xxh3-64 over the xattrs (names and values, length-prefixed, in name order).
    pub xattr_digest: u64,
    /// xxh3-64 over the omap (keys and values, length-prefixed, in key order).
    pub omap_digest: u64,
}

static ZEROS: [u8; CHUNK_SIZE] = [0; CHUNK_SIZE];

fn hash_zeros(hasher: &mut Xxh3, mut count: u64) {
    while count > 0 {
        let step = count.min(CHUNK_SIZE as u64) as usize;
        hasher.update(&ZEROS[..step]);
        count -= step as u64;
    }
}

fn hash_field(hasher: &mut Xxh3, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// A located object: its PG's handle and its encoded key.
struct Located {
    handle: std::sync::Arc<PgHandle>,
    oid: Vec<u8>,
}

impl ObjectStore {
    fn locate(&self, pg: PgId, object: &ObjectId) -> Result<Located> {
        validate_object(object, &self.config)?;
        Ok(Located {
            handle: self.handle(pg)?,
            oid: keys::object_key(object),
        })
    }

    /// Locates an object and fails with `ObjectNotFound` unless it exists.
    fn existing(&self, pg: PgId, object: &ObjectId) -> Result<(Located, ObjectInfo)> {
        let located = self.locate(pg, object)?;
        match self.load_meta(pg, &located.handle.keyspace, &located.oid, object)? {
            Some(info) => Ok((located, info)),
            None => Err(StoreError::ObjectNotFound {
                pg,
                object: object.clone(),
            }),
        }
    }

    /// An object's size, version and modification time.
    pub fn stat(&self, pg: PgId, object: &ObjectId) -> Result<ObjectInfo> {
        self.existing(pg, object).map(|(_, info)| info)
    }

    /// Reads up to `len` bytes at `offset` (as Ceph: `len` 0 reads to the end). Reads past
    /// the end are short, holes read as zeros, and every chunk touched is checked against
    /// its checksum: a mismatch fails with [`StoreError::Corruption`].
    pub fn read(&self, pg: PgId, object: &ObjectId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let _blocks = self.block_read_guard();
        let (located, info) = self.existing(pg, object)?;
        match read_span(offset, len, info.size) {
            Some((offset, end)) => self.read_located(pg, object, &located, offset, end),
            None => Ok(Vec::new()),
        }
    }

    /// [`ObjectStore::read`] as `Bytes`. A read of chunks that lie side by side in the block
    /// file as they are (what a large write of incompressible data leaves) is handed out in
    /// the buffer the disk read filled, after its checksums are verified: no copy of it,
    /// and no second buffer as large as the read.
    pub fn read_bytes(&self, pg: PgId, object: &ObjectId, offset: u64, len: u64) -> Result<Bytes> {
        let _blocks = self.block_read_guard();
        let (located, info) = self.existing(pg, object)?;
        let Some((offset, end)) = read_span(offset, len, info.size) else {
            return Ok(Bytes::new());
        };
        if let Some(bytes) = self.read_in_place(pg, object, &located, offset, end)? {
            return Ok(bytes);
        }
        self.read_located(pg, object, &located, offset, end)
            .map(Bytes::from)
    }

    /// The bytes `offset..end` of an existing object, if they are whole, uncompressed
    /// chunks side by side in the block file (`None`: read them the usual way).
    fn read_in_place(
        &self,
        pg: PgId,
        object: &ObjectId,
        located: &Located,
        offset: u64,
        end: u64,
    ) -> Result<Option<Bytes>> {
        let Some(blocks) = self.blocks.as_deref() else {
            return Ok(None);
        };
        let first = chunk_index(offset);
        let last = chunk_index(end - 1);
        if first == last {
            return Ok(None);
        }
        let prefix_len = 1 + located.oid.len();
        let range = KeyRange::new(
            Bound::Included(keys::data_key(&located.oid, first)),
            Bound::Included(keys::data_key(&located.oid, last)),
        );
        let mut references: Vec<(u32, chunk::BlockRef)> = Vec::new();
        for item in self.engine.scan(&located.handle.keyspace, range)? {
            let (key, value) = item?;
            let expected = first + references.len() as u32;
            // A hole, a chunk in the engine, a compressed or short one, or one apart from
            // the one before: not in place.
            let Some(Ok(reference)) = chunk::block_ref(&value) else {
                return Ok(None);
            };
            let adjacent = references.last().is_none_or(|(_, previous)| {
                previous.len() == CHUNK_SIZE
                    && previous.offset() + CHUNK_SIZE as u64 == reference.offset()
            });
            if keys::chunk_of_data_key(&key, prefix_len) != Some(expected)
                || !reference.is_raw()
                || !adjacent
            {
                return Ok(None);
            }
            references.push((expected, reference));
        }
        let (Some((_, head)), Some(&(tail_chunk, tail))) = (references.first(), references.last())
        else {
            return Ok(None);
        };
        let base = u64::from(first) * CHUNK_SIZE as u64;
        let stored_end = u64::from(tail_chunk) * CHUNK_SIZE as u64 + tail.len() as u64;
        if tail_chunk != last || stored_end < end {
            // The object's tail reads as zeros: that needs the usual path.
            return Ok(None);
        }
        let start = head.offset();
        let Ok(run) = blocks.read(start, (stored_end - base) as usize) else {
            // The usual path reports the failure, chunk by chunk.
            return Ok(None);
        };
        for (chunk, reference) in &references {
            let payload = run
                .get(reference.offset(), reference.len())
                .expect("the run spans every chunk's payload");
            reference
                .verify(payload)
                .map_err(|detail| StoreError::Corruption {
                    pg,
                    object: object.clone(),
                    chunk: *chunk,
                    detail,
                })?;
        }
        Ok(Some(run.into_bytes(
            (offset - base) as usize,
            (end - base) as usize,
        )))
    }

    /// The bytes `offset..end` of an existing object (held by the caller's block read guard).
    fn read_located(
        &self,
        pg: PgId,
        object: &ObjectId,
        located: &Located,
        offset: u64,
        end: u64,
    ) -> Result<Vec<u8>> {
        // end - offset <= size <= max_object_size, which a usize holds on 64-bit targets.
        let len = (end - offset) as usize;
        // Filled in chunk order without zeroing first: only holes (missing or short
        // chunks) are written as zeros.
        let mut out = Vec::with_capacity(len);
        let first = chunk_index(offset);
        let last = chunk_index(end - 1);
        let mut copy = |chunk: u32, data: &[u8]| -> Result<()> {
            let chunk_start = u64::from(chunk) * CHUNK_SIZE as u64;
            let from = offset.max(chunk_start);
            let to = end.min(chunk_start + data.len() as u64);
            if from < to {
                out.resize((from - offset) as usize, 0);
                out.extend_from_slice(
                    &data[(from - chunk_start) as usize..(to - chunk_start) as usize],
                );
            }
            Ok(())
        };
        if first == last {
            // One chunk (the common small read): a point lookup is cheaper than a scan.
            let key = keys::data_key(&located.oid, first);
            if let Some(value) = self.engine.get(&located.handle.keyspace, &key)? {
                let mut reader = self.block_reader(Vec::new());
                let data = chunk::load(&value, reader.as_mut()).map_err(|detail| {
                    StoreError::Corruption {
                        pg,
                        object: object.clone(),
                        chunk: first,
                        detail,
                    }
                })?;
                copy(first, &data)?;
            }
        } else {
            let ranges = self.block_ranges(located, first, last)?;
            let range = KeyRange::new(
                Bound::Included(keys::data_key(&located.oid, first)),
                Bound::Included(keys::data_key(&located.oid, last)),
            );
            self.for_each_chunk(pg, object, located, range, ranges, copy)?;
        }
        out.resize(len, 0);
        Ok(out)
    }

    /// The block file ranges that chunks `first..=last` occupy (from their block records),
    /// so that adjacent ones are read at once: a 4 MiB object not read this way was 64
    /// reads of 64 KiB in a row, each waiting for the disk.
    fn block_ranges(&self, located: &Located, first: u32, last: u32) -> Result<Vec<Extent>> {
        if self.blocks.is_none() {
            return Ok(Vec::new());
        }
        let range = KeyRange::new(
            Bound::Included(keys::block_key(&located.oid, first)),
            Bound::Included(keys::block_key(&located.oid, last)),
        );
        let mut ranges = Vec::new();
        for item in self.engine.scan(&located.handle.keyspace, range)? {
            let (_, value) = item?;
            // A damaged record is reported by the chunk read that needs it.
            ranges.extend(keys::decode_extent(&value));
        }
        Ok(ranges)
    }

    /// A reader of the block file expecting `ranges` (`None` for a store without one).
    fn block_reader(&self, ranges: Vec<Extent>) -> Option<BlockReader<'_>> {
        self.blocks
            .as_deref()
            .map(|blocks| BlockReader::new(blocks, ranges))
    }

    /// Visits the verified chunks in `range` (of `located`'s data keys) in order.
    fn for_each_chunk(
        &self,
        pg: PgId,
        object: &ObjectId,
        located: &Located,
        range: KeyRange,
        block_ranges: Vec<Extent>,
        mut visit: impl FnMut(u32, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let prefix_len = 1 + located.oid.len();
        let mut reader = self.block_reader(block_ranges);
        let mut failure = None;
        // The engine lends its buffers: a 4 MiB read copies each raw chunk once, into the
        // caller's output, after verifying it (a compressed one is decompressed first).
        self.engine
            .visit(&located.handle.keyspace, range, &mut |key, value| {
                let corrupt = |chunk, detail| StoreError::Corruption {
                    pg,
                    object: object.clone(),
                    chunk,
                    detail,
                };
                let visited = match keys::chunk_of_data_key(key, prefix_len) {
                    None => Err(corrupt(u32::MAX, format!("malformed data key {key:02x?}"))),
                    Some(chunk) => chunk::load(value, reader.as_mut())
                        .map_err(|detail| corrupt(chunk, detail))
                        .and_then(|data| visit(chunk, &data)),
                };
                match visited {
                    Ok(()) => true,
                    Err(error) => {
                        failure = Some(error);
                        false
                    }
                }
            })?;
        failure.map_or(Ok(()), Err)
    }

    /// One xattr's value (`XattrNotFound` if absent).
    pub fn get_xattr(&self, pg: PgId, object: &ObjectId, name: &str) -> Result<Vec<u8>> {
        validate_xattr_name(name, &self.config)?;
        let (located, _) = self.existing(pg, object)?;
        let key = keys::xattr_key(&located.oid, name);
        self.engine
            .get(&located.handle.keyspace, &key)?
            .ok_or_else(|| StoreError::XattrNotFound {
                pg,
                object: object.clone(),
                name: name.to_owned(),
            })
    }

    /// Every xattr of the object, by name.
    pub fn xattrs(&self, pg: PgId, object: &ObjectId) -> Result<BTreeMap<String, Vec<u8>>> {
        let (located, _) = self.existing(pg, object)?;
        let prefix_len = 1 + located.oid.len();
        let range = object_section(XATTR_TAG, &located.oid, b"");
        let mut xattrs = BTreeMap::new();
        for item in self.engine.scan(&located.handle.keyspace, range)? {
            let (key, value) = item?;
            let name = String::from_utf8(key[prefix_len..].to_vec()).map_err(|_| {
                StoreError::corrupt_record(
                    format!("xattr key of object {object} in pg {pg}"),
                    "name is not UTF-8",
                )
            })?;
            xattrs.insert(name, value);
        }
        Ok(xattrs)
    }

    /// Up to `max` omap entries in key order, starting after `start_after` (or at the first).
    pub fn omap_list(
        &self,
        pg: PgId,
        object: &ObjectId,
        start_after: Option<&[u8]>,
        max: usize,
    ) -> Result<OmapPage> {
        if let Some(key) = start_after {
            validate_omap_key(key, &self.config)?;
        }
        let (located, _) = self.existing(pg, object)?;
        let prefix_len = 1 + located.oid.len();
        let section = object_section(OMAP_TAG, &located.oid, b"");
        let range = match start_after {
            Some(key) => KeyRange::new(
                Bound::Excluded(keys::omap_key(&located.oid, key)),
                section.end().map(<[u8]>::to_vec),
            ),
            None => section,
        };
        let mut entries = Vec::new();
        let mut more = false;
        for item in self.engine.scan(&located.handle.keyspace, range)? {
            let (key, value) = item?;
            if entries.len() == max {
                more = true;
                break;
            }
            entries.push((key[prefix_len..].to_vec(), value));
        }
        Ok(OmapPage { entries, more })
    }

    /// The values of those of `keys` that are set.
    pub fn omap_get(
        &self,
        pg: PgId,
        object: &ObjectId,
        keys: &[Vec<u8>],
    ) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        for key in keys {
            validate_omap_key(key, &self.config)?;
        }
        let (located, _) = self.existing(pg, object)?;
        let mut found = BTreeMap::new();
        for key in keys {
            let stored = keys::omap_key(&located.oid, key);
            if let Some(value) = self.engine.get(&located.handle.keyspace, &stored)? {
                found.insert(key.clone(), value);
            }
        }
        Ok(found)
    }

    /// Up to `max` objects of the PG in (namespace, name) byte order — of one namespace
    /// if `namespace` is given — starting after `after`. The order is the same on every
    /// OSD and stable across restarts, so backfill can walk two replicas side by side.
    pub fn list_objects(
        &self,
        pg: PgId,
        namespace: Option<&str>,
        after: Option<&ObjectId>,
        max: usize,
    ) -> Result<ObjectPage> {
        let handle = self.handle(pg)?;
        let prefix = match namespace {
            Some(namespace) => keys::tagged(OBJECT_TAG, &[&keys::namespace_key(namespace)]),
            None => vec![OBJECT_TAG],
        };
        let section = KeyRange::prefix(&prefix);
        let start = match after {
            Some(cursor) => {
                let cursor_key = keys::meta_key(&keys::object_key(cursor));
                if cursor_key.as_slice() >= prefix.as_slice() {
                    Bound::Excluded(cursor_key)
                } else {
                    Bound::Included(prefix.clone())
                }
            }
            None => Bound::Included(prefix.clone()),
        };
        let range = KeyRange::new(start, section.end().map(<[u8]>::to_vec));
        let mut objects = Vec::new();
        let mut more = false;
        for item in self.engine.scan(&handle.keyspace, range)? {
            let (key, value) = item?;
            if objects.len() == max {
                more = true;
                break;
            }
            let what = || format!("object metadata key {key:02x?} in pg {pg}");
            let object = keys::decode_object_key(&key[1..])
                .ok_or_else(|| StoreError::corrupt_record(what(), "undecodable object key"))?;
            let info = ObjectInfo::decode(&value)
                .map_err(|reason| StoreError::corrupt_record(what(), reason))?;
            objects.push((object, info));
        }
        let next = if more {
            objects.last().map(|(object, _)| object.clone())
        } else {
            None
        };
        Ok(ObjectPage { objects, next })
    }

    /// The object's digests for deep scrub. Reads every chunk, so it also finds corrupt
    /// chunks ([`StoreError::Corruption`]).
    pub fn object_digest(&self, pg: PgId, object: &ObjectId) -> Result<ObjectDigest> {
        let _blocks = self.block_read_guard();
        let (located, info) = self.existing(pg, object)?;
        let mut data = Xxh3::new();
        let mut position = 0u64;
        let range = object_section(DATA_TAG, &located.oid, b"");
        let ranges = self.block_ranges(&located, 0, u32::MAX)?;
        self.for_each_chunk(pg, object, &located, range, ranges, |chunk, bytes| {
            let chunk_start = u64::from(chunk) * CHUNK_SIZE as u64;
            let chunk_end = chunk_start + bytes.len() as u64;
            if chunk_end > info.size {
                return Err(StoreError::Corruption {
                    pg,
                    object: object.clone(),
                    chunk,
                    detail: format!("holds bytes up to {chunk_end}, past the size {}", info.size),
                });
            }
            hash_zeros(&mut data, chunk_start - position);
            data.update(bytes);
            position = chunk_end;
            Ok(())
        })?;
        hash_zeros(&mut data, info.size - position);

        let mut xattrs = Xxh3::new();
        for (name, value) in self.xattrs(pg, object)? {
            hash_field(&mut xattrs, name.as_bytes());
            hash_field(&mut xattrs, &value);
        }
        let mut omap = Xxh3::new();
        let prefix_len = 1 + located.oid.len();
        let range = object_section(OMAP_TAG, &located.oid, b"");
        for item in self.engine.scan(&located.handle.keyspace, range)? {
            let (key, value) = item?;
            hash_field(&mut omap, &key[prefix_len..]);
            hash_field(&mut omap, &value);
        }
        Ok(ObjectDigest {
            size: info.size,
            version: info.version,
            data_digest: data.digest(),
            xattr_digest: xattrs.digest(),
            omap_digest: omap.digest(),
        })
    }
}

/// The bytes `offset..end` that a read of `len` bytes at `offset` covers in an object of
/// `size` bytes (`len` 0: to the end), or `None` if none.
fn read_span(offset: u64, len: u64, size: u64) -> Option<(u64, u64)> {
    let len = if len == 0 { size } else { len };
    let end = offset.saturating_add(len).min(size);
    (offset < end).then_some((offset, end))
}

fn chunk_index(offset: u64) -> u32 {
    u32::try_from(offset / CHUNK_SIZE as u64).unwrap_or(u32::MAX)
}
