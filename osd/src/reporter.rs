//! Talking to the monitors' `OsdReport` service: [`MonReport`] (any monitor answers; on a
//! transport error or UNAVAILABLE the next one is tried), and the loops that send beacons
//! and the statistics of the PGs this OSD is primary for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monclient::MonClient;
use proto::mon::osd_report_client::OsdReportClient;
use proto::mon::{FailureReport, OsdBeacon, OsdBootReply, OsdBootRequest, PgStat, PgStatsReport};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::node::Node;
use crate::peers::channel_to;
use crate::pg::{Pg, Role};

/// The longest one call to one monitor may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the monitors' OSD-facing service.
#[derive(Clone)]
pub struct MonReport {
    mon: MonClient,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl MonReport {
    /// Over the monitors `mon` knows (configured and learnt from maps).
    pub fn new(mon: MonClient) -> Self {
        MonReport {
            mon,
            channels: Arc::default(),
        }
    }

    fn client(&self, addr: &str) -> Option<OsdReportClient<Channel>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = channel_to(addr)?;
                channels.insert(addr.to_owned(), channel.clone());
                channel
            }
        };
        Some(OsdReportClient::new(channel))
    }

    fn forget(&self, addr: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr);
    }

    /// Calls `call` on each monitor in turn until one answers; a final answer (not
    /// UNAVAILABLE or a transport failure) ends the round.
    async fn on_any<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(OsdReportClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut last = Status::unavailable("no monitor address");
        for addr in self.mon.addresses() {
            let Some(client) = self.client(&addr) else {
                continue;
            };
            match tokio::time::timeout(CALL_TIMEOUT, call(client)).await {
                Ok(Ok(reply)) => return Ok(reply.into_inner()),
                Ok(Err(status))
                    if !matches!(
                        status.code(),
                        Code::Unavailable
                            | Code::Unknown
                            | Code::Cancelled
                            | Code::DeadlineExceeded
                    ) =>
                {
                    return Err(status)
                }
                Ok(Err(status)) => {
                    self.forget(&addr);
                    last = status;
                }
                Err(_) => {
                    self.forget(&addr);
                    last = Status::deadline_exceeded(format!("monitor {addr} did not answer"));
                }
            }
        }
        Err(last)
    }

    /// `Boot`.
    pub async fn boot(&self, request: OsdBootRequest) -> Result<OsdBootReply, Status> {
        self.on_any(|mut client| {
            let request = request.clone();
            async move { client.boot(request).await }
        })
        .await
    }

    /// `Beacon`; returns the monitors' epoch.
    pub async fn beacon(&self, beacon: OsdBeacon) -> Result<u64, Status> {
        self.on_any(|mut client| async move { client.beacon(beacon).await })
            .await
            .map(|reply| reply.epoch)
    }

    /// `ReportFailure`.
    pub async fn report_failure(&self, report: FailureReport) -> Result<u64, Status> {
        self.on_any(|mut client| async move { client.report_failure(report).await })
            .await
            .map(|reply| reply.epoch)
    }

    /// `ReportPgStats`.
    pub async fn report_pg_stats(&self, report: PgStatsReport) -> Result<u64, Status> {
        self.on_any(|mut client| {
            let report = report.clone();
            async move { client.report_pg_stats(report).await }
        })
        .await
        .map(|reply| reply.epoch)
    }
}

/// Sends a beacon every `beacon_interval`; catches up when the monitors are ahead.
pub async fn beacon_loop(node: Arc<Node>, report: MonReport) {
    let mut ticker = tokio::time::interval(node.config.beacon_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let usage = node.space.last();
        let beacon = OsdBeacon {
            osd_id: node.id,
            epoch: u64::from(node.epoch()),
            bytes_total: usage.map_or(0, |usage| usage.total),
            bytes_available: usage.map_or(0, |usage| usage.available),
        };
        match report.beacon(beacon).await {
            Ok(epoch) => {
                let epoch = u32::try_from(epoch).unwrap_or(u32::MAX);
                if epoch > node.epoch() {
                    let node = Arc::clone(&node);
                    tokio::spawn(async move {
                        node.catch_up(epoch, Duration::from_secs(5)).await;
                    });
                }
            }
            Err(status) => tracing::warn!(%status, "beacon to the monitors failed"),
        }
    }
}

/// Reports the PGs this OSD is primary for, every `pg_stats_interval` and soon after a
/// state change.
pub async fn pg_stats_loop(node: Arc<Node>, report: MonReport) {
    let interval = node.config.pg_stats_interval();
    loop {
        // A burst of changes (a map with many PGs) is reported once.
        let _ = tokio::time::timeout(interval, node.stats_kick.notified()).await;
        tokio::time::sleep(Duration::from_millis(50).min(interval)).await;
        let mut pgs = Vec::new();
        for pg in node.all_pgs() {
            let view = pg.view();
            if view.role != Role::Primary {
                continue;
            }
            let info = node.store.pg_info(pg.id).ok();
            let objects = info.map_or(0, |i| i.stats.objects);
            let degraded = if (view.acting.len() as u32) < view.size {
                objects * u64::from(view.size - view.acting.len() as u32)
            } else {
                view.degraded
            };
            pgs.push(PgStat {
                pool: pg.id.pool,
                seed: pg.id.ps,
                state: Pg::state_name(&view),
                num_objects: objects,
                num_bytes: info.map_or(0, |i| i.stats.bytes),
                num_objects_degraded: degraded,
                num_objects_inconsistent: 0,
            });
        }
        let request = PgStatsReport {
            osd_id: node.id,
            epoch: u64::from(node.epoch()),
            pgs,
        };
        if let Err(status) = report.report_pg_stats(request).await {
            tracing::warn!(%status, "pg statistics to the monitors failed");
        }
    }
}
