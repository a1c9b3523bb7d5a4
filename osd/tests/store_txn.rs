//! Transactions, versions, the PG log and PG management on the memory backend: compound
//! ops apply whole or not at all, request ids deduplicate, the log stays bounded, PGs are
//! created and removed, and concurrent committers never corrupt the store.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use clustermap::PgId;
use common::*;
use osd::store::{Eversion, LogOp, ObjectId, ReqId, StoreConfig, StoreError, Transaction, WriteOp};

/// Everything observable about one object: metadata, data, xattrs and omap.
type Snapshot = (
    osd::store::ObjectInfo,
    Vec<u8>,
    Vec<(String, Vec<u8>)>,
    Vec<(Vec<u8>, Vec<u8>)>,
);

/// A transaction builder that must fail, and the check of its error.
type FailingCase = (Box<dyn Fn(&mut Transaction)>, fn(&StoreError) -> bool);

/// Everything observable about one object, to compare before and after a failed commit.
fn snapshot(store: &osd::store::ObjectStore, object: &ObjectId) -> Option<Snapshot> {
    let info = store.stat(PG, object).ok()?;
    Some((
        info,
        store.read(PG, object, 0, 0).unwrap(),
        store.xattrs(PG, object).unwrap().into_iter().collect(),
        store
            .omap_list(PG, object, None, usize::MAX)
            .unwrap()
            .entries,
    ))
}

#[test]
fn a_failing_guard_leaves_nothing_behind() {
    let (store, engine) = memory_store();
    let object = obj("guarded");
    let v1 = commit(&store, &object, |t| {
        t.write_full(pattern(100_000, 1))
            .set_xattr("a", b"1".to_vec())
            .omap_set([(b"k".to_vec(), b"v".to_vec())]);
    })
    .unwrap();
    let before = snapshot(&store, &object);
    let info_before = store.pg_info(PG).unwrap();
    let keys_before: Vec<_> = engine
        .scan(&pg_keyspace(PG), kv::KeyRange::all())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();

    let failing: Vec<FailingCase> = vec![
        (
            Box::new(|t| {
                t.write(0, b"changed".to_vec())
                    .set_xattr("b", b"2".to_vec())
                    .omap_clear()
                    .assert_version(Eversion::new(1, 999));
            }),
            |e| matches!(e, StoreError::VersionMismatch { .. }),
        ),
        (
            Box::new(|t| {
                t.truncate(5)
                    .omap_set([(b"x".to_vec(), b"y".to_vec())])
                    .create(true);
            }),
            |e| matches!(e, StoreError::ObjectExists { .. }),
        ),
        (
            Box::new(|t| {
                t.remove().append(b"new".to_vec()).rm_xattr("a");
            }),
            |e| matches!(e, StoreError::XattrNotFound { .. }),
        ),
        (
            Box::new(|t| {
                t.remove().assert_exists();
            }),
            |e| matches!(e, StoreError::ObjectNotFound { .. }),
        ),
        (
            Box::new(|t| {
                t.write_full(b"x".to_vec()).truncate(u64::MAX);
            }),
            |e| matches!(e, StoreError::ObjectTooLarge { .. }),
        ),
    ];
    for (index, (build, expected)) in failing.into_iter().enumerate() {
        let result = commit(&store, &object, |t| {
            t.reqid(ReqId::new(9, index as u64));
            build(t);
        });
        match result {
            Err(error) => assert!(expected(&error), "case {index}: unexpected {error}"),
            Ok(version) => panic!("case {index} committed at {version}"),
        }
        assert_eq!(snapshot(&store, &object), before, "case {index}");
        assert_eq!(store.pg_info(PG).unwrap(), info_before, "case {index}");
        let keys_after: Vec<_> = engine
            .scan(&pg_keyspace(PG), kv::KeyRange::all())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            keys_after == keys_before,
            "case {index} changed stored keys"
        );
        assert_eq!(
            store.lookup_reqid(PG, ReqId::new(9, index as u64)).unwrap(),
            None,
            "a failed request is not remembered"
        );
    }
    // The right version passes the same guard.
    commit(&store, &object, |t| {
        t.assert_version(v1).write(0, b"changed".to_vec());
    })
    .unwrap();
    assert_eq!(store.read(PG, &object, 0, 7).unwrap(), b"changed");
}

