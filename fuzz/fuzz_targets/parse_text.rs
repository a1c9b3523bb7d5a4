//! Fuzzes Ceph's CRUSH text format: `crush::text::parse` must never panic on any UTF-8
//! input, and whatever it accepts must print to text that parses again.
//!
//! The text is lossy the way crushtool's is: weights print with three decimals, so a
//! weight off that grid (`weight .34551`) reads back as a slightly different 16.16 value and
//! a bucket's `# weight` sum can move by 0.001 (crushtool -c/-d does exactly the same; the
//! golden maps were iterated to a fixed point for that reason). So the properties are:
//! `print(parse(print(m)))` differs from `print(m)` only on lines about weights, and one
//! such round reaches a fixed point. Every accepted map is also run through the mapper for
//! a few inputs, so maps only the parser would let through cannot make `do_rule` panic.
#![no_main]

use crush::{Mapper, Workspace};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(map) = crush::text::parse(text) else {
        return;
    };
    let printed = crush::text::print(&map);
    let reparsed = match crush::text::parse(&printed) {
        Ok(reparsed) => reparsed,
        Err(error) => panic!("the printed map does not parse: {error}\n{printed}"),
    };
    let reprinted = crush::text::print(&reparsed);
    let (before, after): (Vec<&str>, Vec<&str>) =
        (printed.lines().collect(), reprinted.lines().collect());
    assert_eq!(
        before.len(),
        after.len(),
        "a round trip changed the number of lines"
    );
    for (old, new) in before.iter().zip(&after) {
        assert!(
            old == new || (old.contains("weight") && new.contains("weight")),
            "a round trip changed a line that is not about weights: {old:?} -> {new:?}"
        );
    }
    let normalised = match crush::text::parse(&reprinted) {
        Ok(map) => crush::text::print(&map),
        Err(error) => panic!("the reprinted map does not parse: {error}\n{reprinted}"),
    };
    assert_eq!(
        reprinted, normalised,
        "printing does not reach a fixed point"
    );

    let mapper = Mapper::for_crushtool(&map);
    let weights = map.default_reweights();
    let mut workspace = Workspace::new();
    let mut out = Vec::new();
    for rule in map.rules.keys() {
        for x in 0..4 {
            for num_rep in [0, 1, 3, 7] {
                mapper.do_rule_into(*rule, x, num_rep, &weights, &mut workspace, &mut out);
                assert!(out.len() <= num_rep);
            }
        }
    }
});
