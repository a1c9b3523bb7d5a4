//! The OSD (`shoal-osd`): the object store on the `kv` engine, PGs and their logs,
//! replication, peering and heartbeats (DESIGN.md §4-§5).
//!
//! * [`store`]: the object store (objects, chunks and checksums, xattrs, omap, the PG log
//!   and PG info, atomic transactions, group-committed durability, recovery installs);
//! * [`store_pool`]: the threads that run large store work;
//! * [`syncer`]: the thread that makes applied writes durable for async callers;
//! * [`config`]: the `[osd]` table of the cluster config;
//! * [`daemon`]: startup (store, identity, listen, boot), the tasks, clean shutdown;
//! * [`node`]: the state the tasks share and map application;
//! * [`mapfollow`]: the map subscription;
//! * [`memory`]: handing freed memory back to the kernel;
//! * [`pg`]: one PG: ordering, versions, replication, reads, peering;
//! * [`server`]: the `Osd` gRPC service and the links' requests;
//! * [`wire`]: proto conversions and the op error mapping;
//! * [`peers`]: channels to other OSDs;
//! * [`replica_link`]: the link that carries small replicated writes to one peer;
//! * [`heartbeat`], [`reporter`]: pings and failure reports, beacons, PG statistics;
//! * [`space`]: the OSD's storage usage, and refusing writes that need space when full;
//! * [`status`]: the admin view.
//!
//! The monitors are reached through `monclient`'s `MonClient`/`MapWatch` (shared with
//! librados, so that monitor failover exists once).
#![deny(missing_docs)]

pub mod config;
pub mod daemon;
pub mod heartbeat;
pub mod mapfollow;
pub mod memory;
pub mod node;
pub mod peers;
pub mod pg;
pub mod replica_link;
pub mod reporter;
pub mod server;
pub mod space;
pub mod status;
pub mod store;
pub mod store_pool;
pub mod syncer;
pub mod wire;
