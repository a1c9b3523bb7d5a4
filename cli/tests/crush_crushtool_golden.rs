//! `shoal crush test` against outputs captured from Ceph's own crushtool (16.2.15) for the
//! option combinations the golden vectors do not cover: every rule and size of a map,
//! `rule N dne`, 8-bit rule sizes, `--show-utilization-all` (and its stderr line),
//! `--show-bad-mappings` with holes, `num_rep 0`, more results than devices, `set_*` steps
//! in the "expected" column, odd `--weight` strings, `--pool-id` with `choose_args`,
//! crushtool's default x range. The cases and how they were made are in
//! `tests/data/crushtool/` (`cases.txt`, `regenerate.sh`).

mod common;

use common::*;

#[test]
fn every_captured_crushtool_output_is_reproduced_byte_for_byte() {
    let dir = cli_data_dir().join("crushtool");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, map, options] = fields[..] else {
            panic!("bad line in cases.txt: {line}");
        };
        let map_path = match map.strip_prefix("./") {
            Some(local) => dir.join(local),
            None => crush_data_dir().join(map),
        };
        let mut args = vec![
            "crush".to_string(),
            "test".to_string(),
            "--map".to_string(),
            map_path.to_str().unwrap().to_string(),
        ];
        args.extend(options.split_whitespace().map(str::to_string));
        let output = shoal(&args, None);
        assert_success(&output, name);
        let expected = std::fs::read(dir.join(format!("{name}.stdout"))).unwrap();
        if output.stdout != expected {
            let got = stdout_of(&output);
            let want = String::from_utf8(expected).unwrap();
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            failures.push(format!(
                "{name}: stdout differs at line {}: got {:?}, crushtool {:?}",
                line + 1,
                got.lines().nth(line),
                want.lines().nth(line)
            ));
        }
        // crushtool's stderr, where it has any, must match too; where it has none we may
        // add notes of our own.
        if let Ok(expected_err) = std::fs::read_to_string(dir.join(format!("{name}.stderr"))) {
            let got_err = stderr_of(&output);
            if got_err != expected_err {
                failures.push(format!(
                    "{name}: stderr {got_err:?}, crushtool {expected_err:?}"
                ));
            }
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} cases in cases.txt");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
