//! The store on fjall: everything committed survives a reopen, the superblock guards the
//! format and identity, a PG removal cut short is finished on open, and concurrent commits
//! share syncs (group commit).

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};

use clustermap::{PgId, Uuid};
use common::*;
use kv::{Backend, Options, WriteBatch};
use osd::store::{
    Compression, Eversion, ObjectId, ObjectStore, ReqId, StoreConfig, StoreError, Superblock,
    Transaction, FORMAT_VERSION, OLDEST_UPGRADABLE_FORMAT,
};

#[test]
fn everything_committed_is_there_after_reopen() {
    let dir = TempDir::new("reopen");
    let second = PgId::new(3, 0x7);
    let big = pattern(5 * CHUNK as usize + 123, 1);
    let mut expected_log = Vec::new();
    {
        let (store, _) = fjall_store(dir.path(), StoreConfig::default());
        store.create_pg(PG).unwrap();
        store.create_pg(second).unwrap();
        store.set_osd_id(7).unwrap();
        expected_log.push(
            commit(&store, &obj("big"), |t| {
                t.reqid(ReqId::new(1, 1)).write_full(big.clone());
            })
            .unwrap(),
        );
        expected_log.push(
            commit(&store, &obj("big"), |t| {
                t.write(CHUNK - 2, b"seam".to_vec()).truncate(4 * CHUNK + 9);
            })
            .unwrap(),
        );
        expected_log.push(
            commit(&store, &ObjectId::in_namespace("ns", "meta"), |t| {
                t.set_xattr("a", b"1".to_vec()).omap_set([
                    (b"k1".to_vec(), b"v1".to_vec()),
                    (b"k2".to_vec(), b"v2".to_vec()),
                ]);
            })
            .unwrap(),
        );
        expected_log.push(
            commit(&store, &obj("gone"), |t| {
                t.write_full(b"x".to_vec());
            })
            .unwrap(),
        );
        expected_log.push(
            commit(&store, &obj("gone"), |t| {
                t.remove();
            })
            .unwrap(),
        );
        let mut txn = Transaction::new(second, obj("other"), 2);
        txn.write(10, b"pg two".to_vec());
        store.commit(txn).unwrap();
    }
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    let superblock = store.superblock();
    assert_eq!(superblock.osd_uuid, UUID);
    assert_eq!(superblock.osd_id, Some(7));
    assert_eq!(superblock.format_version, FORMAT_VERSION);
    assert_eq!(store.pgs(), vec![PG, second]);

    let mut model = big.clone();
    model[(CHUNK - 2) as usize..(CHUNK + 2) as usize].copy_from_slice(b"seam");
    model.truncate((4 * CHUNK + 9) as usize);
    assert_eq!(store.read(PG, &obj("big"), 0, 0).unwrap(), model);
    let meta = ObjectId::in_namespace("ns", "meta");
    assert_eq!(store.get_xattr(PG, &meta, "a").unwrap(), b"1");
    assert_eq!(
        store.omap_list(PG, &meta, None, 10).unwrap().entries.len(),
        2
    );
    assert!(matches!(
        store.stat(PG, &obj("gone")),
        Err(StoreError::ObjectNotFound { .. })
    ));
    assert_eq!(
        store.read(second, &obj("other"), 0, 0).unwrap(),
        b"\0\0\0\0\0\0\0\0\0\0pg two"
    );

    let info = store.pg_info(PG).unwrap();
    assert_eq!(info.last_update, *expected_log.last().unwrap());
    assert_eq!((info.stats.objects, info.stats.bytes), (2, 4 * CHUNK + 9));
    let log: Vec<Eversion> = store
        .read_log(PG, Eversion::ZERO, 100)
        .unwrap()
        .iter()
        .map(|entry| entry.version)
        .collect();
    assert_eq!(log, expected_log);
    assert_eq!(
        store.lookup_reqid(PG, ReqId::new(1, 1)).unwrap(),
        Some(expected_log[0])
    );
    // Writing goes on from the recovered head.
    let next = commit(&store, &obj("big"), |t| {
        t.append(b"!".to_vec());
    })
    .unwrap();
    assert_eq!(next.version, expected_log.last().unwrap().version + 1);
}

