//! Bad input to `shoal crush ...`: each case either behaves as crushtool does or fails with
//! a clear message (exit code 1, nothing on stdout), and never panics.

mod common;

use common::*;

/// flat10's text with line `line` (1-based) replaced by `replacement` (None: removed).
fn flat10_with(line: usize, replacement: Option<&str>) -> String {
    let text = read_crush_data("maps/flat10.txt");
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(line <= lines.len());
    match replacement {
        Some(new) => lines[line - 1] = new,
        None => {
            lines.remove(line - 1);
        }
    }
    lines.join("\n") + "\n"
}

/// The line of flat10.txt that holds `needle` (1-based), so the tests say what they change.
fn flat10_line(needle: &str) -> usize {
    read_crush_data("maps/flat10.txt")
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("flat10.txt has no `{needle}`"))
        + 1
}

fn test_stdin_map(text: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["crush", "test", "--map", "-"];
    args.extend(extra);
    shoal(&args, Some(text))
}

fn flat10_path() -> String {
    crush_data_dir()
        .join("maps/flat10.txt")
        .to_str()
        .unwrap()
        .to_string()
}

fn no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
}

#[test]
fn a_map_that_does_not_parse_names_the_line() {
    let cases = [
        (3, "tunable no_such_tunable 1", "unknown tunable"),
        (5, "device zero osd.0", "line 5"),
        (30, "}}}", "line 30"),
        (67, "\tid seven", "line 67"),
    ];
    for (line, text, expected) in cases {
        let output = test_stdin_map(
            &flat10_with(line, Some(text)),
            &["--rule", "0", "--num-rep", "3", "--show-mappings"],
        );
        let stderr = assert_failure(&output, 1, text);
        no_panic(&stderr);
        assert!(
            stderr.starts_with("shoal: error: cannot compile crush map"),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("line {line}")), "{text}: {stderr}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
    }
}

#[test]
fn a_rule_that_takes_a_missing_bucket_is_rejected_with_its_line() {
    let line = flat10_line("step take default");
    let output = test_stdin_map(
        &flat10_with(line, Some("\tstep take nosuch")),
        &["--rule", "0", "--num-rep", "3", "--show-mappings"],
    );
    let stderr = assert_failure(&output, 1, "take nosuch");
    assert!(stderr.contains(&format!("line {line}")), "{stderr}");
    assert!(stderr.contains("nosuch"), "{stderr}");
}

#[test]
fn a_step_with_an_unknown_type_is_rejected_with_its_line() {
    let line = flat10_line("step chooseleaf firstn 0 type osd");
    let output = test_stdin_map(
        &flat10_with(line, Some("\tstep chooseleaf firstn 0 type shelf")),
        &["--rule", "0", "--num-rep", "3", "--show-mappings"],
    );
    let stderr = assert_failure(&output, 1, "type shelf");
    assert!(stderr.contains(&format!("line {line}")), "{stderr}");
    assert!(stderr.contains("shelf"), "{stderr}");
}

#[test]
fn steps_that_make_no_sense_map_to_nothing_as_in_crushtool() {
    // Without `take` the choose step has nothing to work on: crushtool prints empty
    // mappings, and so do we.
    let take = flat10_line("step take default");
    let output = test_stdin_map(
        &flat10_with(take, None),
        &[
            "--rule",
            "0",
            "--num-rep",
            "3",
            "--min-x",
            "0",
            "--max-x",
            "4",
            "--show-mappings",
        ],
    );
    assert_success(&output, "rule without take");
    let expected: String = (0..5).map(|x| format!("CRUSH rule 0 x {x} []\n")).collect();
    assert_eq!(stdout_of(&output), expected);

    // Taking a device and emitting it gives that device, whatever num_rep asks.
    let original = read_crush_data("maps/flat10.txt");
    let text = original.replacen(
        "\tstep take default\n\tstep chooseleaf firstn 0 type osd\n",
        "\tstep take osd.4\n",
        1,
    );
    assert_ne!(text, original, "flat10's first rule changed shape");
    let output = test_stdin_map(
        &text,
        &[
            "--rule",
            "0",
            "--num-rep",
            "3",
            "--x",
            "7",
            "--show-mappings",
            "--show-bad-mappings",
        ],
    );
    assert_success(&output, "take a device");
    assert_eq!(
        stdout_of(&output),
        "CRUSH rule 0 x 7 [4]\nbad mapping rule 0 x 7 num_rep 3 result [4]\n"
    );
}

#[test]
fn a_missing_rule_is_an_error_that_lists_the_rules() {
    let output = shoal(
        &[
            "crush",
            "test",
            "--map",
            &flat10_path(),
            "--rule",
            "7",
            "--show-mappings",
        ],
        None,
    );
    let stderr = assert_failure(&output, 1, "--rule 7");
    assert!(stderr.contains("rule 7 does not exist"), "{stderr}");
    assert!(
        stderr.contains("0 (replicated_osd), 1 (choose_osd), 2 (indep_osd)"),
        "{stderr}"
    );

    let empty = test_stdin_map("", &["--rule", "0", "--show-mappings"]);
    let stderr = assert_failure(&empty, 1, "empty map");
    assert!(stderr.contains("has no rules"), "{stderr}");

    let bench = shoal(
        &[
            "crush",
            "bench",
            "--map",
            &flat10_path(),
            "--rule",
            "3",
            "--num-rep",
            "3",
        ],
        None,
    );
    let stderr = assert_failure(&bench, 1, "bench --rule 3");
    assert!(stderr.contains("rule 3 does not exist"), "{stderr}");
}

