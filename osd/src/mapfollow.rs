//! Following the cluster map: a monclient [`MapWatch`] subscription (which fails over
//! between monitors by itself) feeding every new epoch to [`Node::apply_map`], and booting
//! again when a map marks this running OSD down (as Ceph's OSDs do when "wrongly marked
//! down": after a partition, or reports that raced a restart), so it does not stay down
//! until someone restarts it.

use std::sync::Arc;
use std::time::Duration;

use clustermap::{Epoch, OsdId};
use monclient::MapWatch;
use proto::mon::OsdBootRequest;

use crate::node::Node;
use crate::reporter::MonReport;

/// What booting again needs.
pub struct Reboot {
    /// This OSD's id.
    pub id: OsdId,
    /// Where boots go.
    pub report: MonReport,
    /// The boot request the OSD started with.
    pub request: OsdBootRequest,
    /// The epoch of the map that answered the last boot: only a newer map that still shows
    /// us down triggers another one (under `noup` a boot changes nothing, so this bounds
    /// boots to one per epoch).
    pub booted_at: Epoch,
}

/// Runs forever, applying each new map.
pub async fn follow(node: Arc<Node>, mut watch: MapWatch, mut reboot: Reboot) {
    loop {
        match watch.next().await {
            Ok(event) => {
                let epoch = event.map.epoch();
                if epoch > node.epoch() {
                    tracing::debug!(epoch, full = event.full, from = event.from, "new map");
                    let marked_down = event.map.exists(reboot.id) && !event.map.is_up(reboot.id);
                    node.apply_map(event.map).await;
                    if marked_down && epoch > reboot.booted_at {
                        tracing::warn!(
                            osd = reboot.id,
                            epoch,
                            "the map marks this running OSD down: booting again"
                        );
                        let mut request = reboot.request.clone();
                        request.osd_id = Some(reboot.id);
                        request.epoch = u64::from(epoch);
                        match reboot.report.boot(request).await {
                            Ok(reply) => {
                                reboot.booted_at = Epoch::try_from(reply.epoch)
                                    .unwrap_or(Epoch::MAX)
                                    .max(epoch);
                            }
                            Err(status) => {
                                tracing::warn!(%status, "booting again failed; will retry on the next map");
                            }
                        }
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "map watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
