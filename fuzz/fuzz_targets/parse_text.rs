//! Fuzzes Ceph's CRUSH text format: `crush::text::parse` must never panic on any UTF-8
//! input, and whatever it accepts must print to text that parses again and prints the same
//! (`print(parse(print(m))) == print(m)`). Every accepted map is also run through the
//! mapper for a few inputs, so maps only the parser would let through cannot make
//! `do_rule` panic either.
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
    assert_eq!(printed, reprinted, "printing is not stable");

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
