//! Ceph's CRUSH text format and device-class shadow trees, checked against crushtool 16:
//! every published text must print back byte for byte, compile to exactly what
//! `crushtool --dump` shows (shadow trees included), and bad texts must fail with the right
//! line and message, never a panic. Shadow rebuilds must be idempotent and follow edits.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crush::shadow::rebuild;
use crush::text::{parse, print, ParseError};
use crush::{BucketAlg, ChooseArg, CrushMap, RuleType, Step};
use serde_json::Value;

/// Every map published in `tests/data/maps` (checked against the directory listing).
const MAPS: &[&str] = &[
    "algs_jewel",
    "algs_legacy",
    "big400",
    "choose_args",
    "classes",
    "ec8hosts",
    "flat10",
    "racks3",
    "sparse",
    "tunables_argonaut",
    "tunables_bobtail",
    "tunables_firefly",
    "tunables_hammer",
    "tunables_jewel",
];

fn maps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/maps")
}

fn read(name: &str, extension: &str) -> String {
    let path = maps_dir().join(format!("{name}.{extension}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn compile(name: &str) -> CrushMap {
    parse(&read(name, "txt")).unwrap_or_else(|e| panic!("{name}.txt does not compile: {e}"))
}

#[test]
fn every_published_map_is_listed() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(maps_dir())
        .expect("tests/data/maps must exist")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".txt").map(str::to_string)
        })
        .collect();
    let listed: BTreeSet<String> = MAPS.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, listed);
    for name in MAPS {
        assert!(maps_dir().join(format!("{name}.dump.json")).is_file());
    }
}

// ----- (1) round trip ----------------------------------------------------------------

#[test]
fn print_of_parse_is_byte_identical() {
    for name in MAPS {
        let text = read(name, "txt");
        let printed = print(&compile(name));
        if printed != text {
            let line = printed
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .map_or(0, |i| i + 1);
            panic!(
                "{name}: printed text differs from the published one at line {line}:\n\
                 printed:   {:?}\npublished: {:?}",
                printed.lines().nth(line.saturating_sub(1)),
                text.lines().nth(line.saturating_sub(1))
            );
        }
    }
}

// ----- (2) compiled map == crushtool --dump ------------------------------------------

fn as_i64(value: &Value, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not an integer: {value}"))
}

