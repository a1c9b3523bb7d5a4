//! [`OsdConfig`]: the OSD's own settings, the `[osd]` table of the cluster's TOML file
//! (`shoal.conf`), documented field by field. Every key is optional; an unknown key is an
//! error naming it. The monitors' addresses come from the same file, read by monclient's
//! `ClientConfig::load`. Command-line flags override the file (see `main.rs`).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::Compression;

/// A configuration that cannot be used; names the file or the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not TOML, or the `[osd]` table has an unknown key or a wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (it names the key).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config value osd.{field}: {reason}")]
    Invalid {
        /// The key.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// The `[osd]` table. Timings are in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OsdConfig {
    /// Address the gRPC server binds (`ip:port`; port 0 picks a free one, written to
    /// `DATA/osd.addr`). Default `127.0.0.1:0`.
    pub listen: String,
    /// Storage engine: `fjall` (default), `sled` or `memory`.
    pub backend: String,
    /// How often each peer sharing a PG is pinged (jittered by up to 20 %). Default 6000.
    pub heartbeat_interval_ms: u64,
    /// A peer silent this long is reported failed to the monitors. Default 20000.
    pub heartbeat_grace_ms: u64,
    /// How often a liveness beacon goes to the monitors; keep it well below the monitors'
    /// report timeout. Default 5000.
    pub beacon_interval_ms: u64,
    /// How often the statistics of the PGs this OSD is primary for are reported (also soon
    /// after a state change). Default 2000.
    pub pg_stats_interval_ms: u64,
    /// How long an op may wait for its PG to become writable (peering, fewer than
    /// `min_size` acting OSDs) before it fails with BUSY. Default 30000.
    pub op_timeout_ms: u64,
    /// Largest object, in bytes. Default 128 MiB.
    pub max_object_size: u64,
    /// Bytes of the engine's block cache. Default 32 MiB (object data in the block file is
    /// cached by the kernel, and random 4 KiB reads ran as fast with 16 MiB as with 64).
    pub cache_bytes: u64,
    /// fjall: bytes one PG's memtable may hold before it is flushed. Default 8 MiB.
    pub memtable_bytes: u64,
    /// fjall: bytes all PGs' memtables may hold together (written data waits there until
    /// its flush); past it the largest is flushed early. With `cache_bytes` this is the
    /// OSD's memory budget for data; a 64 KiB chunk (plus its checksum) takes an 80 KiB
    /// allocation, so both cost about 1.25x their byte count. Default 48 MiB: spread over
    /// the OSD's PGs, the budget decides how large each flush is, and every flush costs the
    /// disk a file sync; with 32 MiB the 1 % slowest 4 KiB writes of incompressible data
    /// (one in flight) took 1.8-1.9 ms, with 48 MiB 1.0-1.2 ms.
    pub write_buffer_bytes: u64,
    /// fjall: the size of the store's write-ahead log ring, set when the store is made
    /// (`DATA/store/shoal.wal`; an existing one keeps its size). Small writes reach the disk
    /// in it first; fjall's journal is written back once per half of it, and fewer, larger
    /// write-backs disturb small writes less. At least 1 MiB. Default 64 MiB (the kv
    /// engine's own default, 8 MiB, suits the monitors' small batches).
    pub wal_bytes: u64,
    /// Data chunk compression: `lz4` (default; a chunk stays compressed only if that saves
    /// an eighth of it) or `none` (for data known not to compress: no CPU spent trying).
    pub compression: Compression,
    /// Microseconds the sync thread waits before an fdatasync that follows one shared by
    /// several writes, so that writes in flight join it (fewer fdatasyncs under load; a
    /// lone writer never waits). 0 syncs at once. Default 300.
    pub sync_batch_wait_us: u64,
    /// Chunks written whole whose stored size is at least this many bytes go to the block
    /// file (`DATA/blocks`) with direct I/O, written once; smaller ones stay in the engine.
    /// Above 65536 (the chunk size) every chunk stays in the engine. Default 32768.
    pub block_min_bytes: usize,
    /// Other chunks whose stored size is at least this many bytes are written to the block
    /// file deferred: through the page cache, their data kept durable in the engine's
    /// write-ahead log until its next checkpoint flushes the block file (BlueStore's
    /// deferred writes), so the engine's tables never hold them. Above 65540 (a chunk and
    /// its lz4 prefix) every such chunk stays in the engine. Default 4096.
    pub deferred_min_bytes: usize,
    /// The OSD's size in bytes, as `osd df` shows it and the monitors judge its fullness
    /// by (Ceph's `bluestore_block_size` for an OSD on files); what it uses is its block
    /// file's referenced bytes plus the engine's files, whatever else the file system holds
    /// (the launcher sets 100 GiB: its OSDs share one file system). 0 (default): the file
    /// system holding the data directory, its size and free space (a disk of its own).
    pub capacity_bytes: u64,
    /// Past this fraction of its size used, the OSD refuses, as primary, writes that need
    /// space even before the monitors mark it full (Ceph's `osd_failsafe_full_ratio`): the
    /// monitors hear of its usage only at its next beacon. Default 0.97.
    pub failsafe_full_ratio: f64,
}

