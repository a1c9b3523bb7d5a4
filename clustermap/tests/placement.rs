//! Object → PG → OSD placement (DESIGN.md §2): object hashes against values printed by real
//! Ceph clusters, stable_mod for any pg_num, namespaces, down and out OSDs, pg_temp and
//! primary_temp, and the `ceph osd map` output format.

mod common;

use clustermap::{ClusterMap, MapChange, ObjectHash, PgId, Pool, PoolFlags, PoolSpec, PoolType};
use common::*;
use crush::ITEM_NONE;
use proptest::prelude::*;

/// Object name → `ceph_str_hash_rjenkins` → PG, as printed by `ceph osd map` on real
/// clusters (found with the project's search tool in public write-ups; each line quoted):
///
/// * `osdmap e103 pool 'volumes' (3) object 'foo' -> pg 3.7fc1f406 (3.6) -> up ([26,7,0],
///   p26) ...` (a Korean Ceph/OpenStack slide deck);
/// * `osdmap e12 pool 'k8s' (1) object 'test-object-1' -> pg 1.74dc35e2 (1.62) -> ...` (a
///   Chinese Kubernetes-on-Ceph blog; the old docs' `0.d1743484` for the same name predates
///   the rjenkins default);
/// * `osdmap e10 pool 'test' (10) object 'test' -> pg 40e8aab5 (35)`, `pool 'mypool' (1)
///   object 'issue' -> pg 1.651f88da (1.1a)`, `pool 'mypool' (2) object 'Closer.mp3' -> pg
///   2.21df0aa8 (2.8)`, `pool 'demo_cephfs_data' (3) object '10000000001.00000000' -> pg
///   3.c9e0747 (3.47)`, `pool 'EC_rbd_pool' (79) object 'object.1' -> pg 79.f560f2ec
///   (79.4)`, `pool 'mypool' (1) object 'ceph-file' -> pg 1.7753490d (1.d)`, `pool
///   'default.rgw.buckets.data' (8) object 'd1e8ec50-d0ea-4b5f-a12d-04903859e2a3.14815.1_AAA'
///   -> pg 8.4c785a7f (8.1f)`.
///
/// The `(pool.ps)` part depends on the pool's (unprinted) pg_num; `pg_num` below is a value
/// consistent with each line.
const CEPH_OSD_MAP_SAMPLES: &[(&str, u32, u32, u32)] = &[
    // (object, hash, pg_num, ps)
    ("foo", 0x7fc1_f406, 64, 0x6),
    ("test-object-1", 0x74dc_35e2, 128, 0x62),
    ("test", 0x40e8_aab5, 64, 0x35),
    ("issue", 0x651f_88da, 32, 0x1a),
    ("Closer.mp3", 0x21df_0aa8, 32, 0x8),
    ("10000000001.00000000", 0x0c9e_0747, 128, 0x47),
    ("object.1", 0xf560_f2ec, 8, 0x4),
    ("ceph-file", 0x7753_490d, 16, 0xd),
    (
        "d1e8ec50-d0ea-4b5f-a12d-04903859e2a3.14815.1_AAA",
        0x4c78_5a7f,
        32,
        0x1f,
    ),
];

fn racks3_with_pool(spec: PoolSpec) -> ClusterMap {
    cluster_from_crush(crush_map("racks3"))
        .apply(&[MapChange::CreatePool(spec)], 5_000)
        .unwrap()
}

#[test]
fn object_names_hash_as_on_real_ceph_clusters() {
    for &(object, hash, pg_num, ps) in CEPH_OSD_MAP_SAMPLES {
        let map = racks3_with_pool(PoolSpec::replicated("data", 3, pg_num));
        let pool = map.pool_by_name("data").unwrap();
        assert_eq!(pool.hash_key(object, ""), hash, "{object}");
        assert_eq!(
            map.object_to_pg(pool.id, object, "").unwrap(),
            PgId::new(pool.id, ps),
            "{object}"
        );
        let om = map.osd_map("data", object, "").unwrap();
        assert_eq!(om.hash, hash);
        assert_eq!(om.raw_pgid.to_string(), format!("{}.{hash:x}", pool.id));
        assert_eq!(om.mapping.pgid, PgId::new(pool.id, ps));
    }
}

