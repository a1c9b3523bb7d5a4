//! Shared helpers for the clustermap integration tests: the CRUSH test data of the crush
//! crate (maps and crushtool vectors) and small clusters built from them.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

use clustermap::{ClusterMap, MapChange, MonitorInfo, NewOsd, OsdId, PoolSpec, PoolType, Uuid};
use crush::CrushMap;

/// The crush crate's test data; a missing directory fails the test (never skips it).
pub fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crush/tests/data");
    assert!(
        dir.join("manifest.json").is_file(),
        "CRUSH test data missing at {}",
        dir.display()
    );
    dir
}

/// Reads a data file, gunzipping `NAME.gz` when only that exists.
pub fn read_data(rel: &str) -> String {
    let path = data_dir().join(rel);
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    if path.is_file() {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    } else {
        let file = std::fs::File::open(&gz).unwrap_or_else(|e| panic!("{}: {e}", gz.display()));
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
        text
    }
}

/// One crushtool mapping.
pub struct Vector {
    pub rule: u32,
    pub num_rep: usize,
    pub x: u32,
    pub osds: Vec<i32>,
}

/// Every line of a vector file.
pub fn vectors(rel: &str) -> Vec<Vector> {
    read_data(rel)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            Vector {
                rule: v["rule"].as_u64().unwrap() as u32,
                num_rep: v["num_rep"].as_u64().unwrap() as usize,
                x: v["x"].as_u64().unwrap() as u32,
                osds: v["osds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o.as_i64().unwrap() as i32)
                    .collect(),
            }
        })
        .collect()
}

/// A published CRUSH map, compiled by the crush crate's text parser.
pub fn crush_map(name: &str) -> CrushMap {
    crush::text::parse(&read_data(&format!("maps/{name}.txt")))
        .unwrap_or_else(|e| panic!("maps/{name}.txt: {e}"))
}

pub fn fsid() -> Uuid {
    "d1b8d687-0d00-40d5-aa14-8734fc1e4c58".parse().unwrap()
}

pub fn osd_uuid(id: OsdId) -> Uuid {
    let mut bytes = [0x5au8; 16];
    bytes[12..].copy_from_slice(&id.to_be_bytes());
    Uuid::from_bytes(bytes)
}

pub fn monitors(names: &[&str]) -> Vec<MonitorInfo> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| MonitorInfo {
            name: name.to_string(),
            address: format!("10.0.0.{}:7100", i + 1),
        })
        .collect()
}

/// A cluster whose CRUSH map is `crush` and where every CRUSH device is an OSD that exists,
/// is up and is in (reweight 1.0): what crushtool's default weight vector means.
pub fn cluster_from_crush(crush: CrushMap) -> ClusterMap {
    let map = ClusterMap::new(fsid(), 1_000, monitors(&["a"]), crush).unwrap();
    let mut changes = Vec::new();
    for (&id, _) in map.crush().devices.iter() {
        let host = map
            .crush()
            .parent_of(id)
            .map(|b| b.name.clone())
            .unwrap_or_else(|| "nowhere".to_string());
        changes.push(MapChange::NewOsd(NewOsd {
            uuid: osd_uuid(id),
            id: Some(id),
            host,
            location: Vec::new(),
            crush_weight: crush::WEIGHT_ONE,
            device_class: None,
        }));
        changes.push(MapChange::BootOsd {
            id,
            uuid: osd_uuid(id),
            address: format!("10.1.0.1:{}", 7200 + id),
        });
        changes.push(MapChange::MarkIn { id });
    }
    map.apply(&changes, 2_000).unwrap()
}

/// Creates pools named `filler-N` until the next pool id is `id`.
pub fn skip_pool_ids_to(map: ClusterMap, id: i64) -> ClusterMap {
    let mut changes = Vec::new();
    for n in map.next_pool_id()..id {
        changes.push(MapChange::CreatePool(PoolSpec::replicated(
            &format!("filler-{n}"),
            3,
            8,
        )));
    }
    if changes.is_empty() {
        map
    } else {
        map.apply(&changes, 3_000).unwrap()
    }
}

/// A pool spec with everything explicit.
pub fn pool_spec(
    name: &str,
    pool_type: PoolType,
    size: u32,
    pg_num: u32,
    rule: u32,
    hashpspool: bool,
) -> PoolSpec {
    let mut spec = PoolSpec::replicated(name, size, pg_num);
    spec.pool_type = pool_type;
    spec.crush_rule = Some(rule);
    spec.min_size = Some(1);
    spec.flags.hashpspool = hashpspool;
    spec
}

/// A new cluster (Ceph's default CRUSH map: hosts under `default`, rule 0 replicated over
/// hosts) with `hosts` hosts `h0..` of `per_host` OSDs each, all booted and in, and three
/// monitors `a`, `b`, `c`.
pub fn small_cluster(hosts: usize, per_host: usize) -> ClusterMap {
    let map = ClusterMap::new(
        fsid(),
        1_000,
        monitors(&["a", "b", "c"]),
        CrushMap::new_default(),
    )
    .unwrap();
    let mut changes = Vec::new();
    let mut id: OsdId = 0;
    for h in 0..hosts {
        for _ in 0..per_host {
            changes.push(MapChange::NewOsd(NewOsd {
                uuid: osd_uuid(id),
                id: None,
                host: format!("h{h}"),
                location: Vec::new(),
                crush_weight: crush::WEIGHT_ONE,
                device_class: Some("hdd".to_string()),
            }));
            changes.push(MapChange::BootOsd {
                id,
                uuid: osd_uuid(id),
                address: format!("10.1.0.{h}:{}", 7200 + id),
            });
            changes.push(MapChange::MarkIn { id });
            id += 1;
        }
    }
    map.apply(&changes, 2_000).unwrap()
}
