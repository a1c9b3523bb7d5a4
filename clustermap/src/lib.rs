//! The cluster map: epochs, monitors, OSDs, pools, the CRUSH map, `pg_temp` and
//! `primary_temp`, cluster flags; the typed changes the monitors apply to it; incrementals
//! between epochs; the object → PG → OSD mapping of DESIGN.md §2; and the health rules.
//! Pure: no I/O, no async, no clock (times come in with the changes).
//!
//! * [`map`]: [`ClusterMap`] and what it holds ([`OsdInfo`], [`Pool`], [`MonitorInfo`]);
//! * [`change`]: [`MapChange`] batches that make the next epoch, with [`ChangeError`];
//! * [`crush_edit`]: [`CrushEdit`], CRUSH edits passed through to [`crush::builder`];
//! * [`incremental`]: [`Incremental`] diffs between epochs;
//! * [`placement`]: object and PG mapping ([`ClusterMap::osd_map`], [`PgMapper`]);
//! * [`mod@health`]: [`health()`] with Ceph's check codes;
//! * [`types`]: ids, uuids, flags and hashes.
#![deny(missing_docs)]

pub mod change;
pub mod crush_edit;
mod crush_wire;
pub mod health;
pub mod incremental;
pub mod map;
pub mod placement;
pub mod types;

pub use change::{ChangeError, MapChange, NewOsd, PoolSetting, PoolSpec};
pub use crush_edit::CrushEdit;
pub use health::{
    health, Health, HealthCheck, HealthConfig, HealthInput, PgStatReport, PgState, Severity,
};
pub use incremental::{Incremental, IncrementalError};
pub use map::{ClusterMap, FormatError, MonitorInfo, OsdInfo, Pool, PoolFlags, FORMAT_VERSION};
pub use placement::{MappingError, ObjectMapping, PgMapper, PgMapping};
pub use types::{
    used_ratio, ClusterFlag, Epoch, Fullness, ObjectHash, OsdId, PgId, PoolId, PoolType,
    UnixMillis, Uuid,
};
