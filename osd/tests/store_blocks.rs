//! The block file under the object store: large chunks written once with direct I/O, their
//! space freed after overwrites and removals (once durable), the allocator rebuilt on open,
//! damage caught by checksums, and space of writes that never committed given back.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use osd::store::{ObjectStore, StoreConfig, StoreError, WriteOp};

const OBJECT_LEN: usize = 4 << 20;

fn used(store: &ObjectStore) -> u64 {
    store.block_usage().expect("a block file").0
}

fn file_len(store: &ObjectStore) -> u64 {
    store.block_usage().expect("a block file").1
}

fn write_full(store: &ObjectStore, name: &str, data: &[u8]) {
    commit(store, &obj(name), |t| {
        t.write_full(data.to_vec());
    })
    .unwrap();
}

#[test]
fn large_incompressible_chunks_live_in_the_block_file_and_survive_reopen() {
    let dir = TempDir::new("blocks-basic");
    let data = pattern(OBJECT_LEN + 1000, 1);
    {
        let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
        store.create_pg(PG).unwrap();
        write_full(&store, "big", &data);
        // 64 whole chunks in the block file; the 1000-byte tail stays in the engine.
        assert_eq!(used(&store), OBJECT_LEN as u64);
        let stored = section(engine.as_ref(), &pg_keyspace(PG), b'D');
        assert_eq!(stored.len(), 65);
        assert!(stored[..64].iter().all(|(_, value)| value.len() < 64));
        assert_eq!(store.read(PG, &obj("big"), 0, 0).unwrap(), data);
        // Compressible data is kept compressed in the engine.
        write_full(&store, "zeros", &vec![0u8; OBJECT_LEN]);
        assert_eq!(used(&store), OBJECT_LEN as u64);
    }
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(used(&store), OBJECT_LEN as u64);
    assert_eq!(store.read(PG, &obj("big"), 0, 0).unwrap(), data);
    assert_eq!(
        store
            .read(PG, &obj("big"), CHUNK * 3 + 17, 100_000)
            .unwrap(),
        &data[CHUNK as usize * 3 + 17..CHUNK as usize * 3 + 17 + 100_000]
    );
    assert_eq!(
        store.read(PG, &obj("zeros"), 0, 0).unwrap(),
        vec![0u8; OBJECT_LEN]
    );
}

#[test]
fn overwrites_and_removals_give_their_space_back() {
    let (store, _) = memory_store();
    // Without frees, 40 rewrites of 4 MiB would need 160 MiB more than one.
    for round in 0..40 {
        write_full(&store, "big", &pattern(OBJECT_LEN, round));
        assert_eq!(used(&store), OBJECT_LEN as u64, "round {round}");
    }
    assert!(file_len(&store) <= 2 * (256 << 20), "{}", file_len(&store));
    let mut model = pattern(OBJECT_LEN, 39);
    assert_eq!(store.read(PG, &obj("big"), 0, 0).unwrap(), model);

    // A partial write rewrites its chunk in the engine: the chunk's block is freed.
    commit(&store, &obj("big"), |t| {
        t.write(CHUNK * 2 + 5, b"patch".to_vec());
    })
    .unwrap();
    model[CHUNK as usize * 2 + 5..CHUNK as usize * 2 + 10].copy_from_slice(b"patch");
    assert_eq!(used(&store), OBJECT_LEN as u64 - CHUNK);
    assert_eq!(store.read(PG, &obj("big"), 0, 0).unwrap(), model);

    // Whole chunks written over block chunks: new blocks, old ones freed.
    let fresh = pattern(2 * CHUNK as usize, 77);
    commit(&store, &obj("big"), |t| {
        t.write(CHUNK * 10, fresh.clone());
    })
    .unwrap();
    model[CHUNK as usize * 10..CHUNK as usize * 12].copy_from_slice(&fresh);
    assert_eq!(used(&store), OBJECT_LEN as u64 - CHUNK);
    assert_eq!(store.read(PG, &obj("big"), 0, 0).unwrap(), model);

    // Truncation frees the chunks past the new end, removal the rest.
    commit(&store, &obj("big"), |t| {
        t.truncate(CHUNK * 20 + 10);
    })
    .unwrap();
    assert_eq!(used(&store), 19 * CHUNK);
    assert_eq!(
        store.read(PG, &obj("big"), 0, 0).unwrap(),
        &model[..CHUNK as usize * 20 + 10]
    );
    commit(&store, &obj("big"), |t| {
        t.remove();
    })
    .unwrap();
    assert_eq!(used(&store), 0);

    // Removing a PG frees every block of its objects.
    write_full(&store, "a", &pattern(OBJECT_LEN, 1));
    write_full(&store, "b", &pattern(OBJECT_LEN, 2));
    assert_eq!(used(&store), 2 * OBJECT_LEN as u64);
    store.remove_pg(PG).unwrap();
    assert_eq!(used(&store), 0);
}

