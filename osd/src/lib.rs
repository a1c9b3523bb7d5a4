//! The OSD (`shoal-osd`): the object store on the `kv` engine, PGs and their logs,
//! replication, peering, recovery, backfill, scrub and heartbeats.
//!
//! Built so far: [`store`], the object store (objects, chunks and checksums, xattrs, omap,
//! the PG log and PG info, atomic transactions, group-committed durability). The daemon,
//! its networking, replication and peering come later.
#![deny(missing_docs)]

pub mod store;
