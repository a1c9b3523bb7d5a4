//! The stream that carries small replicated writes from this OSD to one peer: a
//! [`proto::link::Link`] over `ReplicateStream` (see there for why and how it fails).

use std::sync::Arc;

use tonic::transport::Channel;

pub use proto::link::{LinkError, ReplicaLink};

/// Opens a replication link to `peer` at `addr` over `channel`.
pub fn open(addr: String, channel: Channel, peer: i32) -> Arc<ReplicaLink> {
    ReplicaLink::open(addr, format!("osd.{peer}"), move |writes| async move {
        crate::peers::osd_client(channel)
            .replicate_stream(writes)
            .await
    })
}
