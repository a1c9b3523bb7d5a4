//! The cluster map: epochs, OSDs, pools, the CRUSH map, pg_temp and primary_temp, incrementals,
//! the object -> PG -> OSD mapping and health rules. Pure: no I/O, no async.
//!
//! Not built yet: the monitors' issue brings it.
