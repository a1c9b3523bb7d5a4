//! Writes a [`CrushMap`] in `crushtool -d` layout, byte for byte.
//!
//! The layout follows Ceph 16's decompiler: tunables only where they differ from argonaut,
//! devices and types in id order, buckets depth-first (children before parents) starting from
//! id -1 downwards, shadow buckets omitted (their ids are `id N class C` lines of their
//! originals), rules in id order, then `choose_args`.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::model::{Bucket, BucketAlg, ChooseArgs, CrushMap, Rule, RuleType, Step, Tunables};

/// The whole text.
pub(crate) fn print(map: &CrushMap) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("# begin crush map\n");
    print_tunables(&mut out, &map.tunables);

    out.push_str("\n# devices\n");
    for device in map.devices.values() {
        let _ = write!(out, "device {} {}", device.id, device.name);
        if let Some(class) = &device.class {
            let _ = write!(out, " class {class}");
        }
        out.push('\n');
    }

    out.push_str("\n# types\n");
    let osd_name_free = !map.types.values().any(|name| name == "osd");
    if !map.types.is_empty() && !map.types.contains_key(&0) && osd_name_free {
        // crushtool always names type 0 (unless that would clash with another type).
        out.push_str("type 0 osd\n");
    }
    for (id, name) in map.types.range(0..) {
        let _ = writeln!(out, "type {id} {name}");
    }

    out.push_str("\n# buckets\n");
    for id in bucket_print_order(map) {
        if let Some(bucket) = map.buckets.get(&id) {
            print_bucket(&mut out, map, bucket);
        }
    }

    out.push_str("\n# rules\n");
    for rule in map.rules.values() {
        print_rule(&mut out, map, rule);
    }

    if !map.choose_args.is_empty() {
        out.push_str("\n# choose_args\n");
        for (key, set) in &map.choose_args {
            print_choose_args(&mut out, *key, set);
        }
    }
    out.push_str("\n# end crush map\n");
    out
}

/// `%.3f` of `(float)weight / 65536.0f`, as crushtool's `print_fixedpoint`, computed
/// exactly: the `f32` holds an integer `m`, so the value is `m / 65536`, rounded to three
/// decimals with ties to even like glibc's `printf`.
///
/// crushtool passes the weight through a C `int`, so weights of 32768.0 and more come out
/// negative and its own output no longer compiles; here they are printed as the unsigned
/// numbers they are (identical output below 2^31).
pub(crate) fn fixed_point(weight: u32) -> String {
    // u32 -> f32 rounds to nearest, ties to even, like C's conversion; the float holds an
    // integer exactly.
    let as_float = weight as f32;
    let units = as_float as u64;
    let scaled = u128::from(units) * 1000;
    let mut thousandths = scaled / 65536;
    let remainder = scaled % 65536;
    if remainder > 32768 || (remainder == 32768 && thousandths % 2 == 1) {
        thousandths += 1;
    }
    format!("{}.{:03}", thousandths / 1000, thousandths % 1000)
}

fn print_tunables(out: &mut String, tunables: &Tunables) {
    let legacy = Tunables::argonaut();
    let fields = [
        (
            "choose_local_tries",
            tunables.choose_local_tries,
            legacy.choose_local_tries,
        ),
        (
            "choose_local_fallback_tries",
            tunables.choose_local_fallback_tries,
            legacy.choose_local_fallback_tries,
        ),
        (
            "choose_total_tries",
            tunables.choose_total_tries,
            legacy.choose_total_tries,
        ),
        (
            "chooseleaf_descend_once",
            tunables.chooseleaf_descend_once,
            legacy.chooseleaf_descend_once,
        ),
        (
            "chooseleaf_vary_r",
            tunables.chooseleaf_vary_r,
            legacy.chooseleaf_vary_r,
        ),
        (
            "chooseleaf_stable",
            tunables.chooseleaf_stable,
            legacy.chooseleaf_stable,
        ),
        (
            "straw_calc_version",
            tunables.straw_calc_version,
            legacy.straw_calc_version,
        ),
        (
            "allowed_bucket_algs",
            tunables.allowed_bucket_algs,
            legacy.allowed_bucket_algs,
        ),
    ];
    for (name, value, default) in fields {
        if value != default {
            let _ = writeln!(out, "tunable {name} {value}");
        }
    }
}

