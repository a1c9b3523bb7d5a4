//! The mapper against every crushtool vector, with maps loaded from `crushtool --dump`
//! (exact binary weights, shadow trees included): checks `do_rule` independently of the text
//! parser.

mod common;

#[test]
fn every_vector_matches_with_dumped_maps() {
    let (failures, checked) = common::check_all(common::map_from_dump);
    assert!(checked >= 358_000, "only {checked} mappings checked");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