#[test]
fn sub_ops_apply_in_order_within_one_transaction() {
    let (store, _) = memory_store();
    let object = obj("seq");
    commit(&store, &object, |t| {
        t.write_full(b"old".to_vec())
            .set_xattr("old", b"1".to_vec());
    })
    .unwrap();
    let version = commit(&store, &object, |t| {
        t.assert_exists()
            .remove()
            .create(true)
            .write(2, b"abc".to_vec())
            .append(b"de".to_vec())
            .set_xattr("new", b"2".to_vec())
            .push(WriteOp::Truncate { size: 6 });
    })
    .unwrap();
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), b"\0\0abcd");
    let xattrs: Vec<String> = store.xattrs(PG, &object).unwrap().into_keys().collect();
    assert_eq!(xattrs, vec!["new".to_owned()]);
    let info = store.stat(PG, &object).unwrap();
    assert_eq!(info.version, version);
    // The log records one entry for the whole transaction.
    let log = store.read_log(PG, Eversion::ZERO, 100).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].version, version);
    assert_eq!(log[1].prior_version, log[0].version);
    assert_eq!(log[1].op, LogOp::Modify);
}

#[test]
fn later_sub_ops_modify_a_chunk_an_earlier_one_wrote_whole() {
    // A chunk written whole is held by reference to the op's data until the batch is
    // built; later sub-ops on it must work on a copy and leave the op's data alone.
    let (store, _) = memory_store();
    let object = obj("whole-then-part");
    let chunk = osd::store::CHUNK_SIZE;
    let whole: Vec<u8> = (0..2 * chunk).map(|i| (i % 251) as u8).collect();
    commit(&store, &object, |t| {
        t.write(0, whole.clone())
            .write(10, b"patch".to_vec())
            .zero(chunk as u64 + 5, 3)
            .push(WriteOp::Truncate {
                size: 2 * chunk as u64 - 1,
            });
    })
    .unwrap();
    let mut expected = whole.clone();
    expected[10..15].copy_from_slice(b"patch");
    expected[chunk + 5..chunk + 8].fill(0);
    expected.truncate(2 * chunk - 1);
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), expected);
}

#[test]
fn versions_grow_by_one_and_respect_epochs() {
    let (store, _) = memory_store();
    let mut last = Eversion::ZERO;
    for (i, epoch) in [1, 1, 3, 3, 7].into_iter().enumerate() {
        let mut txn = Transaction::new(PG, obj(&format!("o{i}")), epoch);
        txn.create(false);
        let version = store.commit(txn).unwrap();
        assert_eq!(version, Eversion::new(epoch, i as u64 + 1));
        assert!(version > last);
        last = version;
    }
    let mut stale = Transaction::new(PG, obj("late"), 6);
    stale.create(false);
    assert!(matches!(
        store.commit(stale),
        Err(StoreError::StaleEpoch { .. })
    ));

    // A replica applies the primary's versions as given, and only newer ones.
    let mut replica = Transaction::new(PG, obj("r"), 7);
    replica
        .at_version(Eversion::new(7, 42))
        .write(0, b"r".to_vec());
    assert_eq!(store.commit(replica).unwrap(), Eversion::new(7, 42));
    let mut old = Transaction::new(PG, obj("r"), 7);
    old.at_version(Eversion::new(7, 42))
        .write(0, b"again".to_vec());
    assert!(matches!(
        store.commit(old),
        Err(StoreError::VersionNotNewer { .. })
    ));
    assert_eq!(store.pg_info(PG).unwrap().last_update, Eversion::new(7, 42));
    assert_eq!(store.read(PG, &obj("r"), 0, 0).unwrap(), b"r");
}

