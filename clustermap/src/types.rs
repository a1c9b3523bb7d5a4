//! Small value types shared by the whole map: epochs, pool and PG ids, uuids, cluster flags,
//! pool types and object hash functions, with the text forms Ceph users know (`1.7f`,
//! `nodeep-scrub`, hyphenated uuids).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A map version. Every committed change makes exactly one new epoch (Ceph's `epoch_t`).
pub type Epoch = u32;

/// A pool id. Ceph's pool ids are 64-bit; ours are assigned from 1 upwards and never reused.
pub type PoolId = i64;

/// An OSD id (`osd.N`), the same number as the CRUSH device id.
pub type OsdId = i32;

/// A point in time, milliseconds since the Unix epoch. The map never reads a clock: every
/// time stored in it comes from the change that set it, so all replicas agree.
pub type UnixMillis = u64;

/// A text form that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid {what} `{text}`: {reason}")]
pub struct ParseValueError {
    /// What kind of value was expected (`pg id`, `uuid`, `flag`, ...).
    pub what: &'static str,
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ParseValueError {
    fn new(what: &'static str, text: &str, reason: &'static str) -> Self {
        ParseValueError {
            what,
            text: text.to_string(),
            reason,
        }
    }
}

/// A placement group id: the pool and the placement seed. Printed as Ceph does,
/// `POOL.SEED` with the seed in lower-case hex (`3.7fc1f406`, `1.1a`).
///
/// The seed of an *actual* PG is below the pool's `pg_num`; a *raw* PG id carries the full
/// 32-bit object hash (what `ceph osd map` prints first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgId {
    /// The pool.
    pub pool: PoolId,
    /// The placement seed.
    pub ps: u32,
}

impl PgId {
    /// A PG id from its parts.
    pub fn new(pool: PoolId, ps: u32) -> Self {
        PgId { pool, ps }
    }
}

impl fmt::Display for PgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:x}", self.pool, self.ps)
    }
}

impl FromStr for PgId {
    type Err = ParseValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseValueError::new("pg id", text, reason);
        let (pool, ps) = text
            .split_once('.')
            .ok_or_else(|| err("expected POOL.SEED, e.g. 1.7f"))?;
        let pool: PoolId = pool
            .parse()
            .map_err(|_| err("the pool is not a decimal number"))?;
        if pool < 0 {
            return Err(err("the pool id is negative"));
        }
        if ps.is_empty() || ps.len() > 8 || !ps.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err("the seed is not a 32-bit hex number"));
        }
        let ps = u32::from_str_radix(ps, 16).map_err(|_| err("the seed is not hex"))?;
        Ok(PgId { pool, ps })
    }
}