/// Compares a compiled map with crushtool's dump; returns every difference found.
fn differences_from_dump(map: &CrushMap, dump: &Value) -> Vec<String> {
    let mut diffs = Vec::new();

    // crushtool dumps every id below max_devices; ids without a `device` line appear as
    // placeholders named `deviceN` without a class.
    let devices: Vec<&Value> = dump["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter(|d| {
            let placeholder = format!("device{}", d["id"]);
            d["name"].as_str() != Some(placeholder.as_str()) || d.get("class").is_some()
        })
        .collect();
    if devices.len() != map.devices.len() {
        diffs.push(format!(
            "{} devices, dump has {}",
            map.devices.len(),
            devices.len()
        ));
    }
    for device in devices {
        let id = as_i64(&device["id"], "device id") as i32;
        match map.devices.get(&id) {
            None => diffs.push(format!("device {id} missing")),
            Some(d) => {
                if d.name != device["name"].as_str().unwrap_or_default() {
                    diffs.push(format!("device {id} name {}", d.name));
                }
                if d.class.as_deref() != device["class"].as_str() {
                    diffs.push(format!("device {id} class {:?}", d.class));
                }
            }
        }
    }
    if let Some(max) = dump["devices"].as_array().and_then(|d| d.last()) {
        if i64::from(map.max_devices()) != as_i64(&max["id"], "device id") + 1 {
            diffs.push(format!("max_devices {}", map.max_devices()));
        }
    }

    let types = dump["types"].as_array().expect("types");
    let dumped_types: Vec<(i32, String)> = types
        .iter()
        .map(|t| {
            (
                as_i64(&t["type_id"], "type id") as i32,
                t["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let our_types: Vec<(i32, String)> = map.types.iter().map(|(i, n)| (*i, n.clone())).collect();
    if dumped_types != our_types {
        diffs.push(format!("types {our_types:?} != {dumped_types:?}"));
    }

    let buckets = dump["buckets"].as_array().expect("buckets");
    if buckets.len() != map.buckets.len() {
        diffs.push(format!(
            "{} buckets, dump has {}",
            map.buckets.len(),
            buckets.len()
        ));
    }
    for dumped in buckets {
        let id = as_i64(&dumped["id"], "bucket id") as i32;
        let Some(bucket) = map.buckets.get(&id) else {
            diffs.push(format!("bucket {id} ({}) missing", dumped["name"]));
            continue;
        };
        let name = dumped["name"].as_str().unwrap_or_default();
        if bucket.name != name {
            diffs.push(format!("bucket {id} is named {}, dump {name}", bucket.name));
        }
        if i64::from(bucket.type_id) != as_i64(&dumped["type_id"], "type_id") {
            diffs.push(format!("bucket {name} type {}", bucket.type_id));
        }
        if bucket.alg.name() != dumped["alg"].as_str().unwrap_or_default() {
            diffs.push(format!("bucket {name} alg {}", bucket.alg.name()));
        }
        if bucket.hash != 0 || dumped["hash"] != "rjenkins1" {
            diffs.push(format!("bucket {name} hash {}", bucket.hash));
        }
        if i64::from(bucket.weight()) != as_i64(&dumped["weight"], "weight") {
            diffs.push(format!(
                "bucket {name} weight {} != {}",
                bucket.weight(),
                dumped["weight"]
            ));
        }
        let items: Vec<(i64, i64)> = dumped["items"]
            .as_array()
            .expect("items")
            .iter()
            .enumerate()
            .map(|(index, item)| {
                assert_eq!(
                    as_i64(&item["pos"], "pos"),
                    index as i64,
                    "dump items in pos order"
                );
                (
                    as_i64(&item["id"], "item id"),
                    as_i64(&item["weight"], "item weight"),
                )
            })
            .collect();
        let ours: Vec<(i64, i64)> = bucket
            .items
            .iter()
            .map(|i| (i64::from(i.id), i64::from(i.weight)))
            .collect();
        if items != ours {
            diffs.push(format!("bucket {name} items {ours:?} != {items:?}"));
        }
        // Shadow buckets are exactly the ones with `~` in their name.
        match (&bucket.shadow, name.split_once('~')) {
            (None, None) => {}
            (Some(of), Some((original, class))) => {
                if map.item_name(of.original) != Some(original) || of.class != class {
                    diffs.push(format!("bucket {name} is marked a shadow of {of:?}"));
                }
                let class_id = map.class_id(class).expect("class of a shadow bucket");
                if map.class_buckets.get(&(of.original, class_id)) != Some(&id) {
                    diffs.push(format!("class_buckets lacks {name}"));
                }
            }
            (shadow, _) => diffs.push(format!("bucket {name} shadow marker {shadow:?}")),
        }
    }

    let rules = dump["rules"].as_array().expect("rules");
    if rules.len() != map.rules.len() {
        diffs.push(format!(
            "{} rules, dump has {}",
            map.rules.len(),
            rules.len()
        ));
    }
    for dumped in rules {
        let id = as_i64(&dumped["rule_id"], "rule id") as u32;
        let Some(rule) = map.rules.get(&id) else {
            diffs.push(format!("rule {id} missing"));
            continue;
        };
        if rule.name != dumped["rule_name"].as_str().unwrap_or_default() {
            diffs.push(format!("rule {id} name {}", rule.name));
        }
        if i64::from(rule.rule_type.code()) != as_i64(&dumped["type"], "rule type")
            || i64::from(rule.min_size) != as_i64(&dumped["min_size"], "min_size")
            || i64::from(rule.max_size) != as_i64(&dumped["max_size"], "max_size")
        {
            diffs.push(format!("rule {id} header {rule:?}"));
        }
        let steps: Vec<Step> = dumped["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| step_from_dump(map, s))
            .collect();
        if steps != rule.steps {
            diffs.push(format!("rule {id} steps {:?} != {steps:?}", rule.steps));
        }
    }

    let tunables = &dump["tunables"];
    let t = &map.tunables;
    let ours = [
        ("choose_local_tries", t.choose_local_tries),
        ("choose_local_fallback_tries", t.choose_local_fallback_tries),
        ("choose_total_tries", t.choose_total_tries),
        ("chooseleaf_descend_once", t.chooseleaf_descend_once),
        ("chooseleaf_vary_r", t.chooseleaf_vary_r),
        ("chooseleaf_stable", t.chooseleaf_stable),
        ("straw_calc_version", t.straw_calc_version),
        ("allowed_bucket_algs", t.allowed_bucket_algs),
    ];
    for (name, value) in ours {
        if i64::from(value) != as_i64(&tunables[name], name) {
            diffs.push(format!("tunable {name} = {value}, dump {}", tunables[name]));
        }
    }

    let choose_args = dump["choose_args"].as_object().expect("choose_args");
    if choose_args.len() != map.choose_args.len() {
        diffs.push(format!("choose_args sets {:?}", map.choose_args.keys()));
    }
    for (key, entries) in choose_args {
        let key: i64 = key.parse().expect("choose_args key");
        let Some(set) = map.choose_args.get(&key) else {
            diffs.push(format!("choose_args {key} missing"));
            continue;
        };
        let entries = entries.as_array().expect("choose_args entries");
        if entries.len() != set.len() {
            diffs.push(format!("choose_args {key} has {} entries", set.len()));
        }
        for entry in entries {
            let bucket_id = as_i64(&entry["bucket_id"], "bucket_id") as i32;
            let weight_set: Vec<Vec<u32>> = entry["weight_set"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|row| {
                            row.as_array()
                                .expect("weight row")
                                .iter()
                                .map(|w| {
                                    // The dump prints w / 65536 as a double: exact.
                                    let scaled = w.as_f64().expect("weight") * 65536.0;
                                    assert_eq!(scaled.fract(), 0.0);
                                    scaled as u32
                                })
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ids: Option<Vec<i32>> = entry["ids"].as_array().map(|ids| {
                ids.iter()
                    .map(|i| as_i64(i, "choose_args id") as i32)
                    .collect()
            });
            let expected = ChooseArg { weight_set, ids };
            if set.get(&bucket_id) != Some(&expected) {
                diffs.push(format!(
                    "choose_args {key} bucket {bucket_id}: {:?} != {expected:?}",
                    set.get(&bucket_id)
                ));
            }
        }
    }
    diffs
}

fn step_from_dump(map: &CrushMap, step: &Value) -> Step {
    let num = || as_i64(&step["num"], "num") as i32;
    let type_id = || {
        let name = step["type"].as_str().expect("type name");
        map.type_id(name)
            .unwrap_or_else(|| panic!("dump names unknown type {name}"))
    };
    if let Some(opcode) = step.get("opcode") {
        let arg1 = as_i64(&step["arg1"], "arg1") as i32;
        return match as_i64(opcode, "opcode") {
            10 => Step::SetChooseLocalTries(arg1),
            11 => Step::SetChooseLocalFallbackTries(arg1),
            12 => Step::SetChooseLeafVaryR(arg1),
            13 => Step::SetChooseLeafStable(arg1),
            other => panic!("unexpected raw opcode {other}"),
        };
    }
    match step["op"].as_str().expect("op") {
        "noop" => Step::Noop,
        "take" => Step::Take(as_i64(&step["item"], "item") as i32),
        "emit" => Step::Emit,
        "choose_firstn" => Step::ChooseFirstN {
            n: num(),
            type_id: type_id(),
        },
        "choose_indep" => Step::ChooseIndep {
            n: num(),
            type_id: type_id(),
        },
        "chooseleaf_firstn" => Step::ChooseLeafFirstN {
            n: num(),
            type_id: type_id(),
        },
        "chooseleaf_indep" => Step::ChooseLeafIndep {
            n: num(),
            type_id: type_id(),
        },
        "set_choose_tries" => Step::SetChooseTries(num()),
        "set_chooseleaf_tries" => Step::SetChooseLeafTries(num()),
        other => panic!("unexpected op {other}"),
    }
}

#[test]
fn compiled_maps_equal_crushtool_dump() {
    for name in MAPS {
        let dump: Value = serde_json::from_str(&read(name, "dump.json"))
            .unwrap_or_else(|e| panic!("{name}.dump.json: {e}"));
        let diffs = differences_from_dump(&compile(name), &dump);
        assert!(diffs.is_empty(), "{name}: {diffs:#?}");
    }
}

#[test]
fn the_dump_comparison_notices_a_wrong_weight() {
    let dump: Value = serde_json::from_str(&read("classes", "dump.json")).expect("dump");
    let mut map = compile("classes");
    // default~ssd's first item: bump its weight by one unit.
    let shadow = map.bucket_by_name("default~ssd").expect("shadow").id;
    map.buckets.get_mut(&shadow).expect("bucket").items[0].weight += 1;
    let diffs = differences_from_dump(&map, &dump);
    assert!(diffs.iter().any(|d| d.contains("default~ssd")), "{diffs:?}");
}

#[test]
fn shadow_ids_are_the_same_when_the_class_id_lines_are_removed() {
    for name in MAPS {
        let text = read(name, "txt");
        let stripped: String = text
            .lines()
            .filter(|line| !(line.trim_start().starts_with("id ") && line.contains(" class ")))
            .map(|line| format!("{line}\n"))
            .collect();
        let map = parse(&stripped).unwrap_or_else(|e| panic!("{name} without class ids: {e}"));
        assert_eq!(map, compile(name), "{name}");
    }
}

// ----- (4) parse -> print -> parse ---------------------------------------------------

#[test]
fn parse_print_parse_gives_an_equal_map() {
    for name in MAPS {
        let map = compile(name);
        let again = parse(&print(&map)).unwrap_or_else(|e| panic!("{name} reprinted: {e}"));
        assert_eq!(again, map, "{name}");
    }
}

// ----- (3) errors --------------------------------------------------------------------

/// A small valid map; the error cases below edit it. Line numbers are noted on the right.
const BASE: &str = "\
tunable choose_total_tries 50
device 0 osd.0 class hdd
device 1 osd.1 class ssd
type 0 osd
type 1 host
type 2 root
host h0 {
\tid -2
\talg straw2
\thash 0
\titem osd.0 weight 1.000
\titem osd.1 weight 2.000
}
root default {
\tid -1
\talg straw2
\thash 0
\titem h0 weight 3.000
}
rule r {
\tid 0
\ttype replicated
\tstep take default class ssd
\tstep chooseleaf firstn 0 type host
\tstep emit
}
";

#[test]
fn the_base_map_of_the_error_cases_compiles() {
    let map = parse(BASE).expect("BASE compiles");
    let ssd_root = map.bucket_by_name("default~ssd").expect("shadow root").id;
    assert_eq!(map.rules[&0].steps[0], Step::Take(ssd_root));
    assert_eq!(map.tunables.choose_total_tries, 50);
    assert_eq!(map.tunables.choose_local_tries, 2, "legacy defaults");
}

/// `(replace, with, line, message fragment)` applied to [`BASE`].
const BAD_EDITS: &[(&str, &str, usize, &str)] = &[
    (
        "osd.0 weight 1.000",
        "osd.0 wieght 1.000",
        11,
        "expected `weight`, `pos` or end of line after the item name, found `wieght`",
    ),
    (
        "choose_total_tries 50",
        "choose_total_trys 50",
        1,
        "unknown tunable `choose_total_trys`",
    ),
    (
        "choose_total_tries 50",
        "choose_total_tries -5",
        1,
        "must be between 0 and",
    ),
    (
        "item osd.1",
        "item osd.9",
        12,
        "item `osd.9` is not defined",
    ),
    ("host h0 {", "hots h0 {", 7, "found `hots`"),
    (
        "\tid -2\n",
        "\tid -1\n",
        15,
        "bucket id `-1` is already defined",
    ),
    (
        "\tid -2\n",
        "\tid 2\n",
        8,
        "must be between -2147483648 and -1",
    ),
    (
        "root default {",
        "root h0 {",
        14,
        "bucket or device name `h0` is already defined",
    ),
    (
        "root default {",
        "root osd.0 {",
        14,
        "`osd.0` is already defined",
    ),
    (
        "device 1 osd.1",
        "device 0 osd.1",
        3,
        "device id `0` is already defined",
    ),
    (
        "device 1 osd.1",
        "device 1 osd.0",
        3,
        "device name `osd.0` is already defined",
    ),
    (
        "device 1 osd.1 class ssd",
        "device 1 osd.1 clas ssd",
        3,
        "found `clas`",
    ),
    (
        "type 2 root",
        "type 1 root",
        6,
        "type id `1` is already defined",
    ),
    (
        "type 2 root",
        "type 2 host",
        6,
        "type name `host` is already defined",
    ),
    (
        "class ssd\n\tstep",
        "class nvme\n\tstep",
        23,
        "device class `nvme` is not defined",
    ),
    (
        "take default class",
        "take nowhere class",
        23,
        "`nowhere` is not defined",
    ),
    (
        "take default class ssd",
        "take default clas ssd",
        23,
        "found `clas`",
    ),
    (
        "type host\n",
        "type rack\n",
        24,
        "type `rack` is not defined",
    ),
    (
        "firstn 0 type",
        "firstn x type",
        24,
        "expected a count, found `x`",
    ),
    (
        "firstn 0 type",
        "first 0 type",
        24,
        "expected `firstn` or `indep`, found `first`",
    ),
    (
        "step chooseleaf",
        "step chooseleafs",
        24,
        "found `chooseleafs`",
    ),
    ("step emit", "step emitt", 25, "found `emitt`"),
    (
        "\talg straw2\n\thash 0\n\titem h0",
        "\talg straw3\n\thash 0\n\titem h0",
        16,
        "found `straw3`",
    ),
    (
        "item h0 weight 3.000",
        "item h0 weight -3",
        18,
        "out of range",
    ),
    (
        "item h0 weight 3.000",
        "item h0 weight 1e9",
        18,
        "out of range",
    ),
    (
        "item h0 weight 3.000",
        "item h0 weight 3.0.0",
        18,
        "expected a weight",
    ),
    (
        "osd.0 weight 1.000",
        "osd.0 weight 1.000;",
        11,
        "found `1.000;`",
    ),
    (
        "osd.1 weight 2.000",
        "osd.1 weight 101",
        12,
        "limited to 100",
    ),
    (
        "item h0 weight 3.000",
        "item default weight 3.000",
        18,
        "lists itself",
    ),
    (
        "\titem osd.1 weight 2.000\n",
        "\titem osd.1 weight 2.000\n\titem default\n",
        19,
        "bucket `default` cannot contain `h0`, which already contains it",
    ),
    (
        "osd.1 weight 2.000",
        "osd.0 weight 2.000",
        12,
        "appears twice in bucket `h0`",
    ),
    (
        "osd.0 weight 1.000",
        "osd.0 weight 1.000 pos 5",
        11,
        "has pos 5",
    ),
    (
        "osd.1 weight 2.000",
        "osd.1 weight 2.000 pos 0\n\titem h9 pos 0",
        13,
        "which another item of bucket `h0` already has",
    ),
    (
        "osd.0 weight 1.000",
        "osd.0 weight 1.000 pos 0 pos 1",
        11,
        "found `pos`",
    ),
    (
        "\thash 0\n\titem osd.0",
        "\thash 3\n\titem osd.0",
        10,
        "hash 3 is not supported",
    ),
    (
        "\thash 0\n\titem osd.0",
        "\thash sha1\n\titem osd.0",
        10,
        "expected `0` or `rjenkins1`",
    ),
    (
        "\talg straw2\n\thash 0\n\titem osd.0",
        "\thash 0\n\titem osd.0",
        7,
        "has no `alg` line",
    ),
    (
        "\thash 0\n\titem osd.0",
        "\thash 0\n\talg list\n\titem osd.0",
        11,
        "more than one `alg`",
    ),
    (
        "\tid -2\n",
        "\tid -2\n\tid -3\n",
        9,
        "more than one `id` line",
    ),
    (
        "\tid -2\n",
        "\tid -2\n\tid -1 class ssd\n",
        9,
        "is already a bucket's id",
    ),
    (
        "\tid -2\n",
        "\tid -2\n\tid -5 class ssd\n\tid -5 class hdd\n",
        10,
        "shadow bucket id `-5` is already defined",
    ),
    (
        "\tid -2\n",
        "\tid -2\n\tid -5 class ssd\n\tid -6 class ssd\n",
        10,
        "class `ssd`",
    ),
    (
        "\talg straw2\n\thash 0\n\titem osd.0",
        "\talg uniform\n\thash 0\n\titem osd.0",
        12,
        "uniform buckets need identical weights",
    ),
    (
        "\talg straw2\n\thash 0\n\titem osd.0 weight 1.000\n\titem osd.1 weight 2.000",
        "\talg uniform\n\thash 0\n\titem osd.0 weight 1.000\n\titem osd.1 weight 1.000",
        23,
        "`default` has no shadow copy for class ssd",
    ),
    (
        "rule r {\n\tid 0\n",
        "rule r {\n",
        20,
        "rule `r` has no `id` line",
    ),
    (
        "\tid 0\n",
        "\tid 300\n",
        21,
        "rule id must be between 0 and 255",
    ),
    (
        "\ttype replicated\n",
        "\ttype replicate\n",
        22,
        "found `replicate`",
    ),
    ("\ttype replicated\n", "", 20, "has no `type` line"),
    (
        "\ttype replicated\n",
        "\ttype replicated\n\tmin_size 1\n\tmin_size 2\n",
        24,
        "more than one `min_size`",
    ),
    ("rule r {", "rule {", 20, "expected a rule name"),
    (
        "\tstep emit\n}\n",
        "\tstep emit\n",
        25,
        "expected `}`, found end of input",
    ),
    ("host h0 {", "host h0", 8, "expected `{`, found `id`"),
    (
        "\tstep take default class ssd\n\tstep chooseleaf firstn 0 type host\n\tstep emit\n",
        "",
        20,
        "has no steps",
    ),
    (
        "rule r {",
        "device 2 osd.2\nrule r {",
        20,
        "`device` lines must come before",
    ),
    ("rule r {", "}\nrule r {", 20, "found `}`"),
];

fn apply_edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "edit target {from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

#[test]
fn bad_texts_fail_with_line_and_message() {
    let mut failures = Vec::new();
    for (from, to, line, fragment) in BAD_EDITS {
        let text = apply_edit(from, to);
        match parse(&text) {
            Ok(_) => failures.push(format!("{to:?}: compiled, expected an error")),
            Err(error) => {
                let message = error.to_string();
                if error.line() != *line
                    || !message.contains(fragment)
                    || !message.starts_with(&format!("line {line}: "))
                {
                    failures.push(format!(
                        "{to:?}: got `{message}`, want line {line} and `{fragment}`"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn more_bad_texts() {
    let cases: Vec<(String, usize, &str)> = vec![
        (
            BASE.replacen("tunable choose_total_tries 50", "# comment\ntunable foo 1", 1),
            2,
            "unknown tunable `foo`",
        ),
        (
            format!("{BASE}host h1 {{\n\tid -3\n\talg straw2\n}}\n"),
            27,
            "buckets must be defined before rules",
        ),
        (
            format!("{BASE}choose_args 0 {{\n  {{\n    bucket_id -2\n    weight_set [\n      [ 1.0 ]\n    ]\n  }}\n}}\n"),
            31,
            "each weight_set list needs 2 weights, found 1",
        ),
        (
            format!("{BASE}choose_args 0 {{\n  {{\n    bucket_id -9\n  }}\n}}\n"),
            29,
            "bucket id `-9` is not defined",
        ),
        (
            format!("{BASE}choose_args 0 {{\n  {{\n    bucket_id -2\n    ids [ 1 ]\n  }}\n}}\n"),
            30,
            "`ids` needs 2 ids, found 1",
        ),
        (
            format!("{BASE}choose_args 0 {{\n}}\nchoose_args 0 {{\n}}\n"),
            29,
            "choose_args key `0` is already defined",
        ),
        (
            format!("{BASE}choose_args 0 {{\n}}\nrule s {{\n}}\n"),
            29,
            "rules must come before choose_args",
        ),
        (
            format!("{BASE}rule r {{\n\tid 1\n\ttype erasure\n\tstep emit\n}}\n"),
            27,
            "rule name `r` is already defined",
        ),
        (
            format!("{BASE}rule s {{\n\tid 0\n\ttype erasure\n\tstep emit\n}}\n"),
            28,
            "rule id `0` is already defined",
        ),
        ("{".to_string(), 1, "expected `tunable`"),
        ("device".to_string(), 1, "expected a device id, found end of input"),
        ("type 0 osd\nosd x {\n".to_string(), 2, "is the device type"),
        ("device 2147483646 osd.x\n".to_string(), 1, "must be between 0 and 2147483645"),
    ];
    for (text, line, fragment) in cases {
        let error = parse(&text).expect_err(&text);
        assert_eq!(error.line(), line, "{error} for {text:?}");
        assert!(error.to_string().contains(fragment), "{error} for {text:?}");
    }
}

#[test]
fn syntax_errors_say_what_was_expected_and_found() {
    let error = parse(&apply_edit("osd.0 weight 1.000", "osd.0 wieght 1.000")).unwrap_err();
    assert_eq!(
        error,
        ParseError::Syntax {
            line: 11,
            expected: "`weight`, `pos` or end of line after the item name".to_string(),
            found: "`wieght`".to_string(),
        }
    );
}

// ----- accepted variants ----------------------------------------------------------------

#[test]
fn buckets_may_come_in_any_order_and_without_ids_or_weights() {
    let text = "\
device 0 osd.0
device 1 osd.1
device 2 osd.2
type 0 osd
type 1 host
type 2 root
root top { alg straw2 item a item b weight 5 }
host a { alg straw2 item osd.0 weight 2.5 item osd.1 }
host b { id -1 alg straw2 hash rjenkins1 item osd.2 weight 0.1 }
";
    let map = parse(text).expect("compiles");
    // Compiled children first: a gets the first free id (-2, as -1 is b's), then top (-3).
    let a = map.bucket_by_name("a").expect("a");
    let top = map.bucket_by_name("top").expect("top");
    assert_eq!((a.id, top.id), (-2, -3));
    assert_eq!(a.items[0].weight, 163840);
    assert_eq!(
        a.items[1].weight, 65536,
        "a device without weight weighs 1.0"
    );
    assert_eq!(
        top.items[0].weight,
        a.weight(),
        "a bucket without weight: its total"
    );
    assert_eq!(top.items[1].weight, 5 * 65536);
    assert_eq!(map.bucket_by_name("b").expect("b").items[0].weight, 6553);
    // No classes: no shadow trees; the printed form compiles to the same map.
    assert!(map.class_buckets.is_empty());
    assert_eq!(parse(&print(&map)).expect("reprint"), map);
}

#[test]
fn positions_place_items() {
    let text = "\
device 0 osd.0
device 1 osd.1
device 2 osd.2
type 0 osd
type 1 host
host h { alg tree
  item osd.0 pos 2
  item osd.1 weight 2
  item osd.2 pos 0
}
";
    let map = parse(text).expect("compiles");
    let ids: Vec<i32> = map.buckets[&-1].items.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![2, 1, 0]);
    assert!(print(&map).contains("\titem osd.0 weight 1.000 pos 2\n"));
}

#[test]
fn rule_variants_round_trip() {
    let text = format!(
        "{}rule other {{\n\truleset 7\n\ttype 5\n\tmin_size 2\n\tmax_size 4\n\tstep set_choose_local_tries 1\n\tstep set_choose_local_fallback_tries 2\n\tstep set_chooseleaf_vary_r 3\n\tstep set_chooseleaf_stable 0\n\tstep noop\n\tstep take osd.1\n\tstep choose indep -2 type osd\n\tstep emit\n}}\n",
        BASE
    );
    let map = parse(&text).expect("compiles");
    let rule = &map.rules[&7];
    assert_eq!(rule.rule_type, RuleType::Other(5));
    assert_eq!(
        rule.steps,
        vec![
            Step::SetChooseLocalTries(1),
            Step::SetChooseLocalFallbackTries(2),
            Step::SetChooseLeafVaryR(3),
            Step::SetChooseLeafStable(0),
            Step::Noop,
            Step::Take(1),
            Step::ChooseIndep { n: -2, type_id: 0 },
            Step::Emit,
        ]
    );
    let printed = print(&map);
    assert!(printed.contains("rule other {\n\tid 7\n\ttype 5\n\tmin_size 2\n\tmax_size 4\n"));
    assert_eq!(parse(&printed).expect("reprint"), map);
}

#[test]
fn a_map_without_rules_still_gets_shadow_trees() {
    let end = BASE.find("rule r {").expect("rule");
    let map = parse(&BASE[..end]).expect("compiles");
    assert!(map.bucket_by_name("default~ssd").is_some());
    assert!(map.bucket_by_name("h0~hdd").is_some());
}

#[test]
fn empty_and_comment_only_texts_give_an_empty_map() {
    for text in ["", "\n\n", "# begin crush map\n\n# end crush map\n"] {
        assert_eq!(parse(text).expect("compiles"), CrushMap::default());
    }
}

// ----- never panic -------------------------------------------------------------------

/// A tiny deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

/// Edits a text at random: drops, duplicates or swaps lines, changes a character, cuts it.
fn mutate(text: &str, rng: &mut Lcg) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return String::new();
    }
    for _ in 0..=rng.next(3) {
        let at = rng.next(lines.len());
        match rng.next(6) {
            0 => {
                lines.remove(at);
            }
            1 => {
                let copy = lines[at].clone();
                lines.insert(rng.next(lines.len()), copy);
            }
            2 => {
                let other = rng.next(lines.len());
                lines.swap(at, other);
            }
            3 | 4 => {
                const CHARS: &[char] = &[
                    '{', '}', '[', ']', '-', '.', '0', '9', ' ', '#', 'x', '~', 'é', '\t',
                ];
                let mut chars: Vec<char> = lines[at].chars().collect();
                if !chars.is_empty() {
                    let index = rng.next(chars.len());
                    chars[index] = CHARS[rng.next(CHARS.len())];
                }
                lines[at] = chars.into_iter().collect();
            }
            _ => lines.truncate(at),
        }
        if lines.is_empty() {
            break;
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_maps_never_panic() {
    let mut rng = Lcg(0x5eed);
    let mut accepted = 0;
    for name in MAPS {
        let text = read(name, "txt");
        for _ in 0..150 {
            let mutated = mutate(&text, &mut rng);
            if let Ok(map) = parse(&mutated) {
                accepted += 1;
                let printed = print(&map);
                parse(&printed).unwrap_or_else(|e| {
                    panic!("the print of an accepted mutation does not compile: {e}\n{printed}")
                });
            }
        }
    }
    // Some mutations (a changed comment, a swapped device line) must still compile.
    assert!(accepted > 0);
}

#[test]
fn token_soup_never_panics() {
    const WORDS: &[&str] = &[
        "tunable",
        "device",
        "type",
        "host",
        "root",
        "rule",
        "step",
        "take",
        "class",
        "id",
        "alg",
        "hash",
        "item",
        "weight",
        "pos",
        "choose",
        "chooseleaf",
        "firstn",
        "indep",
        "emit",
        "choose_args",
        "bucket_id",
        "weight_set",
        "ids",
        "straw2",
        "uniform",
        "tree",
        "0",
        "1",
        "-1",
        "-2",
        "3.5",
        "osd",
        "osd.0",
        "h",
        "default",
        "ssd",
        "{",
        "}",
        "[",
        "]",
        "\n",
        "#",
        "replicated",
        "99999999999999999999",
        "-0",
        "1e3",
    ];
    let mut rng = Lcg(42);
    for _ in 0..3000 {
        let length = rng.next(60);
        let text: Vec<&str> = (0..length).map(|_| WORDS[rng.next(WORDS.len())]).collect();
        let text = text.join(" ");
        if let Ok(map) = parse(&text) {
            let _ = print(&map);
        }
    }
}

// ----- shadow trees ------------------------------------------------------------------

#[test]
fn rebuild_of_a_compiled_map_changes_nothing() {
    for name in MAPS {
        let map = compile(name);
        let mut rebuilt = map.clone();
        rebuild(&mut rebuilt).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The compiler builds shadow trees before it reads choose_args, so only a rebuild
        // gives shadow buckets weight sets (as in Ceph); nothing else may change.
        let mut without_shadow_sets = rebuilt.clone();
        for set in without_shadow_sets.choose_args.values_mut() {
            set.retain(|id, _| map.buckets.get(id).is_some_and(|b| b.shadow.is_none()));
        }
        assert_eq!(without_shadow_sets, map, "{name}");
        let once = rebuilt.clone();
        rebuild(&mut rebuilt).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(rebuilt, once, "{name}: a second rebuild changes nothing");
    }
}

#[test]
fn rebuild_recreates_dropped_shadow_trees_with_the_same_ids() {
    for name in ["classes", "sparse", "big400", "racks3"] {
        let map = compile(name);
        // Keep the recorded ids, drop the buckets.
        let mut stripped = map.clone();
        stripped.buckets.retain(|_, b| b.shadow.is_none());
        rebuild(&mut stripped).expect("rebuild");
        assert_eq!(stripped, map, "{name}, ids kept");
        // Forget the ids too: the compiler's choice is the same.
        let mut forgotten = map.clone();
        forgotten.buckets.retain(|_, b| b.shadow.is_none());
        forgotten.class_buckets.clear();
        rebuild(&mut forgotten).expect("rebuild");
        assert_eq!(forgotten, map, "{name}, ids chosen again");
    }
}

#[test]
fn rebuild_follows_a_removed_device() {
    let mut map = compile("classes");
    let ssd_ids_before: Vec<(String, i32)> = map
        .buckets
        .values()
        .filter(|b| b.name.ends_with("~ssd"))
        .map(|b| (b.name.clone(), b.id))
        .collect();
    // Take osd.3 (ssd, 1.746) out of node0 and out of the map.
    let node0 = map.bucket_by_name("node0").expect("node0").id;
    map.buckets
        .get_mut(&node0)
        .expect("node0")
        .items
        .retain(|i| i.id != 3);
    map.devices.remove(&3);
    rebuild(&mut map).expect("rebuild");

    let node0_ssd = map.bucket_by_name("node0~ssd").expect("copy stays");
    assert_eq!(node0_ssd.items.len(), 1, "only osd.4 left");
    assert_eq!(node0_ssd.items[0].id, 4);
    let root = map.bucket_by_name("default~ssd").expect("root copy");
    let listed = root
        .items
        .iter()
        .find(|i| i.id == node0_ssd.id)
        .expect("node0~ssd listed");
    assert_eq!(listed.weight, node0_ssd.weight(), "exact sum propagates up");
    let ssd_ids_after: Vec<(String, i32)> = map
        .buckets
        .values()
        .filter(|b| b.name.ends_with("~ssd"))
        .map(|b| (b.name.clone(), b.id))
        .collect();
    assert_eq!(ssd_ids_after, ssd_ids_before, "ids are kept");

    let once = map.clone();
    rebuild(&mut map).expect("second rebuild");
    assert_eq!(map, once, "idempotent");
}

#[test]
fn rebuild_drops_stale_shadows_of_removed_buckets_and_dead_classes() {
    let mut map = compile("classes");
    let node6 = map.bucket_by_name("node6").expect("node6").id;
    let default = map.bucket_by_name("default").expect("default").id;
    map.buckets
        .get_mut(&default)
        .expect("default")
        .items
        .retain(|i| i.id != node6);
    map.buckets.remove(&node6);
    rebuild(&mut map).expect("rebuild");
    assert!(map.buckets.values().all(|b| !b.name.starts_with("node6")));
    assert!(map
        .class_buckets
        .keys()
        .all(|(original, _)| *original != node6));

    // nvme: remove its devices; rule 6 still takes default~nvme, so the class stays...
    for osd in [17, 21] {
        map.devices.remove(&osd);
        for bucket in map.buckets.values_mut() {
            bucket.items.retain(|i| i.id != osd);
        }
    }
    rebuild(&mut map).expect("rebuild");
    let nvme_root = map.bucket_by_name("default~nvme").expect("kept for rule 6");
    assert_eq!(nvme_root.weight(), 0);
    assert_eq!(map.rules[&6].steps[0], Step::Take(nvme_root.id));
    // ...until no rule uses it.
    map.rules.remove(&6);
    rebuild(&mut map).expect("rebuild");
    assert!(map.class_id("nvme").is_none());
    assert!(map.buckets.values().all(|b| !b.name.ends_with("~nvme")));
    let nvme_records = map
        .class_buckets
        .values()
        .filter(|id| !map.buckets.contains_key(id))
        .count();
    assert_eq!(nvme_records, 0, "no record points at a missing bucket");
    assert_eq!(parse(&print(&map)).expect("reprint"), map);
}

#[test]
fn rebuild_registers_a_new_device_class() {
    let mut map = compile("racks3");
    map.devices.get_mut(&0).expect("osd.0").class = Some("ssd".to_string());
    rebuild(&mut map).expect("rebuild");
    let ssd = map.class_id("ssd").expect("registered");
    assert_eq!(ssd, 1, "after hdd");
    let osd0_weight = map
        .parent_of(0)
        .and_then(|host| host.items.iter().find(|i| i.id == 0))
        .expect("osd.0 is in a host")
        .weight;
    let root = map.bucket_by_name("default~ssd").expect("ssd tree");
    assert_eq!(root.weight(), osd0_weight, "the ssd tree holds osd.0 only");
    assert_eq!(map.class_buckets.get(&(-1, ssd)), Some(&root.id));
}

#[test]
fn tree_buckets_get_correct_shadow_copies() {
    let text = "\
device 0 osd.0 class hdd
device 1 osd.1 class ssd
device 2 osd.2 class hdd
device 3 osd.3 class ssd
type 0 osd
type 1 host
type 2 root
host t { id -2 alg tree
  item osd.0 weight 1.0 pos 0
  item osd.1 weight 2.0 pos 1
  item osd.2 weight 3.0 pos 2
  item osd.3 weight 4.0 pos 3
}
root default { id -1 alg straw2 item t }
rule hdd { id 0 type replicated step take default class hdd step chooseleaf firstn 0 type host step emit }
";
    let map = parse(text).expect("compiles");
    let hdd = map.bucket_by_name("t~hdd").expect("copy");
    assert_eq!(hdd.alg, BucketAlg::Tree);
    let items: Vec<(i32, u32)> = hdd.items.iter().map(|i| (i.id, i.weight)).collect();
    assert_eq!(items, vec![(0, 65536), (2, 3 * 65536)]);
    let ssd = map.bucket_by_name("t~ssd").expect("copy");
    let items: Vec<(i32, u32)> = ssd.items.iter().map(|i| (i.id, i.weight)).collect();
    assert_eq!(items, vec![(1, 2 * 65536), (3, 4 * 65536)]);
    let root = map.bucket_by_name("default~hdd").expect("root copy");
    assert_eq!(
        root.items,
        vec![crush::BucketItem {
            id: hdd.id,
            weight: 4 * 65536
        }]
    );
    // Shadow ids: closest to -1 that is free, children first, class by class.
    assert_eq!((hdd.id, root.id, ssd.id), (-3, -4, -5));
    let printed = print(&map);
    assert!(printed.contains("\tid -2\t\t# do not change unnecessarily\n\tid -3 class hdd\t\t# do not change unnecessarily\n\tid -5 class ssd\t\t# do not change unnecessarily\n"));
    assert_eq!(parse(&printed).expect("reprint"), map);
}

#[test]
fn a_uniform_bucket_prevents_shadow_trees_of_its_root_only() {
    let text = "\
device 0 osd.0 class hdd
device 1 osd.1 class hdd
device 2 osd.2 class hdd
type 0 osd
type 1 host
type 2 root
host u { id -2 alg uniform item osd.0 item osd.1 }
root a { id -1 id -9 class hdd alg straw2 item u }
host s { id -4 alg straw2 item osd.2 }
root b { id -3 alg straw2 item s }
";
    let map = parse(text).expect("compiles");
    assert!(map.bucket_by_name("a~hdd").is_none());
    assert!(map.bucket_by_name("u~hdd").is_none());
    assert!(map.bucket_by_name("b~hdd").is_some());
    // The unused reservation of a~hdd is dropped, as crushtool's decompiler drops it.
    assert!(!map.class_buckets.contains_key(&(-1, 0)));
    let printed = print(&map);
    assert!(!printed.contains("id -9 class hdd"));
    assert_eq!(parse(&printed).expect("reprint"), map);
    let mut rebuilt = map.clone();
    rebuild(&mut rebuilt).expect("rebuild");
    assert_eq!(rebuilt, map);
}

#[test]
fn rebuild_copies_weight_sets_onto_shadow_buckets() {
    let mut map = compile("choose_args");
    rebuild(&mut map).expect("rebuild");
    let set = &map.choose_args[&0];
    let host0 = map.bucket_by_name("host0~hdd").expect("copy").id;
    assert_eq!(set[&host0].weight_set, vec![vec![6553, 65536, 131072]]);
    assert_eq!(set[&host0].ids, None, "ids are not copied");
    let host1 = map.bucket_by_name("host1~hdd").expect("copy").id;
    assert!(!set.contains_key(&host1), "host1 has ids only");
    let root = map.bucket_by_name("default~hdd").expect("copy").id;
    let host2 = map.bucket_by_name("host2~hdd").expect("copy").id;
    assert_eq!(set[&host2].weight_set.len(), 2);
    assert_eq!(set[&root].weight_set.len(), 3);
    assert_eq!(
        set[&root].weight_set[0],
        vec![6553 + 65536 + 131072, 0, 65536 + 65536, 0],
        "child copies weigh the sum of their own set at the same position"
    );
    assert_eq!(
        set[&root].weight_set[1],
        vec![0, 0, 2 * 65536 + 65536 + 32768, 0]
    );
    let once = map.clone();
    rebuild(&mut map).expect("again");
    assert_eq!(map, once, "idempotent");
    assert_eq!(parse(&print(&map)).expect("reprint"), map);
}