#[test]
fn writes_after_reopen_never_land_on_live_chunks() {
    let dir = TempDir::new("blocks-reopen");
    let first = pattern(OBJECT_LEN, 100);
    {
        let (store, _) = fjall_store(dir.path(), StoreConfig::default());
        store.create_pg(PG).unwrap();
        write_full(&store, "gap", &pattern(OBJECT_LEN, 99));
        write_full(&store, "first", &first);
        // A hole before "first" that the reopened store may reuse.
        commit(&store, &obj("gap"), |t| {
            t.remove();
        })
        .unwrap();
    }
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(used(&store), OBJECT_LEN as u64);
    for index in 0..6 {
        write_full(
            &store,
            &format!("later{index}"),
            &pattern(OBJECT_LEN, index),
        );
    }
    assert_eq!(store.read(PG, &obj("first"), 0, 0).unwrap(), first);
    for index in 0..6 {
        assert_eq!(
            store
                .read(PG, &obj(&format!("later{index}")), 0, 0)
                .unwrap(),
            pattern(OBJECT_LEN, index)
        );
    }
}

#[test]
fn a_damaged_block_is_reported_as_corruption_of_its_chunk() {
    let dir = TempDir::new("blocks-damage");
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    store.create_pg(PG).unwrap();
    let data = pattern(2 * CHUNK as usize, 3);
    write_full(&store, "victim", &data);
    let blocks = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("blocks"))
        .unwrap();
    // The first allocation of a new file starts at 0: chunk 1 is the second 64 KiB.
    let position = CHUNK + 4321;
    let mut byte = [0u8];
    blocks.read_exact_at(&mut byte, position).unwrap();
    assert_eq!(byte[0], data[position as usize]);
    blocks.write_all_at(&[byte[0] ^ 0x40], position).unwrap();
    blocks.sync_all().unwrap();
    // Past the page cache: the store reads what is on disk now.
    drop(store);
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    match store.read(PG, &obj("victim"), 0, 0) {
        Err(StoreError::Corruption {
            chunk: 1, detail, ..
        }) => {
            assert!(detail.contains("block file"), "{detail}")
        }
        other => panic!("expected corruption of chunk 1, got {other:?}"),
    }
    assert!(matches!(
        store.object_digest(PG, &obj("victim")),
        Err(StoreError::Corruption { chunk: 1, .. })
    ));
    // The undamaged chunk still reads.
    assert_eq!(
        store.read(PG, &obj("victim"), 10, 100).unwrap(),
        &data[10..110]
    );
}

#[test]
fn a_store_with_blocks_refuses_to_open_without_its_block_file() {
    let dir = TempDir::new("blocks-missing");
    {
        let (store, _) = fjall_store(dir.path(), StoreConfig::default());
        store.create_pg(PG).unwrap();
        write_full(&store, "big", &pattern(CHUNK as usize, 8));
    }
    let engine = kv::open(
        kv::Backend::Fjall,
        dir.path(),
        &kv::Options {
            fjall_compression: false,
            ..kv::Options::default()
        },
    )
    .unwrap();
    match ObjectStore::open(engine, StoreConfig::default()) {
        Err(StoreError::Incompatible { reason }) => {
            assert!(reason.contains("block file"), "{reason}")
        }
        other => panic!("expected Incompatible, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn space_of_writes_that_never_committed_is_free_again() {
    let dir = TempDir::new("blocks-uncommitted");
    let big = bytes::Bytes::from(pattern(OBJECT_LEN, 5));
    {
        let (store, _) = fjall_store(dir.path(), StoreConfig::default());
        store.create_pg(PG).unwrap();
        // A failed transaction gives its staged chunks back at once.
        let failed = commit(&store, &obj("absent"), |t| {
            t.assert_exists().write_full(big.clone());
        });
        assert!(matches!(failed, Err(StoreError::ObjectNotFound { .. })));
        assert_eq!(used(&store), 0);
        // Staged and then lost (a crash before the apply): nothing references it.
        let staged = store
            .stage(&[WriteOp::WriteFull { data: big.clone() }])
            .unwrap();
        assert_eq!(staged.staged_chunks(), 64);
        assert_eq!(used(&store), OBJECT_LEN as u64);
        std::mem::forget(staged);
        write_full(&store, "kept", &pattern(CHUNK as usize, 6));
    }
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(used(&store), CHUNK);
    assert_eq!(
        store.read(PG, &obj("kept"), 0, 0).unwrap(),
        pattern(CHUNK as usize, 6)
    );
}