/// Ordinary bucket ids in crushtool's order: for each id from -1 downwards, its not yet
/// printed children depth-first, then itself. A bucket reachable twice is printed once; a
/// cycle (impossible in a valid map) is cut rather than followed.
fn bucket_print_order(map: &CrushMap) -> Vec<i32> {
    // A bucket enters `seen` when its walk starts, so neither a second parent nor a cycle
    // pushes it again.
    let mut seen: BTreeSet<i32> = BTreeSet::new();
    let mut order = Vec::new();
    let printable = |id: i32| map.buckets.get(&id).is_some_and(|b| b.shadow.is_none());
    for start in map.buckets.range(..0).rev().map(|(id, _)| *id) {
        if !printable(start) || !seen.insert(start) {
            continue;
        }
        let mut stack: Vec<(i32, usize)> = vec![(start, 0)];
        while let Some((id, next)) = stack.last_mut() {
            let items = map.buckets.get(id).map_or(&[][..], |b| &b.items[..]);
            if let Some(item) = items.get(*next) {
                *next += 1;
                let child = item.id;
                if child < 0 && printable(child) && seen.insert(child) {
                    stack.push((child, 0));
                }
            } else {
                order.push(*id);
                stack.pop();
            }
        }
    }
    order
}

fn item_name(map: &CrushMap, id: i32) -> String {
    match map.item_name(id) {
        Some(name) => name.to_string(),
        None if id >= 0 => format!("device{id}"),
        None => format!("bucket{}", -1i64 - i64::from(id)),
    }
}

fn type_name(map: &CrushMap, type_id: i32) -> String {
    match map.types.get(&type_id) {
        Some(name) => name.clone(),
        None if type_id == 0 => "device".to_string(),
        None => format!("type{type_id}"),
    }
}

fn print_bucket(out: &mut String, map: &CrushMap, bucket: &Bucket) {
    let _ = writeln!(out, "{} {} {{", type_name(map, bucket.type_id), bucket.name);
    let _ = writeln!(out, "\tid {}\t\t# do not change unnecessarily", bucket.id);
    for ((_, class_id), shadow_id) in map
        .class_buckets
        .range((bucket.id, i32::MIN)..=(bucket.id, i32::MAX))
    {
        // Only copies that exist are printed, as crushtool prints its class_bucket table.
        let exists = map
            .buckets
            .get(shadow_id)
            .is_some_and(|b| b.shadow.is_some());
        if let (true, Some(class)) = (exists, map.classes.get(class_id)) {
            let _ = writeln!(
                out,
                "\tid {shadow_id} class {class}\t\t# do not change unnecessarily"
            );
        }
    }
    let _ = writeln!(out, "\t# weight {}", fixed_point(bucket.weight()));
    let _ = write!(out, "\talg {}", bucket.alg.name());
    let with_pos = match bucket.alg {
        BucketAlg::Uniform => {
            let _ = write!(
                out,
                "\t# do not change bucket size ({}) unnecessarily",
                bucket.items.len()
            );
            true
        }
        BucketAlg::List => {
            out.push_str("\t# add new items at the end; do not change order unnecessarily");
            false
        }
        BucketAlg::Tree => {
            out.push_str("\t# do not change pos for existing items unnecessarily");
            true
        }
        BucketAlg::Straw | BucketAlg::Straw2 => false,
    };
    out.push('\n');
    let hash_name = if bucket.hash == 0 {
        "rjenkins1"
    } else {
        "unknown"
    };
    let _ = writeln!(out, "\thash {}\t# {hash_name}", bucket.hash);
    for (pos, item) in bucket.items.iter().enumerate() {
        let _ = write!(
            out,
            "\titem {} weight {}",
            item_name(map, item.id),
            fixed_point(item.weight)
        );
        if with_pos {
            let _ = write!(out, " pos {pos}");
        }
        out.push('\n');
    }
    out.push_str("}\n");
}

