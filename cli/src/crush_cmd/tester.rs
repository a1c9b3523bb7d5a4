//! `shoal crush test`: what `crushtool -i MAP --test` prints, byte for byte.
//!
//! The loop follows Ceph 16's `CrushTester::test()`: for each rule in range, for each
//! `num_rep`, map every `x` (or `crush_hash32_2(x, pool)` with `--pool-id`) with the map's
//! `choose_args 0`, then print the requested reports. Every line goes to standard output,
//! as crushtool's tester writes to `cout`. Quirks kept on purpose, because they shape the
//! output:
//!
//! * `--show-utilization` (and `-all`) switch statistics on, so the device lines are the
//!   `stored : N  expected : F` form;
//! * "expected" assumes every in-device gets a share proportional to its *reweight* (not its
//!   CRUSH weight) of `min(num_rep, maximum affected by the rule) * inputs`, computed in
//!   `float` and printed with `%g`; the "maximum affected" count has its own oddities (see
//!   [`maximum_affected_by_rule`]);
//! * a rule without `--num-rep` runs every size from its `min_size` to its `max_size` (the
//!   8-bit values the compiled map keeps), and a missing rule inside the range prints
//!   `rule R dne` when statistics are on;
//! * `--weight` values go through C's `atof`, `float` and a clamp ([`super::cfmt`]); weights
//!   for ids at or beyond the map's device count are ignored, as crushtool ignores them.

use std::collections::BTreeMap;
use std::io::{self, Write};

use crush::{hash::hash32_2, CrushMap, Mapper, Rule, Step, Workspace, ITEM_NONE};

use super::cfmt::format_g;

/// Everything that selects what the tester runs and prints, already resolved from the
/// command line. Negative values mean "not given", as in crushtool.
#[derive(Clone, Debug)]
pub struct TestSettings {
    /// First rule id to run (`--rule` sets both ends); negative: all rules.
    pub min_rule: i32,
    /// Last rule id to run.
    pub max_rule: i32,
    /// Smallest `num_rep`; negative: each rule's `min_size..=max_size`.
    pub min_rep: i32,
    /// Largest `num_rep`.
    pub max_rep: i32,
    /// First input; negative (either end): 0..=1023.
    pub min_x: i32,
    /// Last input.
    pub max_x: i32,
    /// `--pool-id`: the mapper input becomes `crush_hash32_2(x, pool)`.
    pub pool_id: Option<u32>,
    /// `--weight` overrides of the reweight vector, 16.16, by device id.
    pub device_weights: BTreeMap<i32, u32>,
    /// `--show-mappings`.
    pub show_mappings: bool,
    /// `--show-statistics`.
    pub show_statistics: bool,
    /// `--show-utilization`.
    pub show_utilization: bool,
    /// `--show-utilization-all`.
    pub show_utilization_all: bool,
    /// `--show-bad-mappings`.
    pub show_bad_mappings: bool,
}

impl Default for TestSettings {
    fn default() -> Self {
        TestSettings {
            min_rule: -1,
            max_rule: -1,
            min_rep: -1,
            max_rep: -1,
            min_x: -1,
            max_x: -1,
            pool_id: None,
            device_weights: BTreeMap::new(),
            show_mappings: false,
            show_statistics: false,
            show_utilization: false,
            show_utilization_all: false,
            show_bad_mappings: false,
        }
    }
}

/// The reweight vector crushtool tests with: `--weight` overrides, else 0x10000 for every
/// device some bucket lists, else 0; one entry per device id below the map's device count.
pub fn reweight_vector(map: &CrushMap, overrides: &BTreeMap<i32, u32>) -> Vec<u32> {
    let mut weights = map.default_reweights();
    weights.resize(map.max_devices().max(0) as usize, 0);
    for (&device, &weight) in overrides {
        if let Some(slot) = usize::try_from(device)
            .ok()
            .and_then(|d| weights.get_mut(d))
        {
            *slot = weight;
        }
    }
    weights
}

/// One more than the highest rule id (crushtool's `max_rules`).
pub fn max_rules(map: &CrushMap) -> i64 {
    map.rules
        .keys()
        .next_back()
        .map_or(0, |id| i64::from(*id) + 1)
}

