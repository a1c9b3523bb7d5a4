//! The crate end to end against every crushtool vector: maps parsed from Ceph's text format
//! (the published `crushtool -d` output), mapped with `Mapper::for_crushtool`.

mod common;

#[test]
fn every_vector_matches_with_parsed_text_maps() {
    let (failures, checked) = common::check_all(|name| {
        crush::text::parse(&common::read_data(&format!("maps/{name}.txt")))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    });
    assert!(checked >= 358_000, "only {checked} mappings checked");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
