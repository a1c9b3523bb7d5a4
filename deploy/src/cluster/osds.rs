//! OSD processes: starting them when the cluster comes up, and the per-OSD control the
//! tests use ([`Cluster::kill_osd`], [`Cluster::stop_osd`], [`Cluster::restart_osd`],
//! [`Cluster::add_osd`]).
//!
//! OSDs are addressed by the launcher's number `n` (their data directory is
//! `DIR/osd.<n>`); the monitors give each its OSD id at its first boot, which the OSD
//! writes to `DATA/whoami` ([`Cluster::osd_id`]). New OSDs boot one after another, so in
//! a new cluster OSD number `n` gets id `n`.

use std::time::{Duration, Instant};

use super::{
    file_stamp, log_tail, osd_record, read_trimmed, Cluster, Daemon, FileStamp, OSD_ADDR_FILE,
    POLL, STOP_GRACE, WHOAMI_FILE,
};
use crate::binaries::Binaries;
use crate::error::{io_error, DeployError};
use crate::process::{self, OsdLaunch, SIGKILL, SIGTERM};

/// `host:port` without a scheme, for comparing the address an OSD wrote with the one the
/// map records.
fn bare(addr: &str) -> &str {
    addr.strip_prefix("http://").unwrap_or(addr)
}

impl Cluster {
    /// Every OSD's number.
    pub fn osd_numbers(&self) -> Vec<u32> {
        self.state.osds.iter().map(|osd| osd.n).collect()
    }

    /// The OSDs the launcher believes are running, by number.
    pub fn running_osd_numbers(&self) -> Vec<u32> {
        self.state
            .osds
            .iter()
            .filter(|osd| osd.process.is_some())
            .map(|osd| osd.n)
            .collect()
    }

    /// The address OSD number `n` last served on.
    pub fn osd_addr(&self, n: u32) -> Result<String, DeployError> {
        let record = self.state.osd(n)?;
        record
            .addr
            .clone()
            .or_else(|| read_trimmed(&record.data_dir, OSD_ADDR_FILE))
            .ok_or_else(|| DeployError::OsdNotRunning {
                n,
                detail: " (it never wrote osd.addr)".to_owned(),
            })
    }

    /// The OSD id of OSD number `n` (known once it booted).
    pub fn osd_id(&self, n: u32) -> Result<i32, DeployError> {
        let record = self.state.osd(n)?;
        record
            .id
            .or_else(|| read_trimmed(&record.data_dir, WHOAMI_FILE)?.parse().ok())
            .ok_or_else(|| DeployError::OsdNotRunning {
                n,
                detail: " (it never booted: no whoami)".to_owned(),
            })
    }

    /// The number of the OSD whose id is `id`, if the launcher manages it.
    pub fn osd_number(&self, id: i32) -> Option<u32> {
        self.state
            .osds
            .iter()
            .find(|osd| osd.id == Some(id))
            .map(|osd| osd.n)
    }

    /// OSD number `n`'s data directory.
    pub fn osd_data_dir(&self, n: u32) -> Result<std::path::PathBuf, DeployError> {
        Ok(self.state.osd(n)?.data_dir.clone())
    }

    /// OSD number `n`'s log file.
    pub fn osd_log_file(&self, n: u32) -> Result<std::path::PathBuf, DeployError> {
        Ok(self.state.osd(n)?.log_file.clone())
    }

    /// OSD number `n`'s pid, when it runs.
    pub fn osd_pid(&self, n: u32) -> Result<Option<u32>, DeployError> {
        Ok(self.state.osd(n)?.process.map(|process| process.pid))
    }

    /// Kills OSD number `n` with SIGKILL (a crash) and waits until it is gone. The
    /// monitors learn of it from its peers' failure reports.
    pub async fn kill_osd(&mut self, n: u32) -> Result<(), DeployError> {
        self.expect_osd_running(n)?;
        self.signal_and_wait(Daemon::Osd(n), SIGKILL, STOP_GRACE)
            .await?;
        Ok(())
    }

    /// Stops OSD number `n` cleanly (SIGTERM; SIGKILL after 10 s).
    pub async fn stop_osd(&mut self, n: u32) -> Result<(), DeployError> {
        self.expect_osd_running(n)?;
        self.signal_and_wait(Daemon::Osd(n), SIGTERM, STOP_GRACE)
            .await?;
        Ok(())
    }

    /// Starts stopped OSD number `n` again with its data directory (same id, same data)
    /// and waits until the map shows it up at its new address.
    pub async fn restart_osd(&mut self, n: u32) -> Result<(), DeployError> {
        if let Some(process) = self.state.osd(n)?.process {
            return Err(DeployError::OsdRunning {
                n,
                pid: process.pid,
            });
        }
        let before = self.spawn_osd(n)?;
        let deadline = Instant::now() + self.ready_timeout;
        self.wait_osd_booted(n, before, deadline).await?;
        Ok(())
    }