#[test]
fn a_resent_request_is_applied_once() {
    let (store, _) = memory_store();
    let object = obj("counter");
    let reqid = ReqId::new(4100, 17);
    let append_once = || {
        let mut txn = Transaction::new(PG, object.clone(), 1);
        txn.reqid(reqid).append(b"+".to_vec());
        store.commit(txn)
    };
    let first = append_once().unwrap();
    let info = store.pg_info(PG).unwrap();
    let again = append_once().unwrap();
    assert_eq!(again, first, "the resend reports the original version");
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), b"+");
    assert_eq!(store.pg_info(PG).unwrap(), info, "nothing was logged twice");
    assert_eq!(store.lookup_reqid(PG, reqid).unwrap(), Some(first));
    // Another tid of the same client is a new request.
    let mut txn = Transaction::new(PG, object.clone(), 1);
    txn.reqid(ReqId::new(4100, 18)).append(b"+".to_vec());
    store.commit(txn).unwrap();
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), b"++");
    // The log names the requests.
    let log = store.read_log(PG, Eversion::ZERO, 10).unwrap();
    let reqids: Vec<_> = log.iter().map(|entry| entry.reqid).collect();
    assert_eq!(reqids, vec![Some(reqid), Some(ReqId::new(4100, 18))]);
}

#[test]
fn the_log_is_trimmed_to_its_bound_and_forgets_trimmed_requests() {
    let config = StoreConfig {
        pg_log_max_entries: 10,
        pg_log_trim_batch: 3,
        ..StoreConfig::default()
    };
    let (store, engine) = memory_store_with(config);
    let mut versions = Vec::new();
    for i in 0..50u64 {
        let mut txn = Transaction::new(PG, obj(&format!("o{}", i % 4)), 1);
        txn.reqid(ReqId::new(1, i));
        if i % 5 == 4 {
            txn.remove();
        } else {
            txn.write_full(pattern(10, i));
        }
        versions.push(store.commit(txn).unwrap());
        let info = store.pg_info(PG).unwrap();
        assert!(info.log_len <= 10, "log holds {} entries", info.log_len);
        assert_eq!(
            section(engine.as_ref(), &pg_keyspace(PG), b'L').len() as u64,
            info.log_len
        );
        // Exactly the requests still in the log are remembered, at their versions.
        for (tid, &version) in versions.iter().enumerate() {
            let expected = (version > info.log_tail).then_some(version);
            assert_eq!(
                store.lookup_reqid(PG, ReqId::new(1, tid as u64)).unwrap(),
                expected
            );
        }
    }
    let info = store.pg_info(PG).unwrap();
    assert_eq!(info.last_update, *versions.last().unwrap());
    assert!(info.log_len > 10 - 3);
    // Entries (log_tail, last_update] are there, in order; older ones are gone.
    let log = store.read_log(PG, info.log_tail, 100).unwrap();
    assert_eq!(log.len() as u64, info.log_len);
    let logged: Vec<Eversion> = log.iter().map(|entry| entry.version).collect();
    assert_eq!(logged, versions[versions.len() - log.len()..]);
    assert!(matches!(
        store.read_log(PG, Eversion::ZERO, 100),
        Err(StoreError::LogTrimmed { .. })
    ));
    // Paging through the log.
    let first_two = store.read_log(PG, info.log_tail, 2).unwrap();
    assert_eq!(first_two, log[..2]);
    let rest = store.read_log(PG, first_two[1].version, 100).unwrap();
    assert_eq!(rest, log[2..]);
    // Removals are logged as deletes with the object's previous version.
    let removal = log.iter().find(|entry| entry.op == LogOp::Delete).unwrap();
    assert_ne!(removal.prior_version, Eversion::ZERO);
    // The request ids of trimmed entries are forgotten, the others remembered.
    assert_eq!(store.lookup_reqid(PG, ReqId::new(1, 0)).unwrap(), None);
    assert_eq!(
        store.lookup_reqid(PG, ReqId::new(1, 49)).unwrap(),
        Some(versions[49])
    );
}

#[test]
fn pg_info_counts_objects_and_bytes() {
    let (store, _) = memory_store();
    commit(&store, &obj("a"), |t| {
        t.write_full(vec![1; 1000]);
    })
    .unwrap();
    commit(&store, &obj("b"), |t| {
        t.write(5000, vec![1; 10]);
    })
    .unwrap();
    commit(&store, &obj("a"), |t| {
        t.truncate(100);
    })
    .unwrap();
    let stats = store.pg_info(PG).unwrap().stats;
    assert_eq!((stats.objects, stats.bytes), (2, 5110));
    commit(&store, &obj("b"), |t| {
        t.remove();
    })
    .unwrap();
    let stats = store.pg_info(PG).unwrap().stats;
    assert_eq!((stats.objects, stats.bytes), (1, 100));
}

