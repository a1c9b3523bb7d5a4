//! How much of its storage this OSD uses, and whether a write that needs space may go on.
//!
//! [`measure`] walks the data directory (blocking), so [`space_loop`] runs it off the async
//! threads once a second and keeps the result in [`SpaceGauge`]; beacons carry the latest
//! figures to the monitors, which mark the OSD nearfull or full in the map, and the write
//! path reads the gauge and the map without any I/O ([`refusal`]).
//!
//! A primary refuses a write that needs space when an OSD of the PG's acting set is marked
//! full, or when its own last measure is past `failsafe_full_ratio`: the monitors hear of
//! its usage only at its next beacon, and a burst of large writes could fill the disk in
//! between. Refusing before anything is applied is what keeps a full disk from failing a
//! sync halfway through a write.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clustermap::{ClusterMap, Fullness, OsdId};

use crate::node::Node;
use crate::store::ObjectStore;

/// One measure of the OSD's storage, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Its size: `capacity_bytes`, or the file system's size.
    pub total: u64,
    /// What is left for it.
    pub available: u64,
    /// What its store takes (the block file counted by the bytes it references).
    pub used: u64,
}

impl Usage {
    /// The fraction of `total` not available (0 when the size is unknown).
    pub fn used_ratio(&self) -> f64 {
        clustermap::used_ratio(self.total, self.available)
    }
}

/// Measures the store under `data_dir`. With a `capacity` (non-zero) the OSD's size is that
/// and what is available is what the store leaves of it, whatever else fills the file
/// system (as Ceph's OSDs on files judge by their declared block size); without one it is
/// the file system's size and free space.
pub fn measure(data_dir: &Path, store: &ObjectStore, capacity: u64) -> Usage {
    let files = dir_bytes(data_dir);
    // The block file grows in large steps and never shrinks; what counts is what it holds.
    let used = match store.block_usage() {
        Some((referenced, length)) => files.saturating_sub(length) + referenced,
        None => files,
    };
    if capacity == 0 {
        let (fs_available, fs_total) = fs_space(data_dir).unwrap_or((0, 0));
        Usage {
            total: fs_total,
            available: fs_available,
            used,
        }
    } else {
        Usage {
            total: capacity,
            available: capacity.saturating_sub(used),
            used,
        }
    }
}

/// The latest [`Usage`] of this OSD, shared by the measuring loop and the write path.
#[derive(Debug, Default)]
pub struct SpaceGauge(Mutex<Option<Usage>>);

impl SpaceGauge {
    /// The latest measure (`None` before the first one).
    pub fn last(&self) -> Option<Usage> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a new measure.
    pub fn record(&self, usage: Usage) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(usage);
    }
}

/// Why a write that needs space must be refused in a PG whose acting set is `acting`, or
/// `None` when it may go on: some member is marked full in `map`, or this OSD (`me`) is past
/// its `failsafe` ratio by its last measure.
pub fn refusal(
    map: Option<&ClusterMap>,
    acting: &[OsdId],
    me: OsdId,
    own: Option<Usage>,
    failsafe: f64,
) -> Option<String> {
    if let Some(usage) = own {
        let ratio = usage.used_ratio();
        if ratio >= failsafe {
            return Some(format!(
                "osd.{me} is {:.1}% used, past its failsafe_full_ratio {failsafe}",
                ratio * 100.0
            ));
        }
    }
    let map = map?;
    let full: Vec<String> = acting
        .iter()
        .filter(|id| {
            map.osd(**id)
                .is_some_and(|osd| osd.fullness == Fullness::Full)
        })
        .map(|id| format!("osd.{id}"))
        .collect();
    (!full.is_empty()).then(|| {
        format!(
            "{} marked full by the monitors (writes that free space are still accepted)",
            full.join(", ")
        )
    })
}

/// Measures this OSD's storage once a second (and at once), for beacons, `osd df` and the
/// write path's failsafe check.
pub async fn space_loop(node: Arc<Node>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failsafe_logged = false;
    loop {
        ticker.tick().await;
        let measuring = Arc::clone(&node);
        let Ok(usage) = tokio::task::spawn_blocking(move || {
            measure(
                &measuring.data_dir,
                &measuring.store,
                measuring.config.capacity_bytes,
            )
        })
        .await
        else {
            continue;
        };
        let past_failsafe = usage.used_ratio() >= node.config.failsafe_full_ratio;
        if past_failsafe != failsafe_logged {
            if past_failsafe {
                tracing::warn!(
                    used = usage.used,
                    total = usage.total,
                    available = usage.available,
                    failsafe_full_ratio = node.config.failsafe_full_ratio,
                    "storage past the failsafe ratio: refusing writes that need space"
                );
            } else {
                tracing::info!(
                    used = usage.used,
                    total = usage.total,
                    "storage back under the failsafe ratio: accepting writes"
                );
            }
            failsafe_logged = past_failsafe;
        }
        node.space.record(usage);
    }
}

/// Free and total bytes of the file system holding `path`.
pub fn fs_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    if result != 0 {
        return None;
    }
    let block = stats.f_frsize as u64;
    Some((stats.f_bavail as u64 * block, stats.f_blocks as u64 * block))
}

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(total: u64, available: u64) -> Usage {
        Usage {
            total,
            available,
            used: total - available,
        }
    }

    #[test]
    fn the_used_ratio_is_what_is_not_available() {
        assert_eq!(usage(0, 0).used_ratio(), 0.0);
        assert!((usage(100, 25).used_ratio() - 0.75).abs() < 1e-9);
        assert_eq!(usage(100, 0).used_ratio(), 1.0);
    }

    #[test]
    fn the_failsafe_refuses_on_the_osds_own_measure() {
        let why = refusal(None, &[0, 1, 2], 1, Some(usage(100, 2)), 0.97).unwrap();
        assert!(why.contains("osd.1") && why.contains("98.0%"), "{why}");
        assert_eq!(
            refusal(None, &[0, 1, 2], 1, Some(usage(100, 4)), 0.97),
            None
        );
        assert_eq!(refusal(None, &[0, 1, 2], 1, None, 0.97), None);
    }
}
