//! Waiting for the cluster's state, as the monitors report it: `HEALTH_OK` with every PG
//! `active+clean` ([`Cluster::wait_healthy`]), an OSD marked down or up
//! ([`Cluster::wait_osd_down`], [`Cluster::wait_osd_up`]). Every wait polls with a deadline
//! and, when it runs out, says what it saw last.

use std::time::{Duration, Instant};

use monclient::ClusterStatus;

use super::{Cluster, Daemon, POLL};
use crate::error::DeployError;

/// Why `status` is not healthy yet, or `None` when it is: `HEALTH_OK`, and every PG the
/// OSDs reported is `active+clean`.
pub fn unhealthy_reason(status: &ClusterStatus) -> Option<String> {
    let Some(health) = &status.health else {
        return Some(format!(
            "monitor {} answered without health (not the leader)",
            status.answered_by
        ));
    };
    if health.status != "HEALTH_OK" {
        let checks: Vec<String> = health
            .checks
            .iter()
            .map(|check| format!("{}: {}", check.code, check.summary))
            .collect();
        return Some(format!("{} ({})", health.status, checks.join("; ")));
    }
    if let Some(pgs) = &status.pgs {
        let other: Vec<String> = pgs
            .by_state
            .iter()
            .filter(|(state, _)| state.as_str() != "active+clean")
            .map(|(state, count)| format!("{count} {state}"))
            .collect();
        if !other.is_empty() {
            return Some(format!("PGs not active+clean: {}", other.join(", ")));
        }
    }
    None
}

impl Cluster {
    /// Waits until the leader reports `HEALTH_OK` and every PG `active+clean`; returns
    /// that status. Fails at once, with its log, if an OSD or monitor the launcher
    /// started exits meanwhile.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<ClusterStatus, DeployError> {
        let start = Instant::now();
        let client = self.client()?;
        loop {
            self.check_running_daemons()?;
            let last = match client.status().await {
                Ok(status) => match unhealthy_reason(&status) {
                    None => {
                        tracing::info!(
                            waited_ms = start.elapsed().as_millis() as u64,
                            epoch = status.epoch,
                            "cluster healthy"
                        );
                        return Ok(status);
                    }
                    Some(reason) => reason,
                },
                Err(error) => error.to_string(),
            };
            if start.elapsed() >= timeout {
                return Err(DeployError::Timeout {
                    what: "HEALTH_OK with every PG active+clean".to_owned(),
                    waited_ms: start.elapsed().as_millis(),
                    detail: last,
                });
            }
            tokio::time::sleep(POLL.max(Duration::from_millis(100))).await;
        }
    }

    /// Waits until the leader's map shows OSD `id` down; returns how long that took.
    pub async fn wait_osd_down(&self, id: i32, timeout: Duration) -> Result<Duration, DeployError> {
        self.wait_osd_state(id, false, timeout).await
    }

    /// Waits until the leader's map shows OSD `id` up; returns how long that took.
    pub async fn wait_osd_up(&self, id: i32, timeout: Duration) -> Result<Duration, DeployError> {
        self.wait_osd_state(id, true, timeout).await
    }

    async fn wait_osd_state(
        &self,
        id: i32,
        up: bool,
        timeout: Duration,
    ) -> Result<Duration, DeployError> {
        let start = Instant::now();
        let client = self.client()?;
        let word = if up { "up" } else { "down" };
        loop {
            let last = match client.latest_map().await {
                Ok(map) if map.is_up(id) == up => return Ok(start.elapsed()),
                Ok(map) => format!(
                    "epoch {} still shows it {}",
                    map.epoch(),
                    if up { "down" } else { "up" }
                ),
                Err(error) => error.to_string(),
            };
            if start.elapsed() >= timeout {
                return Err(DeployError::Timeout {
                    what: format!("osd.{id} to be marked {word}"),
                    waited_ms: start.elapsed().as_millis(),
                    detail: last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails when a daemon the launcher believes runs has exited.
    fn check_running_daemons(&mut self) -> Result<(), DeployError> {
        let daemons: Vec<Daemon> = self
            .running_mon_ids()
            .into_iter()
            .map(Daemon::Mon)
            .chain(self.running_osd_numbers().into_iter().map(Daemon::Osd))
            .collect();
        for daemon in daemons {
            self.check_alive(daemon)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use monclient::{HealthCheckStatus, HealthStatus, PgSummary};

    use super::*;

    fn status(health: &str, states: &[(&str, u64)]) -> ClusterStatus {
        ClusterStatus {
            fsid: String::new(),
            epoch: 5,
            answered_by: 1,
            leader_id: 1,
            term: 2,
            monitors: Vec::new(),
            commit_index: 0,
            applied_index: 0,
            snapshot_index: 0,
            last_index: 0,
            health: Some(HealthStatus {
                status: health.to_owned(),
                checks: if health == "HEALTH_OK" {
                    Vec::new()
                } else {
                    vec![HealthCheckStatus {
                        code: "OSD_DOWN".to_owned(),
                        severity: health.to_owned(),
                        summary: "1 osds down".to_owned(),
                        detail: Vec::new(),
                    }]
                },
            }),
            num_osds: 3,
            num_up_osds: 3,
            num_in_osds: 3,
            num_pools: 1,
            pgs: Some(PgSummary {
                num_pgs: states.iter().map(|(_, count)| count).sum(),
                by_state: states
                    .iter()
                    .map(|(state, count)| ((*state).to_owned(), *count))
                    .collect::<BTreeMap<_, _>>(),
                num_objects: 0,
                num_bytes: 0,
            }),
        }
    }

    #[test]
    fn healthy_means_health_ok_and_every_pg_active_clean() {
        assert_eq!(
            unhealthy_reason(&status("HEALTH_OK", &[("active+clean", 8)])),
            None
        );
        let reason = unhealthy_reason(&status("HEALTH_WARN", &[("active+clean", 8)])).unwrap();
        assert!(reason.contains("OSD_DOWN"), "{reason}");
        let reason =
            unhealthy_reason(&status("HEALTH_OK", &[("active+clean", 6), ("peering", 2)])).unwrap();
        assert!(reason.contains("2 peering"), "{reason}");
        let mut follower = status("HEALTH_OK", &[]);
        follower.health = None;
        assert!(unhealthy_reason(&follower).is_some());
    }
}
