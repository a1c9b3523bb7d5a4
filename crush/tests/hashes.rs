//! Ceph's hashes and straw2's logarithm against values produced by Ceph's own library.

mod common;

use serde_json::Value;

#[test]
fn ln_matches_every_published_value() {
    let text = common::read_data("crush_ln.txt");
    let values: Vec<u64> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| u64::from_str_radix(l.trim(), 16).unwrap())
        .collect();
    assert_eq!(values.len(), 65536);
    let wrong: Vec<usize> = (0..65536)
        .filter(|&u| crush::ln::crush_ln(u as u32) != values[u])
        .collect();
    assert!(
        wrong.is_empty(),
        "crush_ln differs at {} inputs, first {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn crush_hashes_match_ceph() {
    let text = common::read_data("hash_vectors.jsonl");
    let mut checked = [0usize; 3];
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let args: Vec<u32> = v["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_u64().unwrap() as u32)
            .collect();
        let expected = v["hash"].as_u64().unwrap() as u32;
        let got = match v["fn"].as_str().unwrap() {
            "hash32_2" => {
                checked[0] += 1;
                crush::hash::hash32_2(args[0], args[1])
            }
            "hash32_3" => {
                checked[1] += 1;
                crush::hash::hash32_3(args[0], args[1], args[2])
            }
            "hash32_4" => {
                checked[2] += 1;
                crush::hash::hash32_4(args[0], args[1], args[2], args[3])
            }
            other => panic!("unknown hash {other}"),
        };
        assert_eq!(got, expected, "{line}");
    }
    assert!(
        checked.iter().all(|&n| n > 10),
        "too few vectors: {checked:?}"
    );
}