#[test]
fn osd_map_prints_like_ceph() {
    let mut map = cluster_from_crush(crush_map("racks3"));
    map = skip_pool_ids_to(map, 3);
    map = map
        .apply(
            &[MapChange::CreatePool(PoolSpec::replicated(
                "volumes", 3, 64,
            ))],
            5_000,
        )
        .unwrap();
    let om = map.osd_map("volumes", "foo", "").unwrap();
    let up = &om.mapping.up;
    assert_eq!(up.len(), 3);
    let list = format!("[{},{},{}]", up[0], up[1], up[2]);
    assert_eq!(
        om.to_string(),
        format!(
            "osdmap e{} pool 'volumes' (3) object 'foo' -> pg 3.7fc1f406 (3.6) -> up ({list}, p{}) acting ({list}, p{})",
            map.epoch(),
            up[0],
            up[0]
        )
    );
    // The same PG through the PG API.
    assert_eq!(map.pg_to_up_acting(PgId::new(3, 6)).unwrap(), om.mapping);
    // A raw seed is folded like Ceph's raw_pg_to_pg.
    assert_eq!(
        map.pg_to_up_acting(PgId::new(3, 0x7fc1_f406)).unwrap(),
        om.mapping
    );

    // Namespaced objects print as ns/name.
    let om = map.osd_map("volumes", "foo", "tenant").unwrap();
    assert!(om.to_string().contains("object 'tenant/foo' -> pg 3."));
}

#[test]
fn namespaces_hash_namespace_unit_separator_name() {
    let map = racks3_with_pool(PoolSpec::replicated("data", 3, 64));
    let pool = map.pool_by_name("data").unwrap();
    let expected = crush::hash::str_hash_rjenkins(b"tenant\x1ffoo");
    assert_eq!(pool.hash_key("foo", "tenant"), expected);
    assert_ne!(pool.hash_key("foo", "tenant"), pool.hash_key("foo", ""));
    // An empty namespace is the default namespace, not "\x1ffoo".
    assert_eq!(pool.hash_key("foo", ""), 0x7fc1_f406);
}

#[test]
fn linux_object_hash_is_selectable_per_pool() {
    let mut spec = PoolSpec::replicated("legacy", 3, 64);
    spec.object_hash = ObjectHash::Linux;
    let map = racks3_with_pool(spec);
    let pool = map.pool_by_name("legacy").unwrap();
    assert_eq!(
        pool.hash_key("ab", ""),
        clustermap::types::str_hash_linux(b"ab")
    );
    assert_ne!(pool.hash_key("foo", ""), 0x7fc1_f406);
}

fn bare_pool(pg_num: u32) -> Pool {
    Pool {
        id: 1,
        name: "p".to_string(),
        pool_type: PoolType::Replicated,
        size: 3,
        min_size: 2,
        pg_num,
        pgp_num: pg_num,
        crush_rule: 0,
        object_hash: ObjectHash::Rjenkins,
        flags: PoolFlags::default(),
        created_at: 1,
        last_change: 1,
    }
}