// PG ids serialize as their text form so that maps keyed by them stay valid JSON objects.
impl Serialize for PgId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PgId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A 128-bit uuid (cluster fsid, OSD identity), printed in the usual hyphenated lower-case
/// form. The map never generates one: callers bring them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero uuid.
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A uuid from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Uuid(bytes)
    }

    /// Whether this is the all-zero uuid.
    pub fn is_nil(&self) -> bool {
        *self == Uuid::NIL
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Uuid {
    type Err = ParseValueError;

    /// Accepts the hyphenated form (`8-4-4-4-12`) or 32 bare hex digits, any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseValueError::new("uuid", text, reason);
        let hyphenated = text.len() == 36;
        if hyphenated {
            for (i, c) in text.char_indices() {
                if matches!(i, 8 | 13 | 18 | 23) != (c == '-') {
                    return Err(err("hyphens belong at positions 8, 13, 18 and 23"));
                }
            }
        } else if text.len() != 32 {
            return Err(err("expected 32 hex digits, hyphenated 8-4-4-4-12 or bare"));
        }
        let digits: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
        if digits.len() != 32 || !digits.iter().all(|b| b.is_ascii_hexdigit()) {
            return Err(err("expected hex digits"));
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in digits.chunks(2).enumerate() {
            // Both characters are ASCII hex digits, checked above.
            let hex = std::str::from_utf8(pair).map_err(|_| err("expected hex digits"))?;
            bytes[i] = u8::from_str_radix(hex, 16).map_err(|_| err("expected hex digits"))?;
        }
        Ok(Uuid(bytes))
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How full an OSD's storage is, as the monitors last judged it from its beacons against
/// their `nearfull_ratio` and `full_ratio` (Ceph's `OSD_NEARFULL` and `OSD_FULL` states).
/// A primary refuses writes that need space when any OSD of the PG's acting set is `Full`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Fullness {
    /// Below the nearfull ratio.
    #[default]
    Ok,
    /// At or above the nearfull ratio: a warning, writes go on.
    Nearfull,
    /// At or above the full ratio: writes that need space are refused.
    Full,
}

/// The used share, in `[0, 1]`, of a storage of `total` bytes with `available` left (0 when
/// the size is unknown; more available than the total counts as nothing used). The OSDs'
/// failsafe and the monitors' fullness judge this same figure.
pub fn used_ratio(total: u64, available: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    // Dividing the used bytes keeps a usage of exactly a threshold at it: 95 of 100 is 0.95.
    total.saturating_sub(available) as f64 / total as f64
}

impl Fullness {
    /// Lower-case name as shown by `shoal osd dump` and health details.
    pub fn name(self) -> &'static str {
        match self {
            Fullness::Ok => "ok",
            Fullness::Nearfull => "nearfull",
            Fullness::Full => "full",
        }
    }
}

/// A cluster-wide flag (`shoal osd set noout`). The map only records them; the monitors'
/// failure policy and the OSDs honour them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClusterFlag {
    /// Clients pause reads.
    #[serde(rename = "pauserd")]
    PauseRd,
    /// Clients pause writes.
    #[serde(rename = "pausewr")]
    PauseWr,
    /// Booting OSDs are not marked up.
    #[serde(rename = "noup")]
    NoUp,
    /// Failure reports do not mark OSDs down.
    #[serde(rename = "nodown")]
    NoDown,
    /// Down OSDs are not marked out automatically.
    #[serde(rename = "noout")]
    NoOut,
    /// Booting OSDs that were out are not marked in automatically.
    #[serde(rename = "noin")]
    NoIn,
    /// No backfill.
    #[serde(rename = "nobackfill")]
    NoBackfill,
    /// No rebalancing of misplaced data.
    #[serde(rename = "norebalance")]
    NoRebalance,
    /// No recovery.
    #[serde(rename = "norecover")]
    NoRecover,
    /// No light scrubs.
    #[serde(rename = "noscrub")]
    NoScrub,
    /// No deep scrubs.
    #[serde(rename = "nodeep-scrub")]
    NoDeepScrub,
}

impl ClusterFlag {
    /// Every flag, in display order.
    pub const ALL: [ClusterFlag; 11] = [
        ClusterFlag::PauseRd,
        ClusterFlag::PauseWr,
        ClusterFlag::NoUp,
        ClusterFlag::NoDown,
        ClusterFlag::NoOut,
        ClusterFlag::NoIn,
        ClusterFlag::NoBackfill,
        ClusterFlag::NoRebalance,
        ClusterFlag::NoRecover,
        ClusterFlag::NoScrub,
        ClusterFlag::NoDeepScrub,
    ];

    /// The name Ceph's CLI uses (`noout`, `nodeep-scrub`).
    pub fn name(self) -> &'static str {
        match self {
            ClusterFlag::PauseRd => "pauserd",
            ClusterFlag::PauseWr => "pausewr",
            ClusterFlag::NoUp => "noup",
            ClusterFlag::NoDown => "nodown",
            ClusterFlag::NoOut => "noout",
            ClusterFlag::NoIn => "noin",
            ClusterFlag::NoBackfill => "nobackfill",
            ClusterFlag::NoRebalance => "norebalance",
            ClusterFlag::NoRecover => "norecover",
            ClusterFlag::NoScrub => "noscrub",
            ClusterFlag::NoDeepScrub => "nodeep-scrub",
        }
    }
}

impl fmt::Display for ClusterFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ClusterFlag {
    type Err = ParseValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ClusterFlag::ALL
            .into_iter()
            .find(|flag| flag.name() == text)
            .ok_or_else(|| ParseValueError::new("cluster flag", text, "unknown flag"))
    }
}

/// How a pool keeps redundancy. It decides what happens to a failed OSD's slot: replicated
/// pools close the gap, erasure pools keep a hole ([`crush::ITEM_NONE`]) so that every
/// remaining shard keeps its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PoolType {
    /// Full copies.
    #[serde(rename = "replicated")]
    Replicated,
    /// Erasure-coded shards (position matters).
    #[serde(rename = "erasure")]
    Erasure,
}

impl PoolType {
    /// Ceph's name.
    pub fn name(self) -> &'static str {
        match self {
            PoolType::Replicated => "replicated",
            PoolType::Erasure => "erasure",
        }
    }

    /// Whether OSDs may shift left when one drops out (Ceph's `can_shift_osds`).
    pub fn can_shift_osds(self) -> bool {
        self == PoolType::Replicated
    }
}