impl Default for OsdConfig {
    fn default() -> Self {
        OsdConfig {
            listen: "127.0.0.1:0".to_owned(),
            backend: "fjall".to_owned(),
            heartbeat_interval_ms: 6_000,
            heartbeat_grace_ms: 20_000,
            beacon_interval_ms: 5_000,
            pg_stats_interval_ms: 2_000,
            op_timeout_ms: 30_000,
            max_object_size: 128 << 20,
            cache_bytes: 32 << 20,
            memtable_bytes: 8 << 20,
            write_buffer_bytes: 48 << 20,
            wal_bytes: 64 << 20,
            compression: Compression::Lz4,
            sync_batch_wait_us: 300,
            block_min_bytes: 32 << 10,
            deferred_min_bytes: 4 << 10,
            capacity_bytes: 0,
            failsafe_full_ratio: 0.97,
        }
    }
}

#[derive(Deserialize, Default)]
struct FileSections {
    #[serde(default)]
    osd: Option<toml::Value>,
}

impl OsdConfig {
    /// Reads the `[osd]` table of `path` (defaults when the table is absent).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses the `[osd]` table of a config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: String::new(),
            message,
        };
        let sections: FileSections =
            toml::from_str(text).map_err(|error| parse_error(error.to_string()))?;
        let config = match sections.osd {
            None => OsdConfig::default(),
            Some(table) => OsdConfig::deserialize(table)
                .map_err(|error| parse_error(format!("[osd]: {error}")))?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("listen", "must be an ip:port address");
        }
        if self.backend.parse::<kv::Backend>().is_err() {
            return bad("backend", "must be fjall, sled or memory");
        }
        for (field, value) in [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("heartbeat_grace_ms", self.heartbeat_grace_ms),
            ("beacon_interval_ms", self.beacon_interval_ms),
            ("pg_stats_interval_ms", self.pg_stats_interval_ms),
            ("op_timeout_ms", self.op_timeout_ms),
            ("max_object_size", self.max_object_size),
            ("memtable_bytes", self.memtable_bytes),
            ("write_buffer_bytes", self.write_buffer_bytes),
        ] {
            if value == 0 {
                return bad(field, "must be > 0");
            }
        }
        if self.wal_bytes < 1 << 20 {
            return bad("wal_bytes", "must be at least 1048576 (1 MiB)");
        }
        if self.sync_batch_wait_us > 100_000 {
            return bad("sync_batch_wait_us", "must be at most 100000 (0.1 s)");
        }
        if !(self.failsafe_full_ratio > 0.0 && self.failsafe_full_ratio <= 1.0) {
            return bad("failsafe_full_ratio", "must be in (0, 1]");
        }
        if self.heartbeat_grace_ms <= self.heartbeat_interval_ms {
            return bad(
                "heartbeat_grace_ms",
                "must be longer than heartbeat_interval_ms",
            );
        }
        Ok(())
    }

    /// The storage backend.
    pub fn backend(&self) -> kv::Backend {
        self.backend.parse().unwrap_or_default()
    }

    /// `heartbeat_interval_ms` as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// `heartbeat_grace_ms` as a duration.
    pub fn heartbeat_grace(&self) -> Duration {
        Duration::from_millis(self.heartbeat_grace_ms)
    }

    /// `beacon_interval_ms` as a duration.
    pub fn beacon_interval(&self) -> Duration {
        Duration::from_millis(self.beacon_interval_ms)
    }

    /// `pg_stats_interval_ms` as a duration.
    pub fn pg_stats_interval(&self) -> Duration {
        Duration::from_millis(self.pg_stats_interval_ms)
    }

    /// `sync_batch_wait_us` as a duration.
    pub fn sync_batch_wait(&self) -> Duration {
        Duration::from_micros(self.sync_batch_wait_us)
    }

    /// `op_timeout_ms` as a duration.
    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_subsets_and_unknown_keys() {
        let config = OsdConfig::parse("[client]\nmon_host = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(config, OsdConfig::default());
        let config = OsdConfig::parse("[osd]\nheartbeat_interval_ms = 100\n").unwrap();
        assert_eq!(config.heartbeat_interval_ms, 100);
        assert_eq!(config.op_timeout_ms, 30_000);
        let error = OsdConfig::parse("[osd]\nno_such_key = 1\n").unwrap_err();
        assert!(error.to_string().contains("no_such_key"), "{error}");
        let error = OsdConfig::parse("[osd]\nsync_batch_wait_us = 5000000\n").unwrap_err();
        assert!(error.to_string().contains("sync_batch_wait_us"), "{error}");
        let config = OsdConfig::parse("[osd]\nsync_batch_wait_us = 0\n").unwrap();
        assert!(config.sync_batch_wait().is_zero());
        let error = OsdConfig::parse("[osd]\nwal_bytes = 65536\n").unwrap_err();
        assert!(error.to_string().contains("wal_bytes"), "{error}");
        let config = OsdConfig::parse("[osd]\nwal_bytes = 1048576\n").unwrap();
        assert_eq!(config.wal_bytes, 1 << 20);
        let error = OsdConfig::parse("[osd]\nbackend = \"tape\"\n").unwrap_err();
        assert!(error.to_string().contains("osd.backend"), "{error}");
    }

    #[test]
    fn compression_is_lz4_unless_turned_off_and_other_names_are_refused() {
        assert_eq!(OsdConfig::default().compression, Compression::Lz4);
        let config = OsdConfig::parse("[osd]\ncompression = \"none\"\n").unwrap();
        assert_eq!(config.compression, Compression::None);
        let error = OsdConfig::parse("[osd]\ncompression = \"zstd\"\n").unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("zstd") && message.contains("lz4"),
            "{error}"
        );
    }
}
