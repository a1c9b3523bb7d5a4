//! Black-box tests of `shoal crush movement` against crushtool-derived measurements
//! (`crush-vectors/perf/big400-data-movement.txt`, made by comparing crushtool mappings over
//! x = 0..99999 before and after each change).

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

/// The figures of one line of big400-data-movement.txt: x changed, slots changed and
/// replicas moved, in percent with three decimals.
fn crushtool_figures(rule: u32, change: &str) -> [String; 3] {
    let text = std::fs::read_to_string(cli_data_dir().join("big400-data-movement.txt")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("rule {rule} ")) && l.contains(change))
        .unwrap_or_else(|| panic!("no line for rule {rule} {change}"));
    let figure = |label: &str| {
        let after = line.split(label).nth(1).unwrap();
        after.split('%').next().unwrap().trim().to_string()
    };
    [
        figure("x changed"),
        figure("slots changed"),
        figure("replicas moved"),
    ]
}

/// Our figures in the same form, from `--format json`.
fn our_figures(report: &Value) -> [String; 3] {
    let n = |key: &str| report[key].as_u64().unwrap() as f64;
    let slots = n("slots");
    [
        format!(
            "{:.3}",
            100.0 * (n("changed_inputs") + n("reordered_inputs")) / n("inputs")
        ),
        format!("{:.3}", 100.0 * n("changed_slots") / slots),
        format!("{:.3}", 100.0 * n("moved_replicas") / slots),
    ]
}

fn big400() -> PathBuf {
    crush_data_dir().join("maps/big400.txt")
}

fn movement_json(extra: &[&str]) -> Value {
    let mut args = vec!["crush", "movement", "--format", "json"];
    args.extend(extra);
    let output = shoal(&args, None);
    assert_success(&output, "movement");
    serde_json::from_slice(&output.stdout).expect("movement --format json prints JSON")
}

#[test]
fn marking_a_device_out_moves_what_crushtool_measured() {
    let map = big400();
    let report = movement_json(&[
        "--from",
        map.to_str().unwrap(),
        "--rule",
        "0",
        "--num-rep",
        "3",
        "--min-x",
        "0",
        "--max-x",
        "99999",
        "--weight",
        "17",
        "0",
    ]);
    assert_eq!(
        our_figures(&report),
        crushtool_figures(0, "mark osd.17 (14.553) out")
    );
    // Everything osd.17 held moves away, and nothing comes to it.
    let osd17 = report["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == 17)
        .expect("osd.17 is listed");
    assert_eq!(osd17["after"], 0);
    assert_eq!(osd17["before"], report["moved_replicas"]);
}

#[test]
fn removing_a_device_from_the_map_moves_what_crushtool_measured() {
    // The changed map comes from the builder (`crushtool --remove-item osd.17`'s
    // counterpart) through the text format, as a user would produce it.
    let mut map = crush::text::parse(&read_crush_data("maps/big400.txt")).unwrap();
    map.remove_device("osd.17").unwrap();
    let dir = std::env::temp_dir().join(format!("shoal-cli-movement-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let changed = dir.join("big400-without-osd17.txt");
    std::fs::write(&changed, crush::text::print(&map)).unwrap();
    let report = movement_json(&[
        "--from",
        big400().to_str().unwrap(),
        "--to",
        changed.to_str().unwrap(),
        "--rule",
        "0",
        "--num-rep",
        "3",
        "--max-x",
        "99999",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        our_figures(&report),
        crushtool_figures(0, "remove osd.17 (14.553) from the map")
    );
}

#[test]
fn the_text_report_lists_the_largest_changes_first() {
    let map = crush_data_dir().join("maps/flat10.txt");
    let output = shoal(
        &[
            "crush",
            "movement",
            "--from",
            map.to_str().unwrap(),
            "--rule",
            "0",
            "--num-rep",
            "3",
            "--weight",
            "3",
            "0",
            "--top",
            "4",
        ],
        None,
    );
    assert_success(&output, "movement text");
    let stdout = stdout_of(&output);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "rule 0 (replicated_osd) num_rep 3, x = 0..1023 (1024 inputs)"
    );
    assert!(
        lines[1].starts_with("inputs whose devices change"),
        "{stdout}"
    );
    let table_start = lines
        .iter()
        .position(|l| l.starts_with("device "))
        .unwrap_or_else(|| panic!("no table: {stdout}"));
    let rows = &lines[table_start + 1..];
    assert_eq!(rows.len(), 4, "{stdout}");
    assert!(
        rows[0].starts_with("osd.3 "),
        "osd.3 loses the most: {stdout}"
    );
    let after: u64 = rows[0].split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(after, 0);
}

#[test]
fn movement_rejects_bad_input_cleanly() {
    let map = crush_data_dir().join("maps/flat10.txt");
    let map = map.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--rule", "5", "--num-rep", "3"], "rule 5 does not exist"),
        (&["--rule", "0", "--num-rep", "-2"], "out of range"),
        (
            &[
                "--rule",
                "0",
                "--num-rep",
                "3",
                "--min-x",
                "9",
                "--max-x",
                "2",
            ],
            "no inputs",
        ),
        (
            &["--rule", "0", "--num-rep", "3", "--to", "/nonexistent.txt"],
            "/nonexistent.txt",
        ),
    ];
    for (extra, message) in cases {
        let mut args = vec!["crush", "movement", "--from", map];
        args.extend(extra);
        let output = shoal(&args, None);
        let stderr = assert_failure(&output, 1, message);
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
    }
}
