//! The OSD (`shoal-osd`): the object store on the `kv` engine, PGs and their logs,
//! replication, peering, recovery, backfill, scrub and heartbeats.
//!
//! Not built yet: the OSD issue brings it.
