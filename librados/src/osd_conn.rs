//! Connections to OSDs: one lazily connected tonic channel per OSD address, shared by every
//! op to that OSD (HTTP/2 multiplexes them, so concurrent ops need no pool of their own).
//! A channel that failed is dropped ([`OsdConns::forget`]) so the next op reconnects, and
//! an OSD that restarts at a new address simply gets a new channel. Beside each channel, one
//! [`OpLink`] carries the writes and small reads (see [`crate::ioctx`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::link::{LinkKind, OpLink};
use proto::osd::osd_client::OsdClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::RadosError;

/// The channel cache.
#[derive(Debug)]
pub(crate) struct OsdConns {
    connect_timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
    links: Mutex<HashMap<String, Arc<OpLink>>>,
}

impl OsdConns {
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        OsdConns {
            connect_timeout,
            channels: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
        }
    }

    /// A client for the OSD at `addr` (connecting on first use).
    pub(crate) fn client(&self, osd: i32, addr: &str) -> Result<OsdClient<Channel>, RadosError> {
        Ok(Self::limited(self.channel(osd, addr)?))
    }

    /// The op link to the OSD at `addr`, opened if there is none or the last one closed.
    pub(crate) fn op_link(&self, osd: i32, addr: &str) -> Arc<OpLink> {
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(link) = links.get(addr) {
            if !link.is_closed() {
                return Arc::clone(link);
            }
        }
        let link = OpLink::open(
            addr.to_owned(),
            format!("osd.{osd}"),
            LinkKind::Ops,
            self.connect_timeout,
        );
        links.insert(addr.to_owned(), Arc::clone(&link));
        link
    }

    fn limited(channel: Channel) -> OsdClient<Channel> {
        OsdClient::new(channel)
            .max_decoding_message_size(proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(proto::MAX_MESSAGE_BYTES)
    }

    fn channel(&self, osd: i32, addr: &str) -> Result<Channel, RadosError> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|error| RadosError::Transport {
                        osd,
                        reason: format!("bad address `{addr}`: {error}"),
                    })?
                    .connect_timeout(self.connect_timeout)
                    .tcp_nodelay(true)
                    .initial_stream_window_size(proto::OSD_STREAM_WINDOW)
                    .initial_connection_window_size(proto::OSD_CONNECTION_WINDOW)
                    .max_frame_size(proto::OSD_MAX_FRAME_BYTES)
                    // HTTP/2 keepalive notices a peer that vanished without closing the
                    // connection (a killed host) while an op waits for its reply.
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .keep_alive_while_idle(false)
                    .connect_lazy();
                channels.insert(addr.to_owned(), channel.clone());
                channel
            }
        };
        Ok(channel)
    }

    /// Drops the channel to `addr`, and the op link to it, after a transport failure.
    pub(crate) fn forget(&self, addr: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(addr);
        self.links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(addr);
    }
}