#[test]
fn pgs_are_created_listed_and_removed_whole() {
    let (store, engine) = memory_store();
    let other = PgId::new(2, 0x1f);
    assert!(matches!(
        store.create_pg(PG),
        Err(StoreError::PgExists { .. })
    ));
    let mut txn = Transaction::new(other, obj("x"), 1);
    txn.create(false);
    assert!(matches!(
        store.commit(txn),
        Err(StoreError::PgNotFound { .. })
    ));
    store.create_pg(other).unwrap();
    assert_eq!(store.pgs(), vec![PG, other]);

    for i in 0..150 {
        let mut txn = Transaction::new(other, obj(&format!("o{i}")), 1);
        txn.reqid(ReqId::new(3, i))
            .write_full(pattern(70_000, i))
            .set_xattr("a", b"b".to_vec())
            .omap_set([(b"k".to_vec(), b"v".to_vec())]);
        store.commit(txn).unwrap();
    }
    commit(&store, &obj("keep"), |t| {
        t.write_full(b"kept".to_vec());
    })
    .unwrap();
    assert!(engine.keyspaces().unwrap().contains(&pg_keyspace(other)));
    store.remove_pg(other).unwrap();
    assert_eq!(store.pgs(), vec![PG]);
    assert!(!engine.keyspaces().unwrap().contains(&pg_keyspace(other)));
    assert!(matches!(
        store.stat(other, &obj("o1")),
        Err(StoreError::PgNotFound { .. })
    ));
    assert!(matches!(
        store.remove_pg(other),
        Err(StoreError::PgNotFound { .. })
    ));
    assert_eq!(store.read(PG, &obj("keep"), 0, 0).unwrap(), b"kept");

    // Created again, it is empty (no cached metadata leaks through).
    store.create_pg(other).unwrap();
    assert!(matches!(
        store.stat(other, &obj("o1")),
        Err(StoreError::ObjectNotFound { .. })
    ));
    assert!(store
        .list_objects(other, None, None, 10)
        .unwrap()
        .objects
        .is_empty());
    assert_eq!(store.pg_info(other).unwrap().last_update, Eversion::ZERO);
}

#[test]
fn concurrent_committers_get_distinct_consecutive_versions() {
    let (store, _) = memory_store();
    let store = Arc::new(store);
    let second = PgId::new(1, 1);
    store.create_pg(second).unwrap();
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 100;
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut versions = Vec::new();
                for i in 0..PER_THREAD {
                    let pg = if thread % 2 == 0 { PG } else { second };
                    // Threads share objects pairwise, so commits to one object interleave.
                    let mut txn = Transaction::new(pg, obj(&format!("t{}", thread / 4)), 1);
                    txn.reqid(ReqId::new(thread, i))
                        .write(i * 100 + thread * 10, pattern(10, i))
                        .omap_set([(format!("{thread}/{i}").into_bytes(), b"v".to_vec())]);
                    versions.push((pg, store.commit(txn).unwrap()));
                }
                versions
            })
        })
        .collect();
    let mut per_pg: std::collections::HashMap<PgId, BTreeSet<u64>> = Default::default();
    for handle in handles {
        for (pg, version) in handle.join().unwrap() {
            assert!(
                per_pg.entry(pg).or_default().insert(version.version),
                "duplicate version"
            );
        }
    }
    for (pg, versions) in per_pg {
        let expected: BTreeSet<u64> = (1..=THREADS / 2 * PER_THREAD).collect();
        assert_eq!(versions, expected, "pg {pg}");
        let info = store.pg_info(pg).unwrap();
        assert_eq!(info.last_update.version, THREADS / 2 * PER_THREAD);
        assert_eq!(info.stats.objects, 2);
        let log = store.read_log(pg, Eversion::ZERO, usize::MAX).unwrap();
        assert_eq!(log.len() as u64, THREADS / 2 * PER_THREAD);
        for object in ["t0", "t1"] {
            let page = store.omap_list(pg, &obj(object), None, usize::MAX).unwrap();
            assert_eq!(page.entries.len() as u64, 2 * PER_THREAD);
        }
    }
}