    /// Starts a new OSD (the next number) and waits until it booted and is up. Returns
    /// its number. The cluster is not healthy until its PGs settle:
    /// [`Cluster::wait_healthy`].
    pub async fn add_osd(&mut self) -> Result<u32, DeployError> {
        let n = self
            .state
            .osds
            .iter()
            .map(|osd| osd.n + 1)
            .max()
            .unwrap_or(0);
        self.state.osds.push(osd_record(&self.dir, n));
        self.save()?;
        let before = self.spawn_osd(n)?;
        let deadline = Instant::now() + self.ready_timeout;
        self.wait_osd_booted(n, before, deadline).await?;
        Ok(n)
    }

    fn expect_osd_running(&self, n: u32) -> Result<(), DeployError> {
        if self.state.osd(n)?.process.is_none() {
            return Err(DeployError::OsdNotRunning {
                n,
                detail: String::new(),
            });
        }
        Ok(())
    }

    /// Starts every recorded OSD and waits until each is up: those that booted before
    /// (they have an id) all at once, then new ones one after another, so that the
    /// monitors hand out ids in number order.
    pub(super) async fn start_osds(&mut self, deadline: Instant) -> Result<(), DeployError> {
        let mut known = Vec::new();
        let mut new = Vec::new();
        for osd in &self.state.osds {
            if read_trimmed(&osd.data_dir, WHOAMI_FILE).is_some() {
                known.push(osd.n);
            } else {
                new.push(osd.n);
            }
        }
        let mut stamps = Vec::new();
        for n in known {
            stamps.push((n, self.spawn_osd(n)?));
        }
        for n in new {
            let before = self.spawn_osd(n)?;
            self.wait_osd_booted(n, before, deadline).await?;
        }
        for (n, before) in stamps {
            self.wait_osd_booted(n, before, deadline).await?;
        }
        Ok(())
    }

    /// The `shoal-osd` binary: the one recorded, else the one beside `shoal-mon`.
    fn osd_binary(&mut self) -> Result<std::path::PathBuf, DeployError> {
        if let Some(binary) = &self.state.osd_binary {
            return Ok(binary.clone());
        }
        let binary = Binaries::locate(self.state.mon_binary.parent())?.osd()?;
        self.state.osd_binary = Some(binary.clone());
        Ok(binary)
    }

    /// Starts OSD number `n`'s process; returns its address file's stamp from before.
    fn spawn_osd(&mut self, n: u32) -> Result<Option<FileStamp>, DeployError> {
        let binary = self.osd_binary()?;
        let record = self.state.osd(n)?;
        std::fs::create_dir_all(&record.data_dir)
            .map_err(io_error(format!("create {}", record.data_dir.display())))?;
        let before = file_stamp(&record.data_dir.join(OSD_ADDR_FILE));
        let launch = OsdLaunch {
            binary,
            conf: self.conf_path(),
            data_dir: record.data_dir.clone(),
            log_file: record.log_file.clone(),
            die_with_launcher: self.die_with_launcher,
        };
        let child = process::spawn_osd(&launch).map_err(io_error(format!(
            "start {} for osd number {n}",
            launch.binary.display()
        )))?;
        self.adopt(Daemon::Osd(n), child)?;
        Ok(before)
    }

    /// Waits until OSD number `n` wrote a new address file and its id, and the map shows
    /// that id up at that address; records both. Returns the id.
    async fn wait_osd_booted(
        &mut self,
        n: u32,
        before: Option<FileStamp>,
        deadline: Instant,
    ) -> Result<i32, DeployError> {
        let daemon = Daemon::Osd(n);
        let addr = self
            .wait_addr_file(daemon, OSD_ADDR_FILE, before, deadline)
            .await?;
        self.state.osd_mut(n)?.addr = Some(addr.clone());
        self.save()?;
        let start = Instant::now();
        let data_dir = self.state.osd(n)?.data_dir.clone();
        let client = self.client()?;
        let mut last = String::from("no whoami yet");
        loop {
            self.check_alive(daemon)?;
            if let Some(id) = read_trimmed(&data_dir, WHOAMI_FILE).and_then(|id| id.parse().ok()) {
                match client.latest_map().await {
                    Ok(map) => match map.osd(id) {
                        Some(info)
                            if info.up
                                && info.address.as_deref().map(bare) == Some(bare(&addr)) =>
                        {
                            let record = self.state.osd_mut(n)?;
                            record.id = Some(id);
                            self.save()?;
                            tracing::info!(n, id, %addr, epoch = map.epoch(), "osd up");
                            return Ok(id);
                        }
                        Some(info) => {
                            last = format!(
                                "osd.{id} is {} at {:?} in epoch {}",
                                if info.up { "up" } else { "down" },
                                info.address,
                                map.epoch()
                            );
                        }
                        None => last = format!("osd.{id} is not in epoch {}", map.epoch()),
                    },
                    Err(error) => last = error.to_string(),
                }
            }
            if Instant::now() >= deadline {
                let log = self.state.osd(n)?.log_file.clone();
                return Err(DeployError::Timeout {
                    what: format!("osd number {n} (at {addr}) to boot and be marked up"),
                    waited_ms: start.elapsed().as_millis(),
                    detail: format!(
                        "{last}; last lines of {}:\n{}",
                        log.display(),
                        log_tail(&log, 10)
                    ),
                });
            }
            tokio::time::sleep(POLL.max(Duration::from_millis(50))).await;
        }
    }
}