proptest! {
    /// stable_mod against its arithmetic meaning: take the hash modulo the next power of
    /// two; if that PG does not exist yet, modulo half of it.
    #[test]
    fn pg_of_a_hash_is_ceph_stable_mod(hash in any::<u32>(), pg_num in 1u32..70_000) {
        let pool = bare_pool(pg_num);
        let pow = pg_num.next_power_of_two() as u64;
        let modulo = hash as u64 % pow;
        let expected = if modulo < pg_num as u64 { modulo } else { hash as u64 % (pow / 2).max(1) };
        prop_assert_eq!(pool.raw_seed_to_ps(hash) as u64, expected);
        prop_assert!(pool.raw_seed_to_ps(hash) < pg_num);
    }

    /// Growing pg_num by one splits exactly one PG: objects either stay or move from the
    /// parent PG to the new one.
    #[test]
    fn growing_pg_num_by_one_moves_objects_only_to_the_new_pg(hash in any::<u32>(), pg_num in 1u32..70_000) {
        let before = bare_pool(pg_num).raw_seed_to_ps(hash);
        let after = bare_pool(pg_num + 1).raw_seed_to_ps(hash);
        if before != after {
            prop_assert_eq!(after, pg_num);
            let half = (pg_num + 1).next_power_of_two() / 2;
            prop_assert_eq!(before, pg_num - half);
        }
    }
}

#[test]
fn non_power_of_two_pg_num_folds_high_seeds() {
    let map = racks3_with_pool(PoolSpec::replicated("p", 3, 12));
    let pool = map.pool_by_name("p").unwrap();
    // 0xf560f2ec & 15 = 12 >= 12, so it folds to & 7 = 4 (Ceph printed 79.4 for it).
    assert_eq!(pool.raw_seed_to_ps(0xf560_f2ec), 4);
    assert_eq!(pool.raw_seed_to_ps(0x651f_88da), 10); // & 15 = 10 < 12 stays
    let map = racks3_with_pool(PoolSpec::replicated("p", 3, 100));
    let pool = map.pool_by_name("p").unwrap();
    assert_eq!(pool.raw_seed_to_ps(0x4c78_5a7f), 0x3f); // & 127 = 127 >= 100 -> & 63
    assert_eq!(pool.raw_seed_to_ps(0x0c9e_0747), 0x47);
}

#[test]
fn pgp_num_below_pg_num_makes_pgs_share_placements() {
    let mut spec = PoolSpec::replicated("p", 3, 16);
    spec.pgp_num = Some(8);
    let map = racks3_with_pool(spec);
    let pool = map.pool_by_name("p").unwrap();
    for ps in 0..8 {
        let a = map.pg_to_raw(PgId::new(pool.id, ps)).unwrap();
        let b = map.pg_to_raw(PgId::new(pool.id, ps + 8)).unwrap();
        assert_eq!(a, b, "ps {ps} and {}", ps + 8);
    }
}

/// The first PG of `pool` whose up set contains `osd` at a position other than 0, and that
/// position.
fn pg_with_osd_not_first(map: &ClusterMap, pool: i64, osd: i32) -> (PgId, usize) {
    let pg_num = map.pool(pool).unwrap().pg_num;
    (0..pg_num)
        .map(|ps| PgId::new(pool, ps))
        .find_map(|pg| {
            let raw = map.pg_to_raw(pg).unwrap();
            raw.iter()
                .position(|o| *o == osd)
                .filter(|i| *i > 0)
                .map(|i| (pg, i))
        })
        .expect("some PG holds the OSD")
}

