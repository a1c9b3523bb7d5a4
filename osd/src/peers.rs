//! [`Peers`]: one reused gRPC channel per peer OSD, found by the address the map gives
//! it, and one [`ReplicaLink`] for small replicated writes. Both are replaced when
//! the map gives the OSD a new address (it restarted), and a link also when its connection
//! ended, so connections are opened once per peer life, not per message. HTTP/2 windows
//! are made large enough for whole 4 MiB objects to stream without stalls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clustermap::{ClusterMap, OsdId};
use proto::osd::osd_client::OsdClient;
use tonic::transport::{Channel, Endpoint};

use crate::replica_link::ReplicaLink;

/// The channel and link cache.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<OsdId, (String, Channel)>>,
    links: Mutex<HashMap<OsdId, Arc<ReplicaLink>>>,
}

/// A client of the OSD service on `channel`, with the message limits set.
pub fn osd_client(channel: Channel) -> OsdClient<Channel> {
    OsdClient::new(channel)
        .max_decoding_message_size(proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(proto::MAX_MESSAGE_BYTES)
}

/// A lazily connecting channel to `addr`.
pub fn channel_to(addr: &str) -> Option<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))
        .ok()
        .map(|endpoint| {
            endpoint
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true)
                .initial_stream_window_size(proto::OSD_STREAM_WINDOW)
                .initial_connection_window_size(proto::OSD_CONNECTION_WINDOW)
                .max_frame_size(proto::OSD_MAX_FRAME_BYTES)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .connect_lazy()
        })
}

impl Peers {
    /// A client of `osd` at the address `map` gives it; `None` when the map has none.
    pub fn client(&self, map: &ClusterMap, osd: OsdId) -> Option<OsdClient<Channel>> {
        self.channel(map, osd)
            .map(|(_, channel)| osd_client(channel))
    }

    /// The replication link to `osd` at the address `map` gives it, opened if there is
    /// none to that address or the last one closed; `None` when the map has no address.
    pub fn link(&self, map: &ClusterMap, osd: OsdId) -> Option<Arc<ReplicaLink>> {
        let addr = map.osd(osd)?.address.clone()?;
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(link) = links.get(&osd) {
            if link.addr() == addr && !link.is_closed() {
                return Some(Arc::clone(link));
            }
        }
        let link = crate::replica_link::open(addr, osd);
        links.insert(osd, Arc::clone(&link));
        Some(link)
    }

    fn channel(&self, map: &ClusterMap, osd: OsdId) -> Option<(String, Channel)> {
        let addr = map.osd(osd)?.address.clone()?;
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((known, channel)) = channels.get(&osd) {
            if *known == addr {
                return Some((addr, channel.clone()));
            }
        }
        let channel = channel_to(&addr)?;
        channels.insert(osd, (addr.clone(), channel.clone()));
        Some((addr, channel))
    }
}
