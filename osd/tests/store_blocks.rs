//! The block file under the object store: large chunks written once with direct I/O, their
//! space freed after overwrites and removals (once durable), the allocator rebuilt on open,
//! damage caught by checksums, and space of writes that never committed given back.

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use osd::store::{ObjectStore, StoreConfig, StoreError, Transaction, WriteOp};

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
    // Also when the read is served from the disk read's own buffer.
    assert!(matches!(
        store.read_bytes(PG, &obj("victim"), 0, 0),
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

/// Every byte of the block file set to zero: what the disk holds when the page cache's
/// writes of it never got there (a power cut before any flush).
fn zero_block_file(dir: &std::path::Path) {
    let path = dir.join("blocks");
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = zeros.len().min((len - at) as usize);
        file.write_all_at(&zeros[..n], at).unwrap();
        at += n as u64;
    }
    file.sync_all().unwrap();
}

/// Whether the engine's tables hold deferred writes' log-only copies.
fn holds_deferred_copies(engine: &dyn kv::Engine) -> bool {
    engine
        .keyspaces()
        .unwrap()
        .iter()
        .any(|name| name == "osd_deferred")
}

#[test]
fn deferred_chunks_the_block_file_lost_come_back_from_the_log() {
    let dir = TempDir::new("blocks-deferred");
    let small = pattern(4096, 1);
    let odd = pattern(10_000, 2);
    let first = pattern(6000, 3);
    let newest = pattern(5000, 4);
    let mut model = pattern(3 * CHUNK as usize, 5);
    {
        let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
        store.create_pg(PG).unwrap();
        write_full(&store, "small", &small);
        write_full(&store, "odd", &odd);
        write_full(&store, "rewritten", &first);
        write_full(&store, "rewritten", &newest);
        write_full(&store, "removed", &pattern(8000, 6));
        commit(&store, &obj("removed"), |t| {
            t.remove();
        })
        .unwrap();
        // Three whole chunks, then a 100-byte write into the middle one: that chunk is
        // rewritten (read, patched) and deferred.
        write_full(&store, "patched", &model);
        let patch = pattern(100, 7);
        commit(&store, &obj("patched"), |t| {
            t.write(CHUNK + 300, patch.clone());
        })
        .unwrap();
        model[CHUNK as usize + 300..CHUNK as usize + 400].copy_from_slice(&patch);
        // Deferred chunks are references in the engine, their bytes in the block file.
        let stored = section(engine.as_ref(), &pg_keyspace(PG), b'D');
        assert_eq!(
            stored.len(),
            1 + 1 + 1 + 3,
            "one chunk per small object, three patched"
        );
        assert!(
            stored.iter().all(|(_, value)| value.len() < 64),
            "every chunk went to the block file"
        );
        assert_eq!(
            used(&store),
            4096 + 12288 + 8192 + 3 * CHUNK,
            "the removed object's and the first write's space is free"
        );
        let on_disk = std::fs::read(dir.path().join("blocks")).unwrap();
        assert!(
            on_disk.windows(4096).any(|window| window == small),
            "written to the file"
        );
        assert_eq!(store.read(PG, &obj("patched"), 0, 0).unwrap(), model);
        assert!(
            !holds_deferred_copies(engine.as_ref()),
            "log-only copies never reach the engine's tables"
        );
    }
    zero_block_file(dir.path());
    let (store, engine) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(store.read(PG, &obj("small"), 0, 0).unwrap(), small);
    assert_eq!(store.read(PG, &obj("odd"), 0, 0).unwrap(), odd);
    assert_eq!(store.read(PG, &obj("rewritten"), 0, 0).unwrap(), newest);
    assert!(matches!(
        store.stat(PG, &obj("removed")),
        Err(StoreError::ObjectNotFound { .. })
    ));
    // The patched chunk came back from the log; its whole neighbours were written with
    // direct I/O and flushed before their batch, so the zeroing took them for good: they
    // are reported as damaged, not served as zeros.
    assert_eq!(
        store.read(PG, &obj("patched"), CHUNK, CHUNK).unwrap(),
        &model[CHUNK as usize..2 * CHUNK as usize]
    );
    assert!(matches!(
        store.read(PG, &obj("patched"), 0, CHUNK),
        Err(StoreError::Corruption { chunk: 0, .. })
    ));
    assert!(
        !holds_deferred_copies(engine.as_ref()),
        "the replayed copies are forgotten once written"
    );
    drop(store);
    drop(engine);
    // Written durably by the replay: a second loss of unflushed writes changes nothing.
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    assert_eq!(store.read(PG, &obj("small"), 0, 0).unwrap(), small);
    assert_eq!(store.read(PG, &obj("rewritten"), 0, 0).unwrap(), newest);
}

/// What a read of `len` bytes at `offset` of `data` returns (`len` 0: to the end).
fn expected_read(data: &[u8], offset: u64, len: u64) -> &[u8] {
    let end = if len == 0 {
        data.len()
    } else {
        data.len().min((offset + len) as usize)
    };
    &data[(offset as usize).min(end)..end]
}

#[test]
fn reads_of_chunks_side_by_side_are_served_in_place_and_equal_the_usual_reads() {
    let dir = TempDir::new("blocks-in-place");
    let (store, _) = fjall_store(dir.path(), StoreConfig::default());
    store.create_pg(PG).unwrap();
    let data = pattern(OBJECT_LEN + 1000, 5);
    write_full(&store, "big", &data);
    // Half compressible, half not: the compressed chunks live in the engine.
    let mut mixed = vec![0u8; 4 * CHUNK as usize];
    mixed.extend_from_slice(&pattern(4 * CHUNK as usize, 6));
    write_full(&store, "mixed", &mixed);
    // A hole between written chunks.
    commit(&store, &obj("sparse"), |t| {
        t.write(0, pattern(CHUNK as usize, 7));
        t.write(3 * CHUNK, pattern(CHUNK as usize, 8));
    })
    .unwrap();
    let chunk = CHUNK as usize;
    let spans = [
        (0, 0),
        (100, 3 * CHUNK),
        (CHUNK - 1, 2),
        (CHUNK * 5 + 17, 200_000),
        (0, OBJECT_LEN as u64),
        // Into the tail held in the engine, and past the end.
        (OBJECT_LEN as u64 - 10, 500),
        (OBJECT_LEN as u64 - 10, 5000),
        (OBJECT_LEN as u64 + 2000, 10),
    ];
    for (offset, len) in spans {
        let usual = store.read(PG, &obj("big"), offset, len).unwrap();
        let in_place = store.read_bytes(PG, &obj("big"), offset, len).unwrap();
        assert_eq!(in_place, usual, "{offset}+{len}");
        assert_eq!(usual, expected_read(&data, offset, len), "{offset}+{len}");
    }
    for (name, expected) in [
        ("mixed", &mixed),
        ("sparse", &{
            let mut sparse = pattern(chunk, 7);
            sparse.resize(3 * chunk, 0);
            sparse.extend_from_slice(&pattern(chunk, 8));
            sparse
        }),
    ] {
        for (offset, len) in [(0, 0), (10, 4 * CHUNK), (CHUNK + 3, 2 * CHUNK)] {
            let bytes = store.read_bytes(PG, &obj(name), offset, len).unwrap();
            assert_eq!(
                bytes,
                expected_read(expected, offset, len),
                "{name} {offset}+{len}"
            );
        }
    }
    // Served from the direct read's block-aligned buffer: the bytes start where the
    // offset falls in its first block, not at a fresh allocation's start.
    let bytes = store.read_bytes(PG, &obj("big"), 100, 3 * CHUNK).unwrap();
    assert_eq!(bytes.as_ptr() as usize % 4096, 100);
}

/// `bytes` in a buffer that starts `skew` bytes past a 4 KiB boundary.
fn placed(bytes: &[u8], skew: usize) -> bytes::Bytes {
    let mut storage: Vec<u8> = Vec::with_capacity(bytes.len() + 8192);
    let start = storage.as_ptr().align_offset(4096) + skew;
    storage.resize(start, 0);
    storage.extend_from_slice(bytes);
    bytes::Bytes::from(storage).slice(start..)
}

#[test]
fn incompressible_data_on_a_block_boundary_goes_to_disk_from_where_it_lies() {
    let (store, _) = memory_store();
    let random = pattern(OBJECT_LEN, 11);
    let zeros = vec![0u8; OBJECT_LEN];
    // (name, data, whether the block file write takes it in place)
    let cases = [
        ("aligned", placed(&random, 0), true),
        ("unaligned", placed(&random, 512), false),
        // Whole chunks from byte 1000 on: not where a block starts.
        ("offset", placed(&random[..OBJECT_LEN - 1000], 0), false),
        ("compressible", placed(&zeros, 0), false),
    ];
    for (name, data, expected) in cases {
        let ops = if name == "offset" {
            vec![WriteOp::Write {
                offset: 1000,
                data: data.clone(),
            }]
        } else {
            vec![WriteOp::WriteFull { data: data.clone() }]
        };
        let staged = store.stage(&ops).unwrap();
        assert_eq!(staged.written_in_place(), expected, "{name}");
        let mut txn = Transaction::new(PG, obj(name), 1);
        for op in ops {
            txn.push(op);
        }
        store.apply_staged(txn, staged).unwrap();
        let read = store.read(PG, &obj(name), 0, 0).unwrap();
        let offset = if name == "offset" { 1000 } else { 0 };
        assert_eq!(read.len(), offset + data.len(), "{name}");
        assert!(read[..offset].iter().all(|&byte| byte == 0), "{name}");
        assert!(
            read[offset..] == data[..],
            "{name}: the data read back differs"
        );
    }
}
