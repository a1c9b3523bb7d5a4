//! Black-box tests of `shoal crush test`: the built binary against crushtool's own output.
//!
//! * every `crushtool --test --show-mappings` command of the golden-vector manifest
//!   (`crush/tests/data`), rerun as `shoal crush test` on the text map, must print exactly
//!   the lines crushtool printed (all 33 vector files: default, `--weight` and `--pool-id`
//!   variants);
//! * `--show-utilization --show-statistics` must equal crushtool's captured reports
//!   (`tests/data/*-utilization-*.txt`, copied from `crush-vectors/perf`) byte for byte;
//! * `--show-statistics` and `--show-bad-mappings` must agree with what the vectors imply.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// The crushtool line for one vector.
fn mapping_line(rule: u64, x: u64, osds: &[i64]) -> String {
    let list: Vec<String> = osds.iter().map(i64::to_string).collect();
    format!("CRUSH rule {rule} x {x} [{}]", list.join(","))
}

#[test]
fn show_mappings_reproduces_every_crushtool_vector_file() {
    let manifest: Value = serde_json::from_str(&read_crush_data("manifest.json")).unwrap();
    let mut files = 0;
    let mut lines_checked = 0;
    for map in manifest["maps"].as_array().unwrap() {
        let map_path = crush_data_dir().join(map["text"].as_str().unwrap());
        for vector_file in map["vector_files"].as_array().unwrap() {
            let file = vector_file["file"].as_str().unwrap();
            let expected: Vec<String> = read_crush_data(file)
                .lines()
                .map(|line| {
                    let v: Value = serde_json::from_str(line).unwrap();
                    let osds: Vec<i64> = v["osds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|o| o.as_i64().unwrap())
                        .collect();
                    mapping_line(v["rule"].as_u64().unwrap(), v["x"].as_u64().unwrap(), &osds)
                })
                .collect();
            let mut actual = Vec::new();
            for command in vector_file["commands"].as_array().unwrap() {
                let words: Vec<&str> = command.as_str().unwrap().split_whitespace().collect();
                // "crushtool -i maps/NAME.bin --test <options>"
                assert_eq!(&words[..2], &["crushtool", "-i"], "{command}");
                assert_eq!(words[3], "--test", "{command}");
                let mut args = vec!["crush", "test", "--map", map_path.to_str().unwrap()];
                args.extend(&words[4..]);
                let output = shoal(&args, None);
                assert_success(&output, command.as_str().unwrap());
                actual.extend(stdout_of(&output).lines().map(str::to_string));
            }
            assert_eq!(actual.len(), expected.len(), "{file}: number of lines");
            for (i, (got, want)) in actual.iter().zip(&expected).enumerate() {
                assert_eq!(got, want, "{file}: line {}", i + 1);
            }
            assert_eq!(
                expected.len() as u64,
                vector_file["lines"].as_u64().unwrap(),
                "{file}: the manifest's line count"
            );
            files += 1;
            lines_checked += expected.len();
        }
    }
    assert!(files >= 30, "only {files} vector files in the manifest");
    assert!(
        lines_checked >= 300_000,
        "only {lines_checked} lines checked"
    );
}

#[test]
fn utilization_reports_equal_crushtool_byte_for_byte() {
    let cases = [
        ("flat10.txt", "99999", "flat10-utilization-rule0.txt"),
        ("big400.txt", "99999", "big400-utilization-rule0.txt"),
        ("big400.txt", "13332", "big400-utilization-rule0-13k.txt"),
    ];
    for (map, max_x, report) in cases {
        let map_path = crush_data_dir().join("maps").join(map);
        let output = shoal(
            &[
                "crush",
                "test",
                "--map",
                map_path.to_str().unwrap(),
                "--rule",
                "0",
                "--num-rep",
                "3",
                "--min-x",
                "0",
                "--max-x",
                max_x,
                "--show-utilization",
                "--show-statistics",
            ],
            None,
        );
        assert_success(&output, report);
        let expected = std::fs::read(cli_data_dir().join(report)).unwrap();
        if output.stdout != expected {
            let got = stdout_of(&output);
            let want = String::from_utf8(expected).unwrap();
            let first_difference = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(got.lines().count().min(want.lines().count()));
            panic!(
                "{report}: output differs from crushtool's at line {}: got {:?}, want {:?}",
                first_difference + 1,
                got.lines().nth(first_difference),
                want.lines().nth(first_difference)
            );
        }
    }
}

/// Statistics and bad mappings for a file with holes (indep rule, a host out), checked
/// against what crushtool's own mappings imply.
#[test]
fn statistics_and_bad_mappings_agree_with_the_vectors() {
    let vectors: Vec<Value> = read_crush_data("vectors/ec8hosts.host3out.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["rule"] == 0 && v["num_rep"] == 8)
        .collect();
    assert_eq!(vectors.len(), 2000);
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    for v in &vectors {
        let osds: Vec<i64> = v["osds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_i64().unwrap())
            .collect();
        *sizes.entry(osds.len()).or_default() += 1;
        if osds.len() != 8 || osds.contains(&0x7fff_ffff) {
            bad.push(format!(
                "bad mapping rule 0 x {} num_rep 8 result [{}]",
                v["x"],
                osds.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
    }
    assert!(
        !bad.is_empty(),
        "the host3out file should have holes at num_rep 8"
    );
    let map_path = crush_data_dir().join("maps/ec8hosts.txt");
    let output = shoal(
        &[
            "crush",
            "test",
            "--map",
            map_path.to_str().unwrap(),
            "--rule",
            "0",
            "--num-rep",
            "8",
            "--min-x",
            "0",
            "--max-x",
            "1999",
            "--weight",
            "12",
            "0",
            "--weight",
            "13",
            "0",
            "-w",
            "14",
            "0",
            "--weight",
            "15",
            "0",
            "--show-statistics",
            "--show-bad-mappings",
        ],
        None,
    );
    assert_success(&output, "ec8hosts statistics");
    let stdout = stdout_of(&output);
    let mut lines = stdout.lines();
    let rule_name = "ec42_plain";
    assert_eq!(
        lines.next().unwrap(),
        format!("rule 0 ({rule_name}), x = 0..1999, numrep = 8..8")
    );
    let got_bad: Vec<&str> = lines.by_ref().take(bad.len()).collect();
    assert_eq!(got_bad, bad);
    let got_sizes: Vec<&str> = lines.collect();
    let want_sizes: Vec<String> = sizes
        .iter()
        .map(|(size, count)| {
            format!("rule 0 ({rule_name}) num_rep 8 result size == {size}:\t{count}/2000")
        })
        .collect();
    assert_eq!(got_sizes, want_sizes);
}

#[test]
fn pool_id_changes_the_input_like_crushtool() {
    // x 0..1999 of racks3.pool7 equal rule 0 at num_rep 3; without --pool-id they differ.
    let map_path = crush_data_dir().join("maps/racks3.txt");
    let args = |pool: Option<&'static str>| {
        let mut args = vec![
            "crush".to_string(),
            "test".into(),
            "--map".into(),
            map_path.to_str().unwrap().into(),
            "--rule".into(),
            "0".into(),
            "--num-rep".into(),
            "3".into(),
            "--min-x".into(),
            "0".into(),
            "--max-x".into(),
            "99".into(),
            "--show-mappings".into(),
        ];
        if let Some(pool) = pool {
            args.extend(["--pool-id".to_string(), pool.to_string()]);
        }
        args
    };
    let expected: Vec<String> = read_crush_data("vectors/racks3.pool7.jsonl")
        .lines()
        .take(100)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(
                (v["rule"].as_u64(), v["num_rep"].as_u64()),
                (Some(0), Some(3))
            );
            let osds: Vec<i64> = v["osds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_i64().unwrap())
                .collect();
            mapping_line(0, v["x"].as_u64().unwrap(), &osds)
        })
        .collect();
    let with_pool = shoal(&args(Some("7")), None);
    assert_success(&with_pool, "--pool-id 7");
    assert_eq!(stdout_of(&with_pool).lines().collect::<Vec<_>>(), expected);
    // -1 means "no pool", as in crushtool.
    let no_pool = shoal(&args(Some("-1")), None);
    let plain = shoal(&args(None), None);
    assert_eq!(no_pool.stdout, plain.stdout);
    assert_ne!(plain.stdout, with_pool.stdout);
}

#[test]
fn defaults_are_crushtools_inputs_0_to_1023_and_the_rules_sizes() {
    let map_path = crush_data_dir().join("maps/flat10.txt");
    let output = shoal(
        &[
            "crush",
            "test",
            "--map",
            map_path.to_str().unwrap(),
            "--rule",
            "2",
            "--show-statistics",
        ],
        None,
    );
    assert_success(&output, "defaults");
    let stdout = stdout_of(&output);
    let lines: Vec<&str> = stdout.lines().collect();
    // flat10's rules have min_size 1 and max_size 20; indep always fills every slot.
    assert_eq!(lines[0], "rule 2 (indep_osd), x = 0..1023, numrep = 1..20");
    assert_eq!(lines.len(), 21);
    for (i, line) in lines[1..].iter().enumerate() {
        let num_rep = i + 1;
        assert_eq!(
            *line,
            format!("rule 2 (indep_osd) num_rep {num_rep} result size == {num_rep}:\t1024/1024")
        );
    }
}