#[test]
fn the_pg_info_is_whole_after_every_reopen_whether_or_not_the_log_was_trimmed() {
    let dir = TempDir::new("info-reopen");
    // A short log: some of the segments below end right after a trim, some between trims.
    let config = StoreConfig {
        pg_log_max_entries: 6,
        pg_log_trim_batch: 4,
        ..StoreConfig::default()
    };
    let mut sizes: std::collections::BTreeMap<String, u64> = Default::default();
    let mut before_close = None;
    let mut round = 0u64;
    for commits in [1, 3, 2, 5, 4, 7] {
        let (store, _) = fjall_store(dir.path(), config.clone());
        match before_close {
            None => store.create_pg(PG).unwrap(),
            Some(info) => assert_eq!(store.pg_info(PG).unwrap(), info),
        }
        for _ in 0..commits {
            round += 1;
            let name = format!("o{}", round % 5);
            if round.is_multiple_of(4) && sizes.contains_key(&name) {
                commit(&store, &obj(&name), |t| {
                    t.remove();
                })
                .unwrap();
                sizes.remove(&name);
            } else {
                let data = pattern(round as usize * 100, round);
                commit(&store, &obj(&name), |t| {
                    t.append(data.clone());
                })
                .unwrap();
                *sizes.entry(name).or_default() += data.len() as u64;
            }
        }
        let info = store.pg_info(PG).unwrap();
        assert_eq!(info.stats.objects, sizes.len() as u64);
        assert_eq!(info.stats.bytes, sizes.values().sum::<u64>());
        let log = store.read_log(PG, info.log_tail, 100).unwrap();
        assert_eq!(log.len() as u64, info.log_len);
        assert_eq!(
            log.last().map(|entry| entry.version),
            Some(info.last_update)
        );
        before_close = Some(info);
    }
    assert!(round > config.pg_log_max_entries * 3, "the log was trimmed");
}

