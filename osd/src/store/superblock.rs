//! The [`Superblock`]: the one record that says an engine holds an OSD object store, in
//! which on-disk format, for which OSD, and with which fixed parameters.

use clustermap::{OsdId, Uuid};

use super::codec::{Decoder, Encoder};
use super::error::{Result, StoreError};
use super::keys::CHUNK_SIZE;

/// The on-disk format this code writes. Bump it (and add a migration from the previous one,
/// run by [`super::ObjectStore::open`]) whenever a key or record layout changes. Format 2
/// added the kind byte of data chunks (compression, see `chunk`); format 3 dropped the
/// on-disk request-id index (rebuilt from the log in memory, see `pglog`); format 4's log
/// entries carry the PG's statistics, and the PG info is stored only when the log's tail
/// moves (brought forward from the log at open, see `pglog::open`).
pub const FORMAT_VERSION: u32 = 4;

/// The oldest format [`super::ObjectStore::open`] upgrades from.
pub const OLDEST_UPGRADABLE_FORMAT: u32 = 1;

const SUPERBLOCK_RECORD: u8 = 1;

/// The store's identity and format, kept under `osd_super`/`superblock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// The format the store was written in ([`FORMAT_VERSION`] for stores this code made).
    pub format_version: u32,
    /// The OSD's uuid (its identity in the data directory and towards the monitors).
    pub osd_uuid: Uuid,
    /// The id the monitors gave the OSD, once they did.
    pub osd_id: Option<OsdId>,
    /// Bytes per data chunk (fixed when the store is made).
    pub chunk_size: u32,
}

impl Superblock {
    /// The superblock of a freshly made store.
    pub(crate) fn new(osd_uuid: Uuid) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            osd_uuid,
            osd_id: None,
            chunk_size: CHUNK_SIZE as u32,
        }
    }

    /// The record as stored under `osd_super`/`superblock`.
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = Encoder::new(SUPERBLOCK_RECORD);
        encoder.u32(self.format_version).raw(&self.osd_uuid.0);
        match self.osd_id {
            Some(id) => encoder.u8(1).i32(id),
            None => encoder.u8(0),
        };
        encoder.u32(self.chunk_size);
        encoder.finish()
    }

    /// Decodes and checks that this code can use the store.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason| StoreError::corrupt_record("superblock", reason);
        let mut decoder = Decoder::new(bytes, SUPERBLOCK_RECORD).map_err(corrupt)?;
        let format_version = decoder.u32().map_err(corrupt)?;
        if !(OLDEST_UPGRADABLE_FORMAT..=FORMAT_VERSION).contains(&format_version) {
            return Err(StoreError::Incompatible {
                reason: format!(
                    "on-disk format {format_version}, this build reads formats \
                     {OLDEST_UPGRADABLE_FORMAT} to {FORMAT_VERSION}"
                ),
            });
        }
        let osd_uuid = Uuid(decoder.raw().map_err(corrupt)?);
        let osd_id = match decoder.u8().map_err(corrupt)? {
            0 => None,
            1 => Some(decoder.i32().map_err(corrupt)?),
            _ => return Err(corrupt("bad osd id flag")),
        };
        let chunk_size = decoder.u32().map_err(corrupt)?;
        decoder.finish().map_err(corrupt)?;
        if chunk_size as usize != CHUNK_SIZE {
            return Err(StoreError::Incompatible {
                reason: format!("chunk size {chunk_size}, this build uses {CHUNK_SIZE}"),
            });
        }
        Ok(Self {
            format_version,
            osd_uuid,
            osd_id,
            chunk_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips_and_refuses_other_formats() {
        let mut superblock = Superblock::new(Uuid([7; 16]));
        assert_eq!(
            Superblock::decode(&superblock.encode()).unwrap(),
            superblock
        );
        superblock.osd_id = Some(12);
        assert_eq!(
            Superblock::decode(&superblock.encode()).unwrap(),
            superblock
        );

        superblock.format_version = OLDEST_UPGRADABLE_FORMAT;
        assert_eq!(
            Superblock::decode(&superblock.encode()).unwrap(),
            superblock
        );
        superblock.format_version = OLDEST_UPGRADABLE_FORMAT - 1;
        assert!(matches!(
            Superblock::decode(&superblock.encode()),
            Err(StoreError::Incompatible { .. })
        ));
        superblock.format_version = FORMAT_VERSION + 1;
        assert!(matches!(
            Superblock::decode(&superblock.encode()),
            Err(StoreError::Incompatible { .. })
        ));
        let mut other_chunks = Superblock::new(Uuid::NIL);
        other_chunks.chunk_size = 4096;
        assert!(matches!(
            Superblock::decode(&other_chunks.encode()),
            Err(StoreError::Incompatible { .. })
        ));
        assert!(matches!(
            Superblock::decode(b"junk"),
            Err(StoreError::CorruptRecord { .. })
        ));
    }
}