fn print_rule(out: &mut String, map: &CrushMap, rule: &Rule) {
    let _ = writeln!(out, "rule {} {{", rule.name);
    let _ = writeln!(out, "\tid {}", rule.id);
    match rule.rule_type {
        RuleType::Replicated => out.push_str("\ttype replicated\n"),
        RuleType::Erasure => out.push_str("\ttype erasure\n"),
        RuleType::Other(code) => {
            let _ = writeln!(out, "\ttype {code}");
        }
    }
    let _ = writeln!(out, "\tmin_size {}", rule.min_size);
    let _ = writeln!(out, "\tmax_size {}", rule.max_size);
    for step in &rule.steps {
        match *step {
            Step::Noop => out.push_str("\tstep noop\n"),
            Step::Take(id) => {
                let shadow = map.buckets.get(&id).and_then(|b| b.shadow.as_ref());
                match shadow {
                    Some(of) => {
                        let _ = writeln!(
                            out,
                            "\tstep take {} class {}",
                            item_name(map, of.original),
                            of.class
                        );
                    }
                    None => {
                        let _ = writeln!(out, "\tstep take {}", item_name(map, id));
                    }
                }
            }
            Step::Emit => out.push_str("\tstep emit\n"),
            Step::SetChooseTries(n) => {
                let _ = writeln!(out, "\tstep set_choose_tries {n}");
            }
            Step::SetChooseLocalTries(n) => {
                let _ = writeln!(out, "\tstep set_choose_local_tries {n}");
            }
            Step::SetChooseLocalFallbackTries(n) => {
                let _ = writeln!(out, "\tstep set_choose_local_fallback_tries {n}");
            }
            Step::SetChooseLeafTries(n) => {
                let _ = writeln!(out, "\tstep set_chooseleaf_tries {n}");
            }
            Step::SetChooseLeafVaryR(n) => {
                let _ = writeln!(out, "\tstep set_chooseleaf_vary_r {n}");
            }
            Step::SetChooseLeafStable(n) => {
                let _ = writeln!(out, "\tstep set_chooseleaf_stable {n}");
            }
            Step::ChooseFirstN { n, type_id } => {
                let _ = writeln!(
                    out,
                    "\tstep choose firstn {n} type {}",
                    type_name(map, type_id)
                );
            }
            Step::ChooseIndep { n, type_id } => {
                let _ = writeln!(
                    out,
                    "\tstep choose indep {n} type {}",
                    type_name(map, type_id)
                );
            }
            Step::ChooseLeafFirstN { n, type_id } => {
                let _ = writeln!(
                    out,
                    "\tstep chooseleaf firstn {n} type {}",
                    type_name(map, type_id)
                );
            }
            Step::ChooseLeafIndep { n, type_id } => {
                let _ = writeln!(
                    out,
                    "\tstep chooseleaf indep {n} type {}",
                    type_name(map, type_id)
                );
            }
        }
    }
    out.push_str("}\n");
}

fn print_choose_args(out: &mut String, key: i64, set: &ChooseArgs) {
    let _ = writeln!(out, "choose_args {key} {{");
    // crushtool walks its per-bucket array by index, i.e. bucket ids -1, -2, ...
    for (bucket_id, arg) in set.iter().rev() {
        let ids = arg.ids.as_deref().unwrap_or(&[]);
        if arg.weight_set.is_empty() && ids.is_empty() {
            continue;
        }
        out.push_str("  {\n");
        let _ = writeln!(out, "    bucket_id {bucket_id}");
        if !arg.weight_set.is_empty() {
            out.push_str("    weight_set [\n");
            for row in &arg.weight_set {
                out.push_str("      [ ");
                for weight in row {
                    out.push_str(&fixed_point(*weight));
                    out.push(' ');
                }
                out.push_str("]\n");
            }
            out.push_str("    ]\n");
        }
        if !ids.is_empty() {
            out.push_str("    ids [ ");
            for id in ids {
                let _ = write!(out, "{id} ");
            }
            out.push_str("]\n");
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::fixed_point;

    #[test]
    fn fixed_point_matches_printf() {
        assert_eq!(fixed_point(0), "0.000");
        assert_eq!(fixed_point(0x10000), "1.000");
        assert_eq!(fixed_point(238551), "3.640");
        assert_eq!(fixed_point(6553), "0.100");
        // 0.0625 is exact: a tie at three decimals rounds to even, as glibc does.
        assert_eq!(fixed_point(4096), "0.062");
        // 0.1875 -> tie -> 0.188 (8 is even).
        assert_eq!(fixed_point(12288), "0.188");
        // Above 2^24 the C float loses the low bits before dividing.
        assert_eq!(fixed_point(16777217), "256.000");
        // Beyond i32::MAX crushtool would print a negative number; we print the value.
        assert_eq!(fixed_point(0x8000_0000), "32768.000");
        assert_eq!(fixed_point(u32::MAX), "65536.000");
    }
}