#[test]
fn the_superblock_guards_format_and_identity() {
    let dir = TempDir::new("superblock");
    let engine = kv::open(Backend::Fjall, dir.path(), &Options::default()).unwrap();
    assert!(matches!(
        ObjectStore::open(engine.clone(), StoreConfig::default()),
        Err(StoreError::NotFormatted)
    ));
    assert!(matches!(
        ObjectStore::mkfs(engine.clone(), Uuid::NIL, StoreConfig::default()),
        Err(StoreError::InvalidArgument { .. })
    ));
    let store = ObjectStore::mkfs(engine.clone(), UUID, StoreConfig::default()).unwrap();
    assert_eq!(store.superblock().osd_id, None);
    drop(store);
    assert!(matches!(
        ObjectStore::mkfs(engine.clone(), UUID, StoreConfig::default()),
        Err(StoreError::AlreadyFormatted)
    ));
    // An engine holding other data is not an object store.
    let other = kv::open(Backend::Memory, Path::new("unused"), &Options::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put("raft_log", b"k".to_vec(), b"v".to_vec());
    other.write(batch).unwrap();
    assert!(matches!(
        ObjectStore::open(other.clone(), StoreConfig::default()),
        Err(StoreError::NotFormatted)
    ));
    assert!(matches!(
        ObjectStore::mkfs(other, UUID, StoreConfig::default()),
        Err(StoreError::AlreadyFormatted)
    ));
    // A bad config is refused before anything is read.
    let bad = StoreConfig {
        pg_log_max_entries: 0,
        ..StoreConfig::default()
    };
    assert!(matches!(
        ObjectStore::open(engine, bad),
        Err(StoreError::InvalidConfig {
            field: "pg_log_max_entries",
            ..
        })
    ));
}

#[test]
fn a_pg_removal_cut_short_is_finished_on_open() {
    let dir = TempDir::new("removal");
    let doomed = PgId::new(5, 0);
    {
        let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
        store.create_pg(PG).unwrap();
        store.create_pg(doomed).unwrap();
        for i in 0..20 {
            let mut txn = Transaction::new(doomed, obj(&format!("o{i}")), 1);
            txn.write_full(pattern(100_000, i))
                .set_xattr("a", b"b".to_vec());
            store.commit(txn).unwrap();
        }
        commit(&store, &obj("survivor"), |t| {
            t.write_full(b"alive".to_vec());
        })
        .unwrap();
        // The first step of a removal, then a "crash": the info key is gone, the rest stays.
        let mut batch = WriteBatch::new();
        batch.delete(&pg_keyspace(doomed), b"I".to_vec());
        engine.write_sync(batch).unwrap();
    }
    let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(store.pgs(), vec![PG]);
    assert!(!engine.keyspaces().unwrap().contains(&pg_keyspace(doomed)));
    assert_eq!(store.read(PG, &obj("survivor"), 0, 0).unwrap(), b"alive");
    store.create_pg(doomed).unwrap();
    assert!(store
        .list_objects(doomed, None, None, 10)
        .unwrap()
        .objects
        .is_empty());
}

#[test]
fn concurrent_commits_share_syncs() {
    let dir = TempDir::new("group-commit");
    let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
    store.create_pg(PG).unwrap();
    let other = PgId::new(1, 1);
    store.create_pg(other).unwrap();
    let store = Arc::new(store);
    const THREADS: u64 = 16;
    const PER_THREAD: u64 = 20;
    let syncs_before = engine.syncs_performed();
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    let pg = if thread % 2 == 0 { PG } else { other };
                    let mut txn = Transaction::new(pg, obj(&format!("t{thread}")), 1);
                    txn.reqid(ReqId::new(thread, i))
                        .write(i * 4096, pattern(4096, i));
                    store.commit(txn).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let commits = THREADS * PER_THREAD;
    let syncs = engine.syncs_performed() - syncs_before;
    println!("{commits} concurrent commits took {syncs} syncs");
    assert!(syncs > 0, "commits must sync");
    assert!(
        syncs < commits,
        "{commits} concurrent commits should share syncs, but ran {syncs}"
    );
    // And they all landed.
    for thread in 0..THREADS {
        let pg = if thread % 2 == 0 { PG } else { other };
        let data = store.read(pg, &obj(&format!("t{thread}")), 0, 0).unwrap();
        assert_eq!(data.len() as u64, PER_THREAD * 4096);
        assert_eq!(&data[4096 * 3..4096 * 4], &pattern(4096, 3)[..]);
    }
}

#[test]
fn an_older_format_store_is_upgraded_on_open_even_after_an_upgrade_cut_short() {
    let dir = TempDir::new("upgrade");
    let big = pattern(3 * CHUNK as usize + 10, 4);
    let keyspace = pg_keyspace(PG);
    {
        // Every chunk in the engine, as format 1 kept them.
        let raw = StoreConfig {
            compression: Compression::None,
            block_min_bytes: usize::MAX,
            ..StoreConfig::default()
        };
        let (store, engine) = fjall_store(dir.path(), raw);
        store.create_pg(PG).unwrap();
        commit(&store, &obj("big"), |t| {
            t.write_full(big.clone());
        })
        .unwrap();
        commit(&store, &obj("small"), |t| {
            t.write_full(b"small".to_vec());
        })
        .unwrap();
        // Format 1 kept a chunk as its checksum then its bytes: a raw format 2 chunk
        // without its kind byte. The first chunk stays in format 2, as an upgrade that a
        // crash cut short leaves some.
        let chunks = section(engine.as_ref(), &keyspace, b'D');
        assert_eq!(chunks.len(), 5);
        let mut batch = WriteBatch::new();
        for (key, value) in chunks.into_iter().skip(1) {
            assert_eq!(value[0], 0, "stored raw");
            batch.put(&keyspace, key, value[1..].to_vec());
        }
        let old = Superblock {
            format_version: OLDEST_UPGRADABLE_FORMAT,
            ..store.superblock()
        };
        batch.put("osd_super", b"superblock".to_vec(), old.encode());
        engine.write_sync(batch).unwrap();
    }
    let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(store.superblock().format_version, FORMAT_VERSION);
    assert_eq!(store.superblock().osd_id, None);
    assert_eq!(store.read(PG, &obj("big"), 0, 0).unwrap(), big);
    assert_eq!(store.read(PG, &obj("small"), 0, 0).unwrap(), b"small");
    for (key, value) in section(engine.as_ref(), &keyspace, b'D') {
        assert_eq!(value[0], 0, "chunk {key:02x?} has its kind byte");
    }
    drop((store, engine));
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(store.read(PG, &obj("big"), 0, 0).unwrap(), big);
}

#[test]
fn a_format_2_store_loses_its_on_disk_request_index_and_still_recognises_resent_requests() {
    let dir = TempDir::new("upgrade-reqids");
    let keyspace = pg_keyspace(PG);
    let resent = ReqId::new(5, 1);
    let first = {
        let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
        store.create_pg(PG).unwrap();
        let first = commit(&store, &obj("counter"), |t| {
            t.reqid(resent).append(b"once;".to_vec());
        })
        .unwrap();
        // Format 2 also kept `R` client tid -> version for every logged request.
        let mut batch = WriteBatch::new();
        let mut key = vec![b'R'];
        key.extend_from_slice(&5u64.to_be_bytes());
        key.extend_from_slice(&1u64.to_be_bytes());
        batch.put(&keyspace, key, vec![1, 0, 0, 0, 1]);
        let old = Superblock {
            format_version: 2,
            ..store.superblock()
        };
        batch.put("osd_super", b"superblock".to_vec(), old.encode());
        engine.write_sync(batch).unwrap();
        first
    };
    let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(store.superblock().format_version, FORMAT_VERSION);
    assert!(section(engine.as_ref(), &keyspace, b'R').is_empty());
    // The index is rebuilt from the log: the resent append is answered, not applied again.
    assert_eq!(store.lookup_reqid(PG, resent).unwrap(), Some(first));
    let again = commit(&store, &obj("counter"), |t| {
        t.reqid(resent).append(b"once;".to_vec());
    })
    .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.read(PG, &obj("counter"), 0, 0).unwrap(), b"once;");
}
