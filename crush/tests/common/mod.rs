//! Shared helpers for the CRUSH golden-vector tests: locating the copied crushtool data,
//! reading its manifest and vectors, and loading `crushtool --dump` JSON as an independent
//! route to a `CrushMap` (it checks the mapper without trusting the text parser).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use crush::*;
use serde_json::Value;

/// The test data directory; a missing directory fails the test (never skips it).
pub fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    assert!(
        dir.join("manifest.json").is_file(),
        "CRUSH test data missing at {}",
        dir.display()
    );
    dir
}

/// Reads a data file, transparently gunzipping `*.gz`.
pub fn read_data(rel: &str) -> String {
    let path = data_dir().join(rel);
    let gz = path.with_extension(format!(
        "{}.gz",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    if gz.is_file() {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// One vector file of the manifest.
pub struct VectorFile {
    pub map: String,
    pub file: String,
    pub reweight: Vec<(i32, u32)>,
    pub pool_id: Option<u32>,
    pub lines: usize,
}

/// One expected mapping.
pub struct Vector {
    pub rule: u32,
    pub num_rep: usize,
    pub x: u32,
    pub osds: Vec<i32>,
}

pub fn manifest() -> Vec<VectorFile> {
    let manifest: Value = serde_json::from_str(&read_data("manifest.json")).unwrap();
    let mut files = Vec::new();
    for map in manifest["maps"].as_array().unwrap() {
        for vf in map["vector_files"].as_array().unwrap() {
            files.push(VectorFile {
                map: map["name"].as_str().unwrap().to_string(),
                file: vf["file"].as_str().unwrap().to_string(),
                reweight: vf["reweight"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        (
                            r["osd"].as_i64().unwrap() as i32,
                            r["weight_16_16"].as_u64().unwrap() as u32,
                        )
                    })
                    .collect(),
                pool_id: vf["pool_id"].as_u64().map(|p| p as u32),
                lines: vf["lines"].as_u64().unwrap() as usize,
            });
        }
    }
    files
}

pub fn vectors(file: &str) -> Vec<Vector> {
    read_data(file)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
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

/// The reweight vector crushtool used for a file: the default, then the overrides.
pub fn reweights_for(map: &CrushMap, vf: &VectorFile) -> Vec<u32> {
    let mut weights = map.default_reweights();
    for &(osd, w) in &vf.reweight {
        if osd as usize >= weights.len() {
            weights.resize(osd as usize + 1, 0);
        }
        weights[osd as usize] = w;
    }
    weights
}

/// Checks every vector of every file with maps produced by `load`; returns mismatches
/// (as text) and the number of mappings checked.
pub fn check_all(load: impl Fn(&str) -> CrushMap) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut maps: BTreeMap<String, CrushMap> = BTreeMap::new();
    let files = manifest();
    assert!(
        files.len() >= 30,
        "manifest lists {} vector files",
        files.len()
    );
    for vf in &files {
        let map = maps.entry(vf.map.clone()).or_insert_with(|| load(&vf.map));
        let mapper = Mapper::for_crushtool(map);
        let weights = reweights_for(map, vf);
        let vectors = vectors(&vf.file);
        assert_eq!(vectors.len(), vf.lines, "{}: line count", vf.file);
        let mut ws = Workspace::new();
        let mut out = Vec::new();
        let mut file_failures = 0;
        for v in &vectors {
            let input = match vf.pool_id {
                Some(pool) => hash::hash32_2(v.x, pool),
                None => v.x,
            };
            mapper.do_rule_into(v.rule, input, v.num_rep, &weights, &mut ws, &mut out);
            checked += 1;
            if out != v.osds {
                file_failures += 1;
                if file_failures <= 3 {
                    failures.push(format!(
                        "{} rule {} num_rep {} x {}: expected {:?}, got {:?}",
                        vf.file, v.rule, v.num_rep, v.x, v.osds, out
                    ));
                }
            }
        }
        if file_failures > 3 {
            failures.push(format!("{}: {} mismatches in all", vf.file, file_failures));
        }
    }
    (failures, checked)
}

fn weight_16(v: &Value) -> u32 {
    (v.as_f64().unwrap() * 65536.0).round() as u32
}

/// Builds a `CrushMap` from `crushtool --dump` JSON (names kept, shadow buckets included).
pub fn map_from_dump(name: &str) -> CrushMap {
    let dump: Value = serde_json::from_str(&read_data(&format!("maps/{name}.dump.json"))).unwrap();
    let mut map = CrushMap::default();
    let t = &dump["tunables"];
    let tun = |k: &str| t[k].as_u64().unwrap() as u32;
    map.tunables = Tunables {
        choose_local_tries: tun("choose_local_tries"),
        choose_local_fallback_tries: tun("choose_local_fallback_tries"),
        choose_total_tries: tun("choose_total_tries"),
        chooseleaf_descend_once: tun("chooseleaf_descend_once"),
        chooseleaf_vary_r: tun("chooseleaf_vary_r"),
        chooseleaf_stable: tun("chooseleaf_stable"),
        straw_calc_version: tun("straw_calc_version"),
        allowed_bucket_algs: tun("allowed_bucket_algs"),
    };
    for d in dump["devices"].as_array().unwrap() {
        let id = d["id"].as_i64().unwrap() as i32;
        map.devices.insert(
            id,
            Device {
                id,
                name: d["name"].as_str().unwrap().to_string(),
                class: d["class"].as_str().map(str::to_string),
            },
        );
    }
    for t in dump["types"].as_array().unwrap() {
        map.types.insert(
            t["type_id"].as_i64().unwrap() as i32,
            t["name"].as_str().unwrap().to_string(),
        );
    }
    for b in dump["buckets"].as_array().unwrap() {
        let id = b["id"].as_i64().unwrap() as i32;
        map.buckets.insert(
            id,
            Bucket {
                id,
                name: b["name"].as_str().unwrap().to_string(),
                type_id: b["type_id"].as_i64().unwrap() as i32,
                alg: BucketAlg::from_name(b["alg"].as_str().unwrap()).unwrap(),
                hash: 0,
                items: b["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| BucketItem {
                        id: i["id"].as_i64().unwrap() as i32,
                        weight: i["weight"].as_u64().unwrap() as u32,
                    })
                    .collect(),
                shadow: None,
            },
        );
    }
    let type_named = |n: &str| {
        *map.types
            .iter()
            .find(|(_, name)| name.as_str() == n)
            .unwrap()
            .0
    };
    let mut rules = BTreeMap::new();
    for r in dump["rules"].as_array().unwrap() {
        let id = r["rule_id"].as_u64().unwrap() as u32;
        let steps = r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let num = || s["num"].as_i64().unwrap() as i32;
                let ty = || type_named(s["type"].as_str().unwrap());
                match s["op"].as_str() {
                    Some("take") => Step::Take(s["item"].as_i64().unwrap() as i32),
                    Some("emit") => Step::Emit,
                    Some("noop") => Step::Noop,
                    Some("choose_firstn") => Step::ChooseFirstN {
                        n: num(),
                        type_id: ty(),
                    },
                    Some("choose_indep") => Step::ChooseIndep {
                        n: num(),
                        type_id: ty(),
                    },
                    Some("chooseleaf_firstn") => Step::ChooseLeafFirstN {
                        n: num(),
                        type_id: ty(),
                    },
                    Some("chooseleaf_indep") => Step::ChooseLeafIndep {
                        n: num(),
                        type_id: ty(),
                    },
                    Some("set_choose_tries") => Step::SetChooseTries(num()),
                    Some("set_chooseleaf_tries") => Step::SetChooseLeafTries(num()),
                    Some(other) => panic!("unknown op {other}"),
                    None => {
                        let arg = s["arg1"].as_i64().unwrap() as i32;
                        match s["opcode"].as_u64().unwrap() {
                            10 => Step::SetChooseLocalTries(arg),
                            11 => Step::SetChooseLocalFallbackTries(arg),
                            12 => Step::SetChooseLeafVaryR(arg),
                            13 => Step::SetChooseLeafStable(arg),
                            op => panic!("unknown opcode {op}"),
                        }
                    }
                }
            })
            .collect();
        rules.insert(
            id,
            Rule {
                id,
                name: r["rule_name"].as_str().unwrap().to_string(),
                rule_type: match r["type"].as_u64().unwrap() {
                    1 => RuleType::Replicated,
                    3 => RuleType::Erasure,
                    n => RuleType::Other(n as u32),
                },
                min_size: r["min_size"].as_u64().unwrap() as u32,
                max_size: r["max_size"].as_u64().unwrap() as u32,
                steps,
            },
        );
    }
    map.rules = rules;
    if let Some(sets) = dump["choose_args"].as_object() {
        for (key, entries) in sets {
            let mut args = ChooseArgs::new();
            for e in entries.as_array().unwrap() {
                let arg = ChooseArg {
                    weight_set: e["weight_set"]
                        .as_array()
                        .map(|sets| {
                            sets.iter()
                                .map(|ws| ws.as_array().unwrap().iter().map(weight_16).collect())
                                .collect()
                        })
                        .unwrap_or_default(),
                    ids: e["ids"]
                        .as_array()
                        .map(|ids| ids.iter().map(|i| i.as_i64().unwrap() as i32).collect()),
                };
                args.insert(e["bucket_id"].as_i64().unwrap() as i32, arg);
            }
            map.choose_args.insert(key.parse().unwrap(), args);
        }
    }
    map
}