#[test]
fn down_osds_leave_replicated_up_sets_and_become_holes_in_erasure_ones() {
    let map = cluster_from_crush(crush_map("racks3"))
        .apply(
            &[
                MapChange::CreatePool(PoolSpec::replicated("rep", 3, 256)),
                MapChange::CreatePool(pool_spec("ec", PoolType::Erasure, 6, 256, 3, true)),
            ],
            5_000,
        )
        .unwrap();
    let (rep_pg, _) = pg_with_osd_not_first(&map, 1, 4);
    let (ec_pg, ec_pos) = pg_with_osd_not_first(&map, 2, 4);
    let rep_before = map.pg_to_up_acting(rep_pg).unwrap();
    let ec_before = map.pg_to_up_acting(ec_pg).unwrap();

    let down = map.apply(&[MapChange::MarkDown { id: 4 }], 6_000).unwrap();
    let rep = down.pg_to_up_acting(rep_pg).unwrap();
    assert_eq!(
        rep.raw, rep_before.raw,
        "down (but in) OSDs stay in CRUSH's result"
    );
    let expected: Vec<i32> = rep_before.raw.iter().copied().filter(|o| *o != 4).collect();
    assert_eq!(rep.up, expected);
    assert_eq!(rep.acting, expected);
    assert_eq!(rep.up_primary, expected[0]);
    assert_eq!(rep.acting_primary, expected[0]);

    let ec = down.pg_to_up_acting(ec_pg).unwrap();
    let mut expected = ec_before.raw.clone();
    expected[ec_pos] = ITEM_NONE;
    assert_eq!(ec.up, expected);
    assert_eq!(ec.acting, expected);
    assert_eq!(ec.up.len(), 6);
    assert_eq!(ec.up_primary, ec_before.raw[0]);

    // The primary going down promotes the next OSD (replicated) or the next shard holder.
    let primary = rep_before.raw[0];
    let down = map
        .apply(&[MapChange::MarkDown { id: primary }], 6_000)
        .unwrap();
    let rep = down.pg_to_up_acting(rep_pg).unwrap();
    assert_eq!(rep.up_primary, rep_before.raw[1]);
}

#[test]
fn out_osds_get_no_data_and_removed_osds_vanish_from_raw() {
    let map = racks3_with_pool(PoolSpec::replicated("rep", 3, 512));
    let holds = |map: &ClusterMap, osd: i32| {
        (0..512).any(|ps| map.pg_to_raw(PgId::new(1, ps)).unwrap().contains(&osd))
    };
    assert!(holds(&map, 7));
    let out = map
        .apply(
            &[MapChange::MarkDown { id: 7 }, MapChange::MarkOut { id: 7 }],
            6_000,
        )
        .unwrap();
    assert!(!holds(&out, 7));
    assert_eq!(out.crush_weights()[7], 0);
    for ps in 0..512 {
        assert_eq!(out.pg_to_raw(PgId::new(1, ps)).unwrap().len(), 3);
    }
    let removed = out.apply(&[MapChange::RemoveOsd { id: 7 }], 7_000).unwrap();
    assert!(!removed.exists(7));
    assert!(!removed.crush().devices.contains_key(&7));
    assert!(removed.crush().parent_of(7).is_none());
    assert!(!holds(&removed, 7));
}

#[test]
fn pg_temp_and_primary_temp_override_acting() {
    let map = racks3_with_pool(PoolSpec::replicated("rep", 3, 64));
    let pg = PgId::new(1, 5);
    let up = map.pg_to_up_acting(pg).unwrap();
    let temp: Vec<i32> = (0..36).filter(|o| !up.up.contains(o)).take(3).collect();

    let with_temp = map
        .apply(
            &[MapChange::SetPgTemp {
                pgid: pg,
                osds: temp.clone(),
            }],
            6_000,
        )
        .unwrap();
    let m = with_temp.pg_to_up_acting(pg).unwrap();
    assert_eq!(m.up, up.up, "pg_temp does not change up");
    assert_eq!(m.up_primary, up.up_primary);
    assert_eq!(m.acting, temp);
    assert_eq!(m.acting_primary, temp[0]);
    // Other PGs are untouched.
    assert_eq!(
        with_temp.pg_to_up_acting(PgId::new(1, 6)).unwrap(),
        map.pg_to_up_acting(PgId::new(1, 6)).unwrap()
    );

    let with_primary = with_temp
        .apply(
            &[MapChange::SetPrimaryTemp {
                pgid: pg,
                osd: Some(temp[2]),
            }],
            7_000,
        )
        .unwrap();
    let m = with_primary.pg_to_up_acting(pg).unwrap();
    assert_eq!(m.acting, temp);
    assert_eq!(m.acting_primary, temp[2]);

    // A down member leaves the temp acting set; all down falls back to up.
    let one_down = with_temp
        .apply(&[MapChange::MarkDown { id: temp[0] }], 8_000)
        .unwrap();
    let m = one_down.pg_to_up_acting(pg).unwrap();
    assert_eq!(m.acting, temp[1..].to_vec());
    assert_eq!(m.acting_primary, temp[1]);
    let all_down = with_temp
        .apply(
            &temp
                .iter()
                .map(|&id| MapChange::MarkDown { id })
                .collect::<Vec<_>>(),
            8_000,
        )
        .unwrap();
    let m = all_down.pg_to_up_acting(pg).unwrap();
    assert_eq!(m.acting, up.up);
    assert_eq!(m.acting_primary, up.up_primary);

    // primary_temp alone keeps acting = up but changes the primary.
    let primary_only = map
        .apply(
            &[MapChange::SetPrimaryTemp {
                pgid: pg,
                osd: Some(up.up[1]),
            }],
            6_000,
        )
        .unwrap();
    let m = primary_only.pg_to_up_acting(pg).unwrap();
    assert_eq!(m.acting, up.up);
    assert_eq!(m.acting_primary, up.up[1]);

    // Removing the override restores CRUSH's answer.
    let cleared = with_temp
        .apply(
            &[MapChange::SetPgTemp {
                pgid: pg,
                osds: vec![],
            }],
            9_000,
        )
        .unwrap();
    assert_eq!(cleared.pg_to_up_acting(pg).unwrap(), up);
}