impl fmt::Display for PoolType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The string hash that turns an object name into a placement seed (a pool's
/// `object_hash`). Both are Ceph's; rjenkins is the default and what every current cluster
/// uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectHash {
    /// `ceph_str_hash_rjenkins` (Ceph's `CEPH_STR_HASH_RJENKINS`, 2).
    #[default]
    #[serde(rename = "rjenkins")]
    Rjenkins,
    /// `ceph_str_hash_linux`, the Linux dcache hash (`CEPH_STR_HASH_LINUX`, 1).
    #[serde(rename = "linux")]
    Linux,
}

impl ObjectHash {
    /// Ceph's name.
    pub fn name(self) -> &'static str {
        match self {
            ObjectHash::Rjenkins => "rjenkins",
            ObjectHash::Linux => "linux",
        }
    }

    /// Hashes `data` with this function.
    pub fn hash(self, data: &[u8]) -> u32 {
        match self {
            ObjectHash::Rjenkins => crush::hash::str_hash_rjenkins(data),
            ObjectHash::Linux => str_hash_linux(data),
        }
    }
}

impl fmt::Display for ObjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ObjectHash {
    type Err = ParseValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "rjenkins" => Ok(ObjectHash::Rjenkins),
            "linux" => Ok(ObjectHash::Linux),
            _ => Err(ParseValueError::new(
                "object hash",
                text,
                "expected rjenkins or linux",
            )),
        }
    }
}

/// Ceph's `ceph_str_hash_linux`: `hash = (hash + (c << 4) + (c >> 4)) * 11` over the bytes.
/// Ceph computes it in an `unsigned long` and returns the low 32 bits; only additions and
/// multiplications are involved, so wrapping 32-bit arithmetic gives the same bits.
pub fn str_hash_linux(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |hash, &byte| {
        let c = byte as u32;
        hash.wrapping_add(c << 4)
            .wrapping_add(c >> 4)
            .wrapping_mul(11)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_id_text_round_trips_in_ceph_form() {
        let pg = PgId::new(3, 0x7fc1_f406);
        assert_eq!(pg.to_string(), "3.7fc1f406");
        assert_eq!("3.7fc1f406".parse::<PgId>().unwrap(), pg);
        assert_eq!("1.1A".parse::<PgId>().unwrap(), PgId::new(1, 0x1a));
        for bad in ["", "1", "1.", ".1", "x.1", "-1.1", "1.g", "1.123456789"] {
            let err = bad.parse::<PgId>().unwrap_err();
            assert_eq!(err.what, "pg id", "{bad}");
        }
    }

    #[test]
    fn pg_id_serializes_as_a_string_so_it_can_key_json_objects() {
        let map: std::collections::BTreeMap<PgId, u32> = [(PgId::new(2, 0x1f), 5)].into();
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"{"2.1f":5}"#);
        let back: std::collections::BTreeMap<PgId, u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn uuid_parses_both_forms_and_prints_hyphenated() {
        let text = "d1b8d687-0d00-40d5-aa14-8734fc1e4c58";
        let uuid: Uuid = text.parse().unwrap();
        assert_eq!(uuid.to_string(), text);
        let bare: Uuid = "D1B8D6870D0040D5AA148734FC1E4C58".parse().unwrap();
        assert_eq!(bare, uuid);
        for bad in [
            "",
            "d1b8d687-0d00-40d5-aa14-8734fc1e4c5",
            "d1b8d6870-d00-40d5-aa14-8734fc1e4c58",
            "g1b8d687-0d00-40d5-aa14-8734fc1e4c58",
        ] {
            assert!(bad.parse::<Uuid>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&uuid).unwrap(), format!("\"{text}\""));
    }

    #[test]
    fn flags_use_ceph_names() {
        for flag in ClusterFlag::ALL {
            assert_eq!(flag.name().parse::<ClusterFlag>().unwrap(), flag);
            assert_eq!(
                serde_json::to_string(&flag).unwrap(),
                format!("\"{}\"", flag.name())
            );
        }
        assert_eq!(ClusterFlag::NoDeepScrub.to_string(), "nodeep-scrub");
        assert!("nothing".parse::<ClusterFlag>().is_err());
    }

    #[test]
    fn linux_hash_matches_its_definition() {
        // Worked by hand from the definition: 'a' = 97 -> (97*16 + 6) * 11 = 17138.
        assert_eq!(str_hash_linux(b""), 0);
        assert_eq!(str_hash_linux(b"a"), 17138);
        let two = (17138u32 + (98 << 4) + (98 >> 4)) * 11;
        assert_eq!(str_hash_linux(b"ab"), two);
    }
}
