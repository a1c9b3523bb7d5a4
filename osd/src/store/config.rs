//! [`StoreConfig`]: the object store's limits and cache budget, documented field by field,
//! with serde defaults (a config file may name any subset) and a [`StoreConfig::validate`]
//! that names the bad field.

use serde::{Deserialize, Serialize};

use super::chunk::Compression;
use super::error::{Result, StoreError};
use super::keys::{self, CHUNK_SIZE};

/// Limits and tuning of an [`super::ObjectStore`]. Defaults follow Ceph's where Ceph has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Largest object, in bytes; writes, appends and truncates beyond it fail with
    /// `ObjectTooLarge`. Default 128 MiB (Ceph's `osd_max_object_size`).
    pub max_object_size: u64,
    /// Longest object name, in bytes. Default 2048 (Ceph's `osd_max_object_name_len`).
    pub max_object_name_len: usize,
    /// Longest namespace, in bytes. Default 256 (Ceph's `osd_max_object_namespace_len`).
    pub max_namespace_len: usize,
    /// Longest xattr name, in bytes. Default 100 (Ceph's `osd_max_attr_name_len`).
    pub max_xattr_name_len: usize,
    /// Largest xattr value, in bytes. Default 64 KiB.
    pub max_xattr_value_len: usize,
    /// Longest omap key, in bytes. Default 4096.
    pub max_omap_key_len: usize,
    /// Largest omap value, in bytes. Default 4 MiB.
    pub max_omap_value_len: usize,
    /// Most entries a PG log keeps (which bounds how far behind a replica can be and still
    /// recover from the log, and how long a request id is remembered for dedup).
    /// Default 3000.
    pub pg_log_max_entries: u64,
    /// How many of the oldest entries are trimmed at once when the log is full, so the trim
    /// scan is amortized; 1 to `pg_log_max_entries`. Default 100.
    pub pg_log_trim_batch: u64,
    /// Bytes of object metadata cached in memory (approximate, including keys). The
    /// engine's own block cache is set separately in `kv::Options::cache_bytes`.
    /// Default 8 MiB.
    pub meta_cache_bytes: usize,
    /// Chunk compression (what BlueStore's `bluestore_compression_mode = aggressive` with
    /// lz4 does): `lz4` (default) or `none`. Stored chunks keep the form they were written
    /// in, so changing it applies to new writes only.
    pub compression: Compression,
    /// Chunks written whole whose stored (maybe compressed) size is at least this many
    /// bytes go to the block file with direct I/O, when the store has one; smaller ones
    /// stay in the engine. Default 32 KiB (half a chunk). Above the chunk size: never.
    pub block_min_bytes: usize,
    /// Other chunks whose stored size is at least this many bytes are written to the
    /// block file deferred, when the store has one and its engine keeps log-only puts:
    /// through the page cache, their payload kept durable in the engine's log until its
    /// next checkpoint flushes the block file (BlueStore's deferred writes); smaller ones
    /// stay in the engine. Default 4 KiB. Above the chunk size: never.
    pub deferred_min_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_object_size: 128 << 20,
            max_object_name_len: 2048,
            max_namespace_len: 256,
            max_xattr_name_len: 100,
            max_xattr_value_len: 64 << 10,
            max_omap_key_len: 4096,
            max_omap_value_len: 4 << 20,
            pg_log_max_entries: 3000,
            pg_log_trim_batch: 100,
            meta_cache_bytes: 8 << 20,
            compression: Compression::Lz4,
            block_min_bytes: 32 << 10,
            deferred_min_bytes: 4 << 10,
        }
    }
}

impl StoreConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |field: &'static str, reason: String| Err(StoreError::InvalidConfig { field, reason });
        let max_chunks = u64::from(u32::MAX) * CHUNK_SIZE as u64;
        if self.max_object_size == 0 || self.max_object_size > max_chunks {
            return bad(
                "max_object_size",
                format!("must be between 1 and {max_chunks}"),
            );
        }
        for (field, value) in [
            ("max_object_name_len", self.max_object_name_len),
            ("max_xattr_name_len", self.max_xattr_name_len),
            ("max_omap_key_len", self.max_omap_key_len),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        // The longest key the store builds must fit the engine's key limit.
        let longest_suffix = self.max_xattr_name_len.max(self.max_omap_key_len);
        let longest_key =
            keys::longest_object_key(self.max_namespace_len, self.max_object_name_len)
                .saturating_add(longest_suffix);
        if longest_key > kv::keys::MAX_KEY_LEN {
            return bad(
                "max_omap_key_len",
                format!(
                    "with these name limits a key can reach {longest_key} bytes, over the \
                     engine's {} (lower the name, namespace, xattr name or omap key limits)",
                    kv::keys::MAX_KEY_LEN
                ),
            );
        }
        for (field, value) in [
            ("max_xattr_value_len", self.max_xattr_value_len),
            ("max_omap_value_len", self.max_omap_value_len),
        ] {
            if value > kv::keys::MAX_VALUE_LEN {
                return bad(
                    field,
                    format!("must be at most {}", kv::keys::MAX_VALUE_LEN),
                );
            }
        }
        if self.pg_log_max_entries == 0 {
            return bad("pg_log_max_entries", "must be at least 1".into());
        }
        if self.pg_log_trim_batch == 0 || self.pg_log_trim_batch > self.pg_log_max_entries {
            return bad(
                "pg_log_trim_batch",
                format!(
                    "must be between 1 and pg_log_max_entries ({})",
                    self.pg_log_max_entries
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_file_may_name_a_subset() {
        StoreConfig::default().validate().unwrap();
        let config: StoreConfig =
            serde_json::from_str(r#"{"pg_log_max_entries": 10, "pg_log_trim_batch": 2}"#).unwrap();
        assert_eq!(config.pg_log_max_entries, 10);
        assert_eq!(config.max_object_size, 128 << 20);
        config.validate().unwrap();
        assert!(serde_json::from_str::<StoreConfig>(r#"{"no_such_field": 1}"#).is_err());
    }

    #[test]
    fn validation_names_the_bad_field() {
        let field_of = |config: StoreConfig| match config.validate() {
            Err(StoreError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        assert_eq!(
            field_of(StoreConfig {
                max_object_size: 0,
                ..Default::default()
            }),
            "max_object_size"
        );
        assert_eq!(
            field_of(StoreConfig {
                pg_log_trim_batch: 5000,
                ..Default::default()
            }),
            "pg_log_trim_batch"
        );
        assert_eq!(
            field_of(StoreConfig {
                max_object_name_len: 8000,
                ..Default::default()
            }),
            "max_omap_key_len"
        );
        assert_eq!(
            field_of(StoreConfig {
                max_xattr_name_len: 0,
                ..Default::default()
            }),
            "max_xattr_name_len"
        );
    }
}