#[test]
fn erasure_pg_temp_keeps_holes_for_down_members() {
    let map = cluster_from_crush(crush_map("racks3"))
        .apply(
            &[MapChange::CreatePool(pool_spec(
                "ec",
                PoolType::Erasure,
                6,
                64,
                3,
                true,
            ))],
            5_000,
        )
        .unwrap();
    let pg = PgId::new(1, 3);
    let temp = vec![0, 3, ITEM_NONE, 9, 12, 15];
    let map = map
        .apply(
            &[
                MapChange::SetPgTemp {
                    pgid: pg,
                    osds: temp.clone(),
                },
                MapChange::MarkDown { id: 0 },
            ],
            6_000,
        )
        .unwrap();
    let m = map.pg_to_up_acting(pg).unwrap();
    assert_eq!(m.acting, vec![ITEM_NONE, 3, ITEM_NONE, 9, 12, 15]);
    assert_eq!(m.acting_primary, 3);
    assert!(map
        .osd_map("ec", "x", "")
        .unwrap()
        .to_string()
        .contains("acting (["));
}

#[test]
fn osd_list_prints_holes_as_none() {
    assert_eq!(
        clustermap::placement::format_osd_list(&[1, ITEM_NONE, 3]),
        "[1,NONE,3]"
    );
    assert_eq!(clustermap::placement::format_osd_list(&[]), "[]");
}

#[test]
fn unknown_pools_are_errors() {
    let map = racks3_with_pool(PoolSpec::replicated("rep", 3, 64));
    assert!(map.object_to_pg(9, "x", "").is_err());
    assert!(map.pg_to_raw(PgId::new(9, 0)).is_err());
    let err = map.osd_map("nope", "x", "").unwrap_err();
    assert_eq!(err.to_string(), "pool `nope` does not exist");
}

#[test]
fn a_map_compiles_its_crush_mapper_once_and_a_new_epoch_recompiles() {
    let map = racks3_with_pool(PoolSpec::replicated("rep", 3, 64));
    let before = map.pg_to_raw(PgId::new(1, 0)).unwrap();
    let victim = before[0];
    // A clone is the same epoch and may share the cache; the next epoch must not.
    let clone = map.clone();
    assert_eq!(clone.pg_to_raw(PgId::new(1, 0)).unwrap(), before);
    let next = map
        .apply(&[MapChange::MarkOut { id: victim }], 6_000)
        .unwrap();
    assert!(!next.pg_to_raw(PgId::new(1, 0)).unwrap().contains(&victim));
    assert_eq!(map.pg_to_raw(PgId::new(1, 0)).unwrap(), before);
}
