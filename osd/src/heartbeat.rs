//! Heartbeats (DESIGN.md §4): every `heartbeat_interval` (jittered by ±20 % so OSDs do
//! not ping in lockstep) this OSD pings each up OSD it shares a PG with. A peer that has not
//! answered for `heartbeat_grace` is reported failed to the monitors, again each round
//! until the map marks it down; when it answers again the report is withdrawn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clustermap::OsdId;
use proto::mon::FailureReport;
use proto::osd::PingRequest;

use crate::node::Node;
use crate::reporter::MonReport;
use crate::wire;

struct PeerState {
    /// When it last answered (or when we started pinging it).
    last_ok: Instant,
    /// Whether a failure report is outstanding.
    reported: bool,
}

/// A small xorshift generator for jitter (no need for a cryptographic source).
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Jitter(seed | 1)
    }

    /// `base` scaled by a factor in [0.8, 1.2).
    fn around(&mut self, base: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let permille = 800 + self.0 % 400;
        base * permille as u32 / 1000
    }
}

/// Runs forever: pings peers, reports and withdraws failures.
pub async fn heartbeat_loop(node: Arc<Node>, report: MonReport) {
    let interval = node.config.heartbeat_interval();
    let grace = node.config.heartbeat_grace();
    let mut jitter = Jitter::new();
    let mut peers: HashMap<OsdId, PeerState> = HashMap::new();
    let answers: Arc<Mutex<HashMap<OsdId, Instant>>> = Arc::default();
    loop {
        tokio::time::sleep(jitter.around(interval)).await;
        let now = Instant::now();
        let current = node.heartbeat_peers();
        peers.retain(|osd, _| current.contains(osd));
        for osd in &current {
            peers.entry(*osd).or_insert(PeerState {
                last_ok: now,
                reported: false,
            });
        }
        let epoch = u64::from(node.epoch());
        if let Some(map) = node.map() {
            for osd in &current {
                let Some(mut client) = node.peers.client(&map, *osd) else {
                    continue;
                };
                let answers = Arc::clone(&answers);
                let request = PingRequest {
                    from_osd: node.id,
                    epoch,
                    sent_ns: wire::time_to_nanos(SystemTime::now()),
                };
                let osd = *osd;
                tokio::spawn(async move {
                    let ping = tokio::time::timeout(grace, client.ping(request)).await;
                    if matches!(ping, Ok(Ok(_))) {
                        answers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(osd, Instant::now());
                    }
                });
            }
        }
        let answered: HashMap<OsdId, Instant> =
            std::mem::take(&mut *answers.lock().unwrap_or_else(|p| p.into_inner()));
        for (osd, state) in peers.iter_mut() {
            if let Some(at) = answered.get(osd) {
                state.last_ok = state.last_ok.max(*at);
            }
            let silent = now.saturating_duration_since(state.last_ok);
            if silent > grace {
                if !state.reported {
                    tracing::warn!(
                        peer = osd,
                        silent_ms = silent.as_millis() as u64,
                        "reported osd.{osd} failed: no heartbeat reply for {} ms",
                        silent.as_millis()
                    );
                }
                state.reported = true;
                send(&report, &node, *osd, silent, false);
            } else if state.reported {
                tracing::info!(
                    peer = osd,
                    "osd.{osd} answers heartbeats again; withdrawing the failure report"
                );
                state.reported = false;
                send(&report, &node, *osd, Duration::ZERO, true);
            }
        }
    }
}

fn send(report: &MonReport, node: &Node, target: OsdId, silent: Duration, alive: bool) {
    let report = report.clone();
    let failure = FailureReport {
        reporter: node.id,
        target,
        failed_for_ms: silent.as_millis() as u64,
        alive,
        epoch: u64::from(node.epoch()),
    };
    tokio::spawn(async move {
        if let Err(status) = report.report_failure(failure).await {
            tracing::warn!(target, %status, "failure report to the monitors failed");
        }
    });
}