/// Runs the test and writes crushtool's report to `out`, and the one line crushtool writes
/// to its standard error (the reweight vector, with `--show-utilization-all`) to
/// `diagnostics`.
pub fn run(
    map: &CrushMap,
    settings: &TestSettings,
    out: &mut impl Write,
    diagnostics: &mut impl Write,
) -> io::Result<()> {
    let mut settings = settings.clone();
    // crushtool's main() does this before calling the tester.
    if settings.show_utilization || settings.show_utilization_all {
        settings.show_statistics = true;
    }
    let s = &settings;
    let max_rules = max_rules(map);
    let (min_rule, max_rule) = if s.min_rule < 0 || s.max_rule < 0 {
        (0, max_rules - 1)
    } else {
        (i64::from(s.min_rule), i64::from(s.max_rule))
    };
    let (min_x, max_x) = if s.min_x < 0 || s.max_x < 0 {
        (0, 1023)
    } else {
        (s.min_x, s.max_x)
    };

    let weights = reweight_vector(map, &s.device_weights);
    if s.show_utilization_all {
        let hex: Vec<String> = weights.iter().map(|w| format!("{w:x}")).collect();
        writeln!(diagnostics, "devices weights (hex): [{}]", hex.join(","))?;
    }

    let mapper = Mapper::for_crushtool(map);
    let mut workspace = Workspace::new();
    let mut result = Vec::new();
    let mut rule_id = min_rule;
    while rule_id < max_rules && rule_id <= max_rule {
        let r = rule_id;
        rule_id += 1;
        let Some(rule) = u32::try_from(r).ok().and_then(|id| map.rules.get(&id)) else {
            if s.show_statistics {
                writeln!(out, "rule {r} dne")?;
            }
            continue;
        };
        let (min_rep, max_rep) = if s.min_rep < 0 || s.max_rep < 0 {
            // The compiled map keeps the sizes in 8 bits (`crush_rule_mask`).
            (
                i32::from(rule.min_size as u8),
                i32::from(rule.max_size as u8),
            )
        } else {
            (s.min_rep, s.max_rep)
        };
        if s.show_statistics {
            writeln!(
                out,
                "rule {r} ({}), x = {min_x}..{max_x}, numrep = {min_rep}..{max_rep}",
                rule.name
            )?;
        }
        for num_rep in min_rep..=max_rep {
            let device_count = weights.len();
            let mut stored = vec![0i32; device_count];
            let mut result_sizes: BTreeMap<usize, i32> = BTreeMap::new();
            let num_objects = max_x.wrapping_sub(min_x).wrapping_add(1);
            // C sums the unsigned weights into an int.
            let total_weight = weights.iter().fold(0i32, |t, &w| t.wrapping_add(w as i32));
            if total_weight == 0 {
                continue;
            }
            let expected_objects =
                (num_rep.min(maximum_affected_by_rule(map, rule))).wrapping_mul(num_objects) as f32;
            let expected: Vec<f32> = weights
                .iter()
                .map(|&w| (w as f32 / total_weight as f32) * expected_objects)
                .collect();

            let result_max = usize::try_from(num_rep).unwrap_or(0);
            for x in min_x..=max_x {
                let input = match s.pool_id {
                    Some(pool) => hash32_2(x as u32, pool),
                    None => x as u32,
                };
                mapper.do_rule_into(
                    rule.id,
                    input,
                    result_max,
                    &weights,
                    &mut workspace,
                    &mut result,
                );
                if s.show_mappings {
                    write!(out, "CRUSH rule {r} x {x} ")?;
                    write_list(out, &result)?;
                    writeln!(out)?;
                }
                let mut has_none = false;
                for &item in &result {
                    if item == ITEM_NONE {
                        has_none = true;
                    } else if let Some(count) =
                        usize::try_from(item).ok().and_then(|i| stored.get_mut(i))
                    {
                        *count += 1;
                    }
                }
                *result_sizes.entry(result.len()).or_insert(0) += 1;
                if s.show_bad_mappings && (result.len() != result_max || has_none) {
                    write!(out, "bad mapping rule {r} x {x} num_rep {num_rep} result ")?;
                    write_list(out, &result)?;
                    writeln!(out)?;
                }
            }

            if s.show_statistics {
                for (size, count) in &result_sizes {
                    writeln!(
                        out,
                        "rule {r} ({}) num_rep {num_rep} result size == {size}:\t{count}/{num_objects}",
                        rule.name
                    )?;
                }
                for (device, (&count, &expect)) in stored.iter().zip(&expected).enumerate() {
                    let show = if s.show_utilization {
                        expect > 0.0 && count > 0
                    } else {
                        s.show_utilization_all
                    };
                    if show {
                        writeln!(
                            out,
                            "  device {device}:\t\t stored : {count}\t expected : {}",
                            format_g(f64::from(expect))
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Writes `[a,b,c]` as Ceph's `operator<<(vector)` does.
fn write_list(out: &mut impl Write, items: &[i32]) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write!(out, "{item}")?;
    }
    out.write_all(b"]")
}

/// The opcode and the two arguments a step has in the compiled map.
fn step_code(step: &Step) -> (u32, i32, i32) {
    match *step {
        Step::Noop => (0, 0, 0),
        Step::Take(item) => (1, item, 0),
        Step::ChooseFirstN { n, type_id } => (2, n, type_id),
        Step::ChooseIndep { n, type_id } => (3, n, type_id),
        Step::Emit => (4, 0, 0),
        Step::ChooseLeafFirstN { n, type_id } => (6, n, type_id),
        Step::ChooseLeafIndep { n, type_id } => (7, n, type_id),
        Step::SetChooseTries(n) => (8, n, 0),
        Step::SetChooseLeafTries(n) => (9, n, 0),
        Step::SetChooseLocalTries(n) => (10, n, 0),
        Step::SetChooseLocalFallbackTries(n) => (11, n, 0),
        Step::SetChooseLeafVaryR(n) => (12, n, 0),
        Step::SetChooseLeafStable(n) => (13, n, 0),
    }
}

/// crushtool's `max_buckets`: the size of the compiled bucket array, which the C builder
/// grows by doubling from 8 until the lowest bucket id fits.
fn compiled_max_buckets(map: &CrushMap) -> i64 {
    let Some(needed) = map.buckets.keys().next().map(|&id| -1 - i64::from(id) + 1) else {
        return 0;
    };
    let mut size = 8i64;
    while size < needed {
        size *= 2;
    }
    size
}

/// `CrushTester::get_maximum_affected_by_rule`: an upper bound on how many results a rule
/// can give, used only for the "expected" column. Kept with its quirks: every opcode from 2
/// up except `emit` counts as a choose step (so `set_*` steps add "type 0" with their
/// value); a type listed by several steps is counted once per listing; items are looked up
/// the way `CrushWrapper::get_bucket_type` does, so devices never count (their lookup fails
/// with `-ENOENT`, i.e. type -2), which leaves the device type at 0 and out of the minimum.
pub fn maximum_affected_by_rule(map: &CrushMap, rule: &Rule) -> i32 {
    const ENOENT_TYPE: i32 = -2;
    let mut affected_types = Vec::new();
    let mut replications_by_type: BTreeMap<i32, i32> = BTreeMap::new();
    for step in &rule.steps {
        let (op, arg1, arg2) = step_code(step);
        if op >= 2 && op != 4 {
            affected_types.push(arg2);
            replications_by_type.insert(arg2, arg1);
        }
    }
    // Ceph walks its name map: every named device and bucket.
    let item_types: Vec<i32> = map
        .devices
        .keys()
        .map(|_| ENOENT_TYPE)
        .chain(map.buckets.values().map(|b| b.type_id))
        .collect();
    let mut max_of_type: BTreeMap<i32, i64> = BTreeMap::new();
    for &t in &affected_types {
        let matching = item_types.iter().filter(|&&it| it == t).count() as i64;
        *max_of_type.entry(t).or_insert(0) += matching;
    }
    for &t in &affected_types {
        let replication = i64::from(replications_by_type.get(&t).copied().unwrap_or(0));
        let slot = max_of_type.entry(t).or_insert(0);
        if replication > 0 && replication < *slot {
            *slot = replication;
        }
    }
    let mut max_affected = compiled_max_buckets(map).max(i64::from(map.max_devices()));
    for t in &affected_types {
        let count = max_of_type.get(t).copied().unwrap_or(0);
        if count > 0 && count < max_affected {
            max_affected = count;
        }
    }
    max_affected.min(i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crush::{Bucket, BucketAlg, BucketItem, Device, RuleType, Tunables};

    /// One straw2 root of `hosts` hosts with `per_host` devices each.
    fn two_level(hosts: i32, per_host: i32) -> CrushMap {
        let mut map = CrushMap {
            tunables: Tunables::jewel(),
            ..CrushMap::default()
        };
        map.types.insert(0, "osd".into());
        map.types.insert(1, "host".into());
        map.types.insert(10, "root".into());
        let mut root_items = Vec::new();
        for h in 0..hosts {
            let id = -2 - h;
            let mut items = Vec::new();
            for d in 0..per_host {
                let osd = h * per_host + d;
                map.devices.insert(
                    osd,
                    Device {
                        id: osd,
                        name: format!("osd.{osd}"),
                        class: None,
                    },
                );
                items.push(BucketItem {
                    id: osd,
                    weight: 0x10000,
                });
            }
            map.buckets.insert(
                id,
                Bucket {
                    id,
                    name: format!("host{h}"),
                    type_id: 1,
                    alg: BucketAlg::Straw2,
                    hash: 0,
                    items,
                    shadow: None,
                },
            );
            root_items.push(BucketItem {
                id,
                weight: 0x10000 * per_host as u32,
            });
        }
        map.buckets.insert(
            -1,
            Bucket {
                id: -1,
                name: "default".into(),
                type_id: 10,
                alg: BucketAlg::Straw2,
                hash: 0,
                items: root_items,
                shadow: None,
            },
        );
        map
    }

    fn rule(id: u32, steps: Vec<Step>) -> Rule {
        Rule {
            id,
            name: format!("r{id}"),
            rule_type: RuleType::Replicated,
            min_size: 1,
            max_size: 3,
            steps,
        }
    }

    #[test]
    fn maximum_affected_counts_buckets_of_the_failure_domain() {
        let map = two_level(5, 2);
        let by_host = rule(
            0,
            vec![
                Step::Take(-1),
                Step::ChooseLeafFirstN { n: 0, type_id: 1 },
                Step::Emit,
            ],
        );
        assert_eq!(maximum_affected_by_rule(&map, &by_host), 5);
        // A positive count below the number of hosts caps it.
        let two_hosts = rule(
            1,
            vec![
                Step::Take(-1),
                Step::ChooseLeafFirstN { n: 2, type_id: 1 },
                Step::Emit,
            ],
        );
        assert_eq!(maximum_affected_by_rule(&map, &two_hosts), 2);
        // Devices never count: an osd-level rule falls back to max(max_buckets, devices),
        // where max_buckets is 8 (6 buckets fit the first allocation).
        let by_osd = rule(
            2,
            vec![
                Step::Take(-1),
                Step::ChooseLeafFirstN { n: 0, type_id: 0 },
                Step::Emit,
            ],
        );
        assert_eq!(maximum_affected_by_rule(&map, &by_osd), 10);
        let small = two_level(2, 2);
        assert_eq!(maximum_affected_by_rule(&small, &by_osd), 8);
    }

    #[test]
    fn compiled_bucket_array_doubles_from_eight() {
        let mut map = two_level(1, 1);
        assert_eq!(compiled_max_buckets(&map), 8);
        let mut far = map.buckets[&-2].clone();
        far.id = -9;
        far.name = "far".into();
        map.buckets.insert(-9, far.clone());
        assert_eq!(compiled_max_buckets(&map), 16);
        far.id = -33;
        far.name = "farther".into();
        map.buckets.insert(-33, far);
        assert_eq!(compiled_max_buckets(&map), 64);
        assert_eq!(compiled_max_buckets(&CrushMap::default()), 0);
    }

    #[test]
    fn statistics_and_utilization_follow_crushtool_layout() {
        let mut map = two_level(3, 1);
        map.rules.insert(
            0,
            rule(
                0,
                vec![
                    Step::Take(-1),
                    Step::ChooseLeafFirstN { n: 0, type_id: 1 },
                    Step::Emit,
                ],
            ),
        );
        let settings = TestSettings {
            min_rule: 0,
            max_rule: 0,
            min_rep: 2,
            max_rep: 2,
            min_x: 0,
            max_x: 9,
            show_utilization: true,
            ..TestSettings::default()
        };
        let mut out = Vec::new();
        run(&map, &settings, &mut out, &mut io::sink()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "rule 0 (r0), x = 0..9, numrep = 2..2");
        assert_eq!(lines[1], "rule 0 (r0) num_rep 2 result size == 2:\t10/10");
        // 3 equal devices share 2 * 10 placements: 6.66667 each.
        let stored: i32 = lines[2..]
            .iter()
            .map(|l| {
                assert!(l.ends_with("\t expected : 6.66667"), "{l}");
                l.split("stored : ")
                    .nth(1)
                    .unwrap()
                    .split('\t')
                    .next()
                    .unwrap()
                    .parse::<i32>()
                    .unwrap()
            })
            .sum();
        assert_eq!(stored, 20);
    }

    #[test]
    fn missing_rules_in_range_say_dne_and_bad_mappings_are_listed() {
        let mut map = two_level(2, 1);
        map.rules.insert(
            1,
            rule(
                1,
                vec![
                    Step::Take(-1),
                    Step::ChooseLeafFirstN { n: 0, type_id: 1 },
                    Step::Emit,
                ],
            ),
        );
        let settings = TestSettings {
            min_rep: 3,
            max_rep: 3,
            min_x: 0,
            max_x: 0,
            show_statistics: true,
            show_bad_mappings: true,
            show_mappings: true,
            ..TestSettings::default()
        };
        let mut out = Vec::new();
        run(&map, &settings, &mut out, &mut io::sink()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "rule 0 dne");
        assert_eq!(lines[1], "rule 1 (r1), x = 0..0, numrep = 3..3");
        assert!(lines[2].starts_with("CRUSH rule 1 x 0 ["), "{}", lines[2]);
        assert!(lines[3].starts_with("bad mapping rule 1 x 0 num_rep 3 result ["));
        assert_eq!(lines[4], "rule 1 (r1) num_rep 3 result size == 2:\t1/1");
    }

    #[test]
    fn utilization_all_lists_every_device_and_the_weights_on_stderr() {
        let mut map = two_level(2, 2);
        map.rules.insert(
            0,
            rule(
                0,
                vec![
                    Step::Take(-1),
                    Step::ChooseLeafFirstN { n: 0, type_id: 1 },
                    Step::Emit,
                ],
            ),
        );
        let settings = TestSettings {
            min_rule: 0,
            max_rule: 0,
            min_rep: 1,
            max_rep: 1,
            min_x: 0,
            max_x: 0,
            device_weights: BTreeMap::from([(1, 0), (2, 0x8000)]),
            show_utilization_all: true,
            ..TestSettings::default()
        };
        let (mut out, mut diagnostics) = (Vec::new(), Vec::new());
        run(&map, &settings, &mut out, &mut diagnostics).unwrap();
        assert_eq!(
            String::from_utf8(diagnostics).unwrap(),
            "devices weights (hex): [10000,0,8000,10000]\n"
        );
        let text = String::from_utf8(out).unwrap();
        // One input, one result: three devices stored 0 and are listed all the same.
        let devices: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  device "))
            .collect();
        assert_eq!(devices.len(), 4, "{text}");
        assert!(devices[1].starts_with("  device 1:\t\t stored : 0\t expected : 0"));
    }

    #[test]
    fn reweights_beyond_the_device_count_are_ignored() {
        let map = two_level(2, 2);
        let overrides = BTreeMap::from([(1, 0x8000), (4, 0), (-1, 0)]);
        assert_eq!(
            reweight_vector(&map, &overrides),
            vec![0x10000, 0x8000, 0x10000, 0x10000]
        );
    }
}