#[test]
fn num_rep_zero_maps_to_nothing_as_in_crushtool() {
    let output = shoal(
        &[
            "crush",
            "test",
            "--map",
            &flat10_path(),
            "--rule",
            "0",
            "--num-rep",
            "0",
            "--min-x",
            "0",
            "--max-x",
            "2",
            "--show-mappings",
            "--show-statistics",
        ],
        None,
    );
    assert_success(&output, "--num-rep 0");
    assert_eq!(
        stdout_of(&output),
        "rule 0 (replicated_osd), x = 0..2, numrep = 0..0\n\
         CRUSH rule 0 x 0 []\n\
         CRUSH rule 0 x 1 []\n\
         CRUSH rule 0 x 2 []\n\
         rule 0 (replicated_osd) num_rep 0 result size == 0:\t3/3\n"
    );
    assert!(stderr_of(&output).contains("asks for no results"));
}

#[test]
fn num_rep_above_the_rule_maximum_is_mapped_with_a_note_or_refused_when_absurd() {
    // flat10's rules allow up to 20; crushtool maps 25 anyway (all 10 devices).
    let output = shoal(
        &[
            "crush",
            "test",
            "--map",
            &flat10_path(),
            "--rule",
            "0",
            "--num-rep",
            "25",
            "--x",
            "3",
            "--show-mappings",
        ],
        None,
    );
    assert_success(&output, "--num-rep 25");
    let stdout = stdout_of(&output);
    let osds = stdout
        .trim_end()
        .strip_prefix("CRUSH rule 0 x 3 [")
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{stdout}"));
    let mut osds: Vec<i32> = osds.split(',').map(|o| o.parse().unwrap()).collect();
    osds.sort();
    assert_eq!(osds, (0..10).collect::<Vec<_>>());
    assert!(stderr_of(&output).contains("above rule 0 (replicated_osd)'s max_size 20"));

    for absurd in ["5000", "2147483647"] {
        let output = shoal(
            &[
                "crush",
                "test",
                "--map",
                &flat10_path(),
                "--rule",
                "0",
                "--num-rep",
                absurd,
                "--show-mappings",
            ],
            None,
        );
        let stderr = assert_failure(&output, 1, absurd);
        assert!(stderr.contains("out of range"), "{stderr}");
    }
}

#[test]
fn bad_options_fail_cleanly() {
    let missing = shoal(
        &[
            "crush",
            "test",
            "--map",
            "/nonexistent/map.txt",
            "--show-mappings",
        ],
        None,
    );
    let stderr = assert_failure(&missing, 1, "missing file");
    assert!(stderr.contains("/nonexistent/map.txt"), "{stderr}");

    let not_utf8 = shoal(&["crush", "test", "--map", "-"], Some("\u{0}"));
    no_panic(&stderr_of(&not_utf8));

    let bad_device = shoal(
        &[
            "crush",
            "test",
            "--map",
            &flat10_path(),
            "--weight",
            "abc",
            "1",
            "--show-mappings",
        ],
        None,
    );
    let stderr = assert_failure(&bad_device, 1, "--weight abc");
    assert!(stderr.contains("abc"), "{stderr}");

    // A usage error is clap's exit code 2.
    let usage = shoal(
        &["crush", "test", "--map", &flat10_path(), "--weight", "3"],
        None,
    );
    assert_eq!(usage.status.code(), Some(2));
    let usage = shoal(
        &[
            "crush",
            "test",
            "--map",
            &flat10_path(),
            "--num-rep",
            "three",
        ],
        None,
    );
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn weights_are_read_like_crushtool_reads_them() {
    // atof("garbage") is 0: osd.3 is out. 40000 overflows int in C and becomes 0 too.
    for weight in ["garbage", "40000", "-1"] {
        let output = shoal(
            &[
                "crush",
                "test",
                "--map",
                &flat10_path(),
                "--rule",
                "0",
                "--num-rep",
                "3",
                "--min-x",
                "0",
                "--max-x",
                "499",
                "--weight",
                "3",
                weight,
                "--show-utilization",
            ],
            None,
        );
        assert_success(&output, weight);
        let stdout = stdout_of(&output);
        assert!(
            !stdout.contains("device 3:"),
            "--weight 3 {weight}: {stdout}"
        );
        assert!(stdout.contains("device 4:"), "{stdout}");
    }
    // A weight for a device the map does not have is ignored, as crushtool ignores it.
    let plain = shoal(
        &[
            "crush",
            "test",
            "--map",
            &flat10_path(),
            "--rule",
            "0",
            "--num-rep",
            "3",
            "--show-mappings",
        ],
        None,
    );
    let extra = shoal(
        &[
            "crush",
            "test",
            "--map",
            &flat10_path(),
            "--rule",
            "0",
            "--num-rep",
            "3",
            "--weight",
            "99",
            "0",
            "--weight",
            "-5",
            "0",
            "--show-mappings",
        ],
        None,
    );
    assert_success(&extra, "--weight 99 0");
    assert_eq!(plain.stdout, extra.stdout);
}
