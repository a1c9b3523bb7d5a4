//! The link that carries replicated writes from this OSD to one peer: a
//! [`proto::link::Link`] of kind `Replicate` (see there for why and how it fails).

use std::sync::Arc;
use std::time::Duration;

use proto::link::LinkKind;
pub use proto::link::{LinkError, ReplicaLink};

/// How long opening a link to a peer may take before the link counts as closed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Opens a replication link to `peer` at `addr`.
pub fn open(addr: String, peer: i32) -> Arc<ReplicaLink> {
    ReplicaLink::open(
        addr,
        format!("osd.{peer}"),
        LinkKind::Replicate,
        CONNECT_TIMEOUT,
    )
}
