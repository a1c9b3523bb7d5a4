//! Placement against Ceph's own crushtool output: a pool's PG seeds go through
//! `hash32_2(ps, pool)` (hashpspool) exactly as `crushtool --pool-id` feeds them, and a
//! legacy (non-hashpspool) pool's seeds through `ps + pool`, which lets every vector file
//! without a pool id be replayed too. The CRUSH maps come from the crush crate's text parser.

mod common;

use clustermap::{ClusterMap, MapChange, PgId, PoolType};
use common::*;

/// Checks `pg_to_raw` (and that up == acting == raw when every OSD is up) for every vector
/// of `file` with `rule`/`num_rep`, using PG `ps = x - x_offset`.
fn check_pool(
    map: &ClusterMap,
    pool_name: &str,
    file: &str,
    rule: u32,
    num_rep: usize,
    x_offset: u32,
) {
    let pool = map.pool_by_name(pool_name).unwrap();
    assert_eq!(pool.crush_rule, rule);
    assert_eq!(pool.size as usize, num_rep);
    let mut mapper = map.pg_mapper();
    let mut checked = 0;
    for v in vectors(file)
        .into_iter()
        .filter(|v| v.rule == rule && v.num_rep == num_rep && v.x >= x_offset)
    {
        let pgid = PgId::new(pool.id, v.x - x_offset);
        let mapping = mapper.map(pgid).unwrap();
        assert_eq!(
            mapping.raw, v.osds,
            "{file}: rule {rule} num_rep {num_rep} x {} (pg {pgid})",
            v.x
        );
        assert_eq!(mapping.up, mapping.raw);
        assert_eq!(mapping.acting, mapping.up);
        checked += 1;
    }
    assert!(
        checked >= 1990,
        "{file}: only {checked} vectors for rule {rule}"
    );
}

#[test]
fn racks3_pool1_matches_crushtool_pool_id_1() {
    let map = cluster_from_crush(crush_map("racks3"));
    let map = map
        .apply(
            &[MapChange::CreatePool(pool_spec(
                "p1",
                PoolType::Replicated,
                3,
                2000,
                0,
                true,
            ))],
            5_000,
        )
        .unwrap();
    assert_eq!(map.pool_by_name("p1").unwrap().id, 1);
    check_pool(&map, "p1", "vectors/racks3.pool1.jsonl", 0, 3, 0);
}

#[test]
fn racks3_pool7_replicated_matches_crushtool_pool_id_7() {
    let map = skip_pool_ids_to(cluster_from_crush(crush_map("racks3")), 7);
    let map = map
        .apply(
            &[MapChange::CreatePool(pool_spec(
                "p7",
                PoolType::Replicated,
                3,
                2000,
                0,
                true,
            ))],
            5_000,
        )
        .unwrap();
    assert_eq!(map.pool_by_name("p7").unwrap().id, 7);
    check_pool(&map, "p7", "vectors/racks3.pool7.jsonl", 0, 3, 0);
}

#[test]
fn racks3_pool7_erasure_matches_crushtool_pool_id_7() {
    let map = skip_pool_ids_to(cluster_from_crush(crush_map("racks3")), 7);
    let map = map
        .apply(
            &[MapChange::CreatePool(pool_spec(
                "ec7",
                PoolType::Erasure,
                6,
                2000,
                3,
                true,
            ))],
            5_000,
        )
        .unwrap();
    assert_eq!(map.pool_by_name("ec7").unwrap().id, 7);
    check_pool(&map, "ec7", "vectors/racks3.pool7.jsonl", 3, 6, 0);
}

/// flat10 with crushtool's `--weight 3 0 --weight 5 0.5 --weight 7 0.25 --weight 8 0.9`:
/// the same weights made through the map (osd.3 out, the others reweighted).
#[test]
fn flat10_partial_reweights_through_the_map_match_crushtool() {
    let map = cluster_from_crush(crush_map("flat10"));
    let map = map
        .apply(
            &[
                MapChange::MarkOut { id: 3 },
                MapChange::Reweight {
                    id: 5,
                    weight: 32768,
                },
                MapChange::Reweight {
                    id: 7,
                    weight: 16384,
                },
                MapChange::Reweight {
                    id: 8,
                    weight: 58982,
                },
                // Legacy pools: pps = ps + pool id, so PG ps maps with x = ps + 1.
                MapChange::CreatePool(pool_spec("r3", PoolType::Replicated, 3, 2000, 0, false)),
                MapChange::CreatePool(pool_spec("r10", PoolType::Replicated, 10, 2000, 0, false)),
                MapChange::CreatePool(pool_spec("e4", PoolType::Erasure, 4, 2000, 2, false)),
            ],
            5_000,
        )
        .unwrap();
    let weights = map.crush_weights();
    assert_eq!(&weights[3..9], &[0, 0x10000, 32768, 0x10000, 16384, 58982]);
    // Pool ids 1, 2, 3: x = ps + id.
    check_pool(&map, "r3", "vectors/flat10.partial.jsonl", 0, 3, 1);
    check_pool(&map, "r10", "vectors/flat10.partial.jsonl", 0, 10, 2);
    check_pool(&map, "e4", "vectors/flat10.partial.jsonl", 2, 4, 3);
}

/// crushtool applies `choose_args 0`; Ceph's OSDMap applies the set keyed by the pool id,
/// else the set keyed -1. Re-keying the published set exercises both lookups.
#[test]
fn choose_args_are_taken_from_the_pool_id_then_minus_one() {
    for key in [1i64, -1] {
        let mut crush = crush_map("choose_args");
        let set = crush
            .choose_args
            .remove(&0)
            .expect("the map has choose_args 0");
        crush.choose_args.insert(key, set);
        let map = cluster_from_crush(crush)
            .apply(
                &[MapChange::CreatePool(pool_spec(
                    "ca",
                    PoolType::Replicated,
                    3,
                    12000,
                    0,
                    false,
                ))],
                5_000,
            )
            .unwrap();
        assert_eq!(map.pool_by_name("ca").unwrap().id, 1);
        check_pool(&map, "ca", "vectors/choose_args.jsonl", 0, 3, 1);
    }
    // Without the set the mapping differs somewhere: the check above can fail.
    let mut crush = crush_map("choose_args");
    crush.choose_args.clear();
    let map = cluster_from_crush(crush)
        .apply(
            &[MapChange::CreatePool(pool_spec(
                "ca",
                PoolType::Replicated,
                3,
                2000,
                0,
                false,
            ))],
            5_000,
        )
        .unwrap();
    let differs = vectors("vectors/choose_args.jsonl")
        .into_iter()
        .filter(|v| v.rule == 0 && v.num_rep == 3 && (1..2000).contains(&v.x))
        .any(|v| map.pg_to_raw(PgId::new(1, v.x - 1)).unwrap() != v.osds);
    assert!(differs);
}
