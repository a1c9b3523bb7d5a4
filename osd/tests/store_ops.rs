//! Object operations of the store on the memory backend: data (chunking, holes, truncation,
//! zeroing), xattrs, omap, listing, digests, corruption detection and input validation.

mod common;

use common::*;
use osd::store::{Compression, ObjectId, StoreConfig, StoreError};

fn data_chunks(engine: &dyn kv::Engine) -> Vec<(Vec<u8>, Vec<u8>)> {
    section(engine, &pg_keyspace(PG), b'D')
}

#[test]
fn write_full_then_read_and_stat() {
    let (store, _) = memory_store();
    let object = obj("a");
    let data = pattern(300 * KIB as usize, 1);
    let version = commit(&store, &object, |t| {
        t.write_full(data.clone());
    })
    .unwrap();
    let info = store.stat(PG, &object).unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(info.version, version);
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), data);
    assert_eq!(
        store.read(PG, &object, 1000, 5000).unwrap(),
        &data[1000..6000]
    );
    // Overwrite with something shorter: the old tail is gone.
    commit(&store, &object, |t| {
        t.write_full(b"short".to_vec());
    })
    .unwrap();
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), b"short");
    assert_eq!(store.stat(PG, &object).unwrap().size, 5);
    assert_eq!(data_chunks(store.engine().as_ref()).len(), 1);
}

#[test]
fn reads_past_the_end_are_short_and_missing_objects_are_not_found() {
    let (store, _) = memory_store();
    let object = obj("a");
    commit(&store, &object, |t| {
        t.write(0, b"0123456789".to_vec());
    })
    .unwrap();
    assert_eq!(store.read(PG, &object, 5, 100).unwrap(), b"56789");
    assert!(store.read(PG, &object, 10, 5).unwrap().is_empty());
    assert!(store
        .read(PG, &object, u64::MAX, u64::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(store.read(PG, &object, 3, 0).unwrap(), b"3456789");
    assert!(matches!(
        store.read(PG, &obj("missing"), 0, 1),
        Err(StoreError::ObjectNotFound { .. })
    ));
    assert!(matches!(
        store.stat(PG, &obj("missing")),
        Err(StoreError::ObjectNotFound { .. })
    ));
}

#[test]
fn sparse_writes_store_only_written_chunks_and_holes_read_as_zeros() {
    let (store, engine) = memory_store();
    let object = obj("sparse");
    let offset = 3 * 1024 * KIB + 100;
    commit(&store, &object, |t| {
        t.write(offset, b"tail".to_vec());
    })
    .unwrap();
    assert_eq!(store.stat(PG, &object).unwrap().size, offset + 4);
    let all = store.read(PG, &object, 0, 0).unwrap();
    assert_eq!(all.len() as u64, offset + 4);
    assert!(all[..offset as usize].iter().all(|&b| b == 0));
    assert_eq!(&all[offset as usize..], b"tail");
    let chunks = data_chunks(engine.as_ref());
    assert_eq!(chunks.len(), 1, "only the written chunk is stored");
    // The chunk is stored up to the written bytes only (kind byte, 8 checksum bytes, then
    // 100 zeros and 4 bytes: too short to be worth compressing).
    assert_eq!(chunks[0].1.len(), 1 + 8 + 104);
}

#[test]
fn writes_straddling_chunk_boundaries() {
    let (store, engine) = memory_store();
    let object = obj("straddle");
    let mut model = vec![0u8; 0];
    for (offset, len, seed) in [
        (CHUNK - 10, 20, 1),
        (2 * CHUNK - 1, 2, 2),
        (0, 3 * CHUNK + 1, 3),
        (CHUNK / 2, 2 * CHUNK, 4),
        (5 * CHUNK, CHUNK, 5),
    ] {
        let data = pattern(len as usize, seed);
        commit(&store, &object, |t| {
            t.write(offset, data.clone());
        })
        .unwrap();
        let end = (offset + len) as usize;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[offset as usize..end].copy_from_slice(&data);
        assert_eq!(store.read(PG, &object, 0, 0).unwrap(), model);
    }
    // Chunk 4 was never written: a hole.
    let stored: Vec<u32> = data_chunks(engine.as_ref())
        .iter()
        .map(|(key, _)| u32::from_be_bytes(key[key.len() - 4..].try_into().unwrap()))
        .collect();
    assert_eq!(stored, vec![0, 1, 2, 3, 5]);
}

#[test]
fn a_small_write_into_a_large_object_rewrites_one_chunk() {
    let (store, engine) = memory_store();
    let object = obj("big");
    let data = pattern(4 << 20, 9);
    commit(&store, &object, |t| {
        t.write_full(data.clone());
    })
    .unwrap();
    let before = data_chunks(engine.as_ref());
    assert_eq!(before.len(), 64);
    commit(&store, &object, |t| {
        t.write(10 * CHUNK + 4096, vec![0xee; 4096]);
    })
    .unwrap();
    let after = data_chunks(engine.as_ref());
    let changed: Vec<usize> = (0..64).filter(|&i| before[i] != after[i]).collect();
    assert_eq!(changed, vec![10]);
    let read = store.read(PG, &object, 10 * CHUNK, CHUNK).unwrap();
    assert_eq!(&read[..4096], &data[10 * CHUNK as usize..][..4096]);
    assert!(read[4096..8192].iter().all(|&b| b == 0xee));
}

#[test]
fn append_grows_the_object() {
    let (store, _) = memory_store();
    let object = obj("log");
    let mut model = Vec::new();
    for seed in 0..5 {
        let data = pattern(40 * KIB as usize, seed);
        commit(&store, &object, |t| {
            t.append(data.clone());
        })
        .unwrap();
        model.extend_from_slice(&data);
    }
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), model);
}

#[test]
fn truncate_down_and_up_exposes_zeros_not_old_data() {
    let (store, engine) = memory_store();
    let object = obj("t");
    let data = pattern(5 * CHUNK as usize, 7);
    commit(&store, &object, |t| {
        t.write_full(data.clone());
    })
    .unwrap();
    // Down into the middle of chunk 2: chunks 3 and 4 go, chunk 2 is trimmed.
    let cut = 2 * CHUNK + 1000;
    commit(&store, &object, |t| {
        t.truncate(cut);
    })
    .unwrap();
    assert_eq!(store.stat(PG, &object).unwrap().size, cut);
    assert_eq!(
        store.read(PG, &object, 0, 0).unwrap(),
        &data[..cut as usize]
    );
    assert_eq!(data_chunks(engine.as_ref()).len(), 3);
    // Up again: the bytes past the cut read as zeros.
    commit(&store, &object, |t| {
        t.truncate(4 * CHUNK);
    })
    .unwrap();
    let grown = store.read(PG, &object, 0, 0).unwrap();
    assert_eq!(grown.len() as u64, 4 * CHUNK);
    assert_eq!(&grown[..cut as usize], &data[..cut as usize]);
    assert!(grown[cut as usize..].iter().all(|&b| b == 0));
    // Down onto a chunk boundary, then to zero.
    commit(&store, &object, |t| {
        t.truncate(CHUNK);
    })
    .unwrap();
    assert_eq!(data_chunks(engine.as_ref()).len(), 1);
    assert_eq!(
        store.read(PG, &object, 0, 0).unwrap(),
        &data[..CHUNK as usize]
    );
    commit(&store, &object, |t| {
        t.truncate(0);
    })
    .unwrap();
    assert!(data_chunks(engine.as_ref()).is_empty());
    assert_eq!(store.stat(PG, &object).unwrap().size, 0);
    // Truncating a missing object creates it.
    commit(&store, &obj("new"), |t| {
        t.truncate(10);
    })
    .unwrap();
    assert_eq!(store.read(PG, &obj("new"), 0, 0).unwrap(), vec![0; 10]);
}

#[test]
fn zero_punches_holes_without_changing_the_size() {
    let (store, engine) = memory_store();
    let object = obj("z");
    let mut model = pattern(3 * CHUNK as usize, 3);
    commit(&store, &object, |t| {
        t.write_full(model.clone());
    })
    .unwrap();
    // Whole chunk 1 plus part of chunk 2, and past the end (ignored).
    commit(&store, &object, |t| {
        t.zero(CHUNK, CHUNK + 100).zero(3 * CHUNK - 10, 1000);
    })
    .unwrap();
    model[CHUNK as usize..(2 * CHUNK + 100) as usize].fill(0);
    model[(3 * CHUNK - 10) as usize..].fill(0);
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), model);
    assert_eq!(store.stat(PG, &object).unwrap().size, 3 * CHUNK);
    assert_eq!(
        data_chunks(engine.as_ref()).len(),
        2,
        "chunk 1 became a hole"
    );
    // Zeroing a missing object does not create it.
    commit(&store, &obj("none"), |t| {
        t.zero(0, 100);
    })
    .unwrap();
    assert!(matches!(
        store.stat(PG, &obj("none")),
        Err(StoreError::ObjectNotFound { .. })
    ));
}

#[test]
fn random_data_ops_match_a_byte_vector_model() {
    let config = StoreConfig {
        max_object_size: 8 * CHUNK,
        ..StoreConfig::default()
    };
    let (store, _) = memory_store_with(config);
    let object = obj("model");
    let mut model: Option<Vec<u8>> = None;
    let mut rng = Rng::new(42);
    for step in 0..400u64 {
        let max = 8 * CHUNK;
        let offset = match rng.below(3) {
            0 => rng.below(max),
            1 => rng.below(8) * CHUNK,
            _ => (rng.below(8) * CHUNK).saturating_sub(rng.below(64)),
        };
        let len = match rng.below(3) {
            0 => rng.below(64),
            1 => rng.below(2 * CHUNK),
            _ => CHUNK,
        }
        .min(max - offset);
        let data = pattern(len as usize, step);
        let current = model.clone().unwrap_or_default();
        let kind = rng.below(7);
        let result = commit(&store, &object, |t| {
            match kind {
                0 | 1 => t.write(offset, data.clone()),
                2 => t.truncate(offset),
                3 => t.zero(offset, len),
                4 => t.write_full(data.clone()),
                5 => t.append(data[..(len.min(max - current.len() as u64)) as usize].to_vec()),
                _ => t.remove(),
            };
        });
        let expected: Option<Vec<u8>> = match kind {
            0 | 1 => {
                let mut next = current.clone();
                let end = (offset + len) as usize;
                if len > 0 && next.len() < end {
                    next.resize(end, 0);
                }
                if len > 0 {
                    next[offset as usize..end].copy_from_slice(&data);
                }
                Some(next)
            }
            2 => {
                let mut next = current.clone();
                next.resize(offset as usize, 0);
                Some(next)
            }
            3 => {
                if model.is_none() {
                    None
                } else {
                    let mut next = current.clone();
                    let end = ((offset + len) as usize).min(next.len());
                    if (offset as usize) < end {
                        next[offset as usize..end].fill(0);
                    }
                    Some(next)
                }
            }
            4 => Some(data.clone()),
            5 => {
                let mut next = current.clone();
                next.extend_from_slice(&data[..(len.min(max - current.len() as u64)) as usize]);
                Some(next)
            }
            _ => None,
        };
        match (kind, &model, result) {
            (6, None, Err(StoreError::ObjectNotFound { .. })) => continue,
            (_, _, Err(error)) => panic!("step {step} kind {kind}: {error}"),
            (_, _, Ok(_)) => model = expected,
        }
        match &model {
            Some(bytes) => {
                assert_eq!(store.stat(PG, &object).unwrap().size, bytes.len() as u64);
                assert!(
                    store.read(PG, &object, 0, 0).unwrap() == *bytes,
                    "content differs after step {step} (kind {kind}, offset {offset}, len {len})"
                );
                let probe = rng.below(max);
                let probe_len = rng.below(CHUNK * 2) + 1;
                let start = (probe as usize).min(bytes.len());
                let end = ((probe + probe_len) as usize).min(bytes.len());
                assert_eq!(
                    store.read(PG, &object, probe, probe_len).unwrap(),
                    &bytes[start..end]
                );
            }
            None => assert!(store.stat(PG, &object).is_err()),
        }
    }
}

#[test]
fn remove_deletes_data_xattrs_and_omap() {
    let (store, engine) = memory_store();
    let object = obj("gone");
    commit(&store, &object, |t| {
        t.write_full(pattern(200 * KIB as usize, 1))
            .set_xattr("a", b"1".to_vec())
            .omap_set([(b"k".to_vec(), b"v".to_vec())]);
    })
    .unwrap();
    commit(&store, &obj("stays"), |t| {
        t.write_full(b"x".to_vec()).set_xattr("a", b"1".to_vec());
    })
    .unwrap();
    commit(&store, &object, |t| {
        t.remove();
    })
    .unwrap();
    assert!(matches!(
        store.stat(PG, &object),
        Err(StoreError::ObjectNotFound { .. })
    ));
    let keyspace = pg_keyspace(PG);
    assert_eq!(section(engine.as_ref(), &keyspace, b'D').len(), 1);
    assert_eq!(section(engine.as_ref(), &keyspace, b'X').len(), 1);
    assert!(section(engine.as_ref(), &keyspace, b'M').is_empty());
    assert!(matches!(
        commit(&store, &object, |t| {
            t.remove();
        }),
        Err(StoreError::ObjectNotFound { .. })
    ));
    // A new object under the same name starts empty.
    commit(&store, &object, |t| {
        t.create(true);
    })
    .unwrap();
    assert_eq!(store.stat(PG, &object).unwrap().size, 0);
    assert!(store.xattrs(PG, &object).unwrap().is_empty());
}

#[test]
fn create_exclusive_and_not() {
    let (store, _) = memory_store();
    let object = obj("c");
    commit(&store, &object, |t| {
        t.create(true);
    })
    .unwrap();
    assert!(matches!(
        commit(&store, &object, |t| {
            t.create(true);
        }),
        Err(StoreError::ObjectExists { .. })
    ));
    commit(&store, &object, |t| {
        t.create(false);
    })
    .unwrap();
    assert_eq!(store.stat(PG, &object).unwrap().size, 0);
}

#[test]
fn xattrs_set_get_list_remove() {
    let (store, _) = memory_store();
    let object = obj("x");
    commit(&store, &object, |t| {
        t.set_xattr("user.b", b"2".to_vec())
            .set_xattr("user.a", b"1".to_vec())
            .set_xattr("empty", Vec::new());
    })
    .unwrap();
    assert_eq!(store.stat(PG, &object).unwrap().size, 0, "setxattr creates");
    assert_eq!(store.get_xattr(PG, &object, "user.a").unwrap(), b"1");
    let all = store.xattrs(PG, &object).unwrap();
    assert_eq!(
        all.into_iter().collect::<Vec<_>>(),
        vec![
            ("empty".to_owned(), Vec::new()),
            ("user.a".to_owned(), b"1".to_vec()),
            ("user.b".to_owned(), b"2".to_vec()),
        ]
    );
    commit(&store, &object, |t| {
        t.set_xattr("user.a", b"one".to_vec()).rm_xattr("user.b");
    })
    .unwrap();
    assert_eq!(store.get_xattr(PG, &object, "user.a").unwrap(), b"one");
    assert!(matches!(
        store.get_xattr(PG, &object, "user.b"),
        Err(StoreError::XattrNotFound { .. })
    ));
    assert!(matches!(
        commit(&store, &object, |t| {
            t.rm_xattr("user.b");
        }),
        Err(StoreError::XattrNotFound { .. })
    ));
    assert!(matches!(
        store.get_xattr(PG, &obj("nobody"), "user.a"),
        Err(StoreError::ObjectNotFound { .. })
    ));
    assert!(matches!(
        commit(&store, &obj("nobody"), |t| {
            t.rm_xattr("user.a");
        }),
        Err(StoreError::ObjectNotFound { .. })
    ));
}

#[test]
fn omap_set_list_with_cursor_get_remove_clear() {
    let (store, _) = memory_store();
    let object = obj("dir");
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..25u32)
        .map(|i| (format!("key{i:02}").into_bytes(), i.to_be_bytes().to_vec()))
        .collect();
    commit(&store, &object, |t| {
        t.omap_set(entries.clone());
    })
    .unwrap();
    let mut listed = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = store.omap_list(PG, &object, cursor.as_deref(), 7).unwrap();
        assert!(page.entries.len() <= 7);
        cursor = page.entries.last().map(|(key, _)| key.clone());
        listed.extend(page.entries);
        if !page.more {
            break;
        }
    }
    assert_eq!(listed, entries);
    let page = store.omap_list(PG, &object, Some(b"key22"), 100).unwrap();
    assert_eq!(page.entries.len(), 2);
    assert!(!page.more);

    let wanted = vec![b"key03".to_vec(), b"nope".to_vec()];
    let got = store.omap_get(PG, &object, &wanted).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[&b"key03".to_vec()], 3u32.to_be_bytes());

    commit(&store, &object, |t| {
        t.omap_rm([b"key00".to_vec(), b"absent".to_vec()]);
    })
    .unwrap();
    assert_eq!(
        store
            .omap_list(PG, &object, None, 100)
            .unwrap()
            .entries
            .len(),
        24
    );
    commit(&store, &object, |t| {
        t.omap_clear()
            .omap_set([(b"after".to_vec(), b"clear".to_vec())]);
    })
    .unwrap();
    let page = store.omap_list(PG, &object, None, 100).unwrap();
    assert_eq!(page.entries, vec![(b"after".to_vec(), b"clear".to_vec())]);
    assert!(matches!(
        commit(&store, &obj("nobody"), |t| {
            t.omap_clear();
        }),
        Err(StoreError::ObjectNotFound { .. })
    ));
}

#[test]
fn listing_pages_through_every_object_in_a_stable_order() {
    let (store, _) = memory_store();
    let mut expected = Vec::new();
    for i in 0..23 {
        for namespace in ["", "ns1", "a\0b"] {
            let object = ObjectId::in_namespace(namespace, format!("obj{}", (i * 7) % 23));
            commit(&store, &object, |t| {
                t.write_full(vec![1; i]);
            })
            .unwrap();
            expected.push(object);
        }
    }
    expected.sort_by(|a, b| {
        (a.namespace.as_bytes(), a.name.as_bytes())
            .cmp(&(b.namespace.as_bytes(), b.name.as_bytes()))
    });
    let list_all = |namespace: Option<&str>, page_size: usize| {
        let mut listed = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_objects(PG, namespace, cursor.as_ref(), page_size)
                .unwrap();
            assert!(page.objects.len() <= page_size);
            listed.extend(page.objects.iter().map(|(object, _)| object.clone()));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        listed
    };
    assert_eq!(list_all(None, 5), expected);
    assert_eq!(list_all(None, 1000), expected);
    let ns1: Vec<_> = expected
        .iter()
        .filter(|object| object.namespace == "ns1")
        .cloned()
        .collect();
    assert_eq!(list_all(Some("ns1"), 4), ns1);
    assert!(list_all(Some("other"), 4).is_empty());
    // A cursor from another namespace starts the namespace's listing at its beginning.
    let page = store
        .list_objects(PG, Some("ns1"), Some(&ObjectId::new("zzz")), 3)
        .unwrap();
    assert_eq!(page.objects[0].0, ns1[0]);
    // Metadata comes with each object.
    let page = store.list_objects(PG, None, None, 1).unwrap();
    assert_eq!(
        page.objects[0].1,
        store.stat(PG, &page.objects[0].0).unwrap()
    );
}

#[test]
fn digests_compare_content_not_layout() {
    let (store, _) = memory_store();
    let holes = obj("holes");
    let zeros = obj("zeros");
    commit(&store, &holes, |t| {
        t.write(3 * CHUNK, b"end".to_vec());
    })
    .unwrap();
    let mut content = vec![0u8; 3 * CHUNK as usize];
    content.extend_from_slice(b"end");
    commit(&store, &zeros, |t| {
        t.write_full(content.clone());
    })
    .unwrap();
    let a = store.object_digest(PG, &holes).unwrap();
    let b = store.object_digest(PG, &zeros).unwrap();
    assert_eq!(a.data_digest, b.data_digest);
    assert_eq!(a.data_digest, xxhash_rust::xxh3::xxh3_64(&content));
    assert_eq!(a.omap_digest, b.omap_digest);

    commit(&store, &zeros, |t| {
        t.write(5, b"x".to_vec());
    })
    .unwrap();
    assert_ne!(
        store.object_digest(PG, &zeros).unwrap().data_digest,
        a.data_digest
    );
    commit(&store, &holes, |t| {
        t.set_xattr("k", b"v".to_vec())
            .omap_set([(b"k".to_vec(), b"v".to_vec())]);
    })
    .unwrap();
    let c = store.object_digest(PG, &holes).unwrap();
    assert_eq!(c.data_digest, a.data_digest);
    assert_ne!(c.xattr_digest, a.xattr_digest);
    assert_ne!(c.omap_digest, a.omap_digest);
}

/// Flips one byte of the stored value of chunk `chunk` of the only object with data.
fn damage_chunk(engine: &dyn kv::Engine, chunk: u32, position: usize) {
    let keyspace = pg_keyspace(PG);
    let (key, mut value) = section(engine, &keyspace, b'D')
        .into_iter()
        .find(|(key, _)| key.ends_with(&chunk.to_be_bytes()))
        .expect("the chunk is stored");
    value[position] ^= 0x01;
    let mut batch = kv::WriteBatch::new();
    batch.put(&keyspace, key, value);
    engine.write(batch).unwrap();
}

#[test]
fn corruption_is_detected_on_read_and_named() {
    // The chunks stay in the engine, where the test damages them (the block file's own
    // corruption test is in store_blocks).
    let (store, engine) = memory_store_in_engine_only(StoreConfig::default());
    let object = obj("victim");
    let data = pattern(4 * CHUNK as usize, 5);
    commit(&store, &object, |t| {
        t.write_full(data.clone());
    })
    .unwrap();
    damage_chunk(engine.as_ref(), 2, 9 + 1234);

    match store.read(PG, &object, 2 * CHUNK + 10, 10) {
        Err(StoreError::Corruption {
            pg,
            object: named,
            chunk,
            ..
        }) => {
            assert_eq!((pg, named, chunk), (PG, object.clone(), 2));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(matches!(
        store.read(PG, &object, 0, 0),
        Err(StoreError::Corruption { chunk: 2, .. })
    ));
    // Other chunks still read fine.
    assert_eq!(
        store.read(PG, &object, CHUNK, CHUNK).unwrap(),
        &data[CHUNK as usize..2 * CHUNK as usize]
    );
    assert!(matches!(
        store.object_digest(PG, &object),
        Err(StoreError::Corruption { chunk: 2, .. })
    ));
    // A partial write must not launder the damage into a fresh checksum.
    let version = store.stat(PG, &object).unwrap().version;
    assert!(matches!(
        commit(&store, &object, |t| {
            t.write(2 * CHUNK + 5, b"x".to_vec());
        }),
        Err(StoreError::Corruption { chunk: 2, .. })
    ));
    assert_eq!(store.stat(PG, &object).unwrap().version, version);
    // Damage in the checksum itself is caught the same way.
    damage_chunk(engine.as_ref(), 0, 3);
    assert!(matches!(
        store.read(PG, &object, 0, 1),
        Err(StoreError::Corruption { chunk: 0, .. })
    ));
    // Rewriting the whole object (repair from a good copy) needs no old chunk.
    commit(&store, &object, |t| {
        t.write_full(data.clone());
    })
    .unwrap();
    assert_eq!(store.read(PG, &object, 0, 0).unwrap(), data);
}

/// Builds one transaction's sub-ops.
type TxnBuilder = Box<dyn Fn(&mut osd::store::Transaction)>;

#[test]
fn bad_input_is_refused_with_typed_errors() {
    let config = StoreConfig {
        max_object_size: 4 * CHUNK,
        ..StoreConfig::default()
    };
    let (store, _) = memory_store_with(config);
    let write = |object: ObjectId| {
        commit(&store, &object, |t| {
            t.write(0, b"x".to_vec());
        })
    };
    assert!(matches!(
        write(obj("")),
        Err(StoreError::InvalidObjectName { .. })
    ));
    assert!(matches!(
        write(obj(&"n".repeat(2049))),
        Err(StoreError::InvalidObjectName { .. })
    ));
    write(obj(&"n".repeat(2048))).unwrap();
    assert!(matches!(
        write(ObjectId::in_namespace("s".repeat(257), "x")),
        Err(StoreError::InvalidObjectName { .. })
    ));
    assert!(matches!(
        store.read(PG, &obj(""), 0, 1),
        Err(StoreError::InvalidObjectName { .. })
    ));

    let object = obj("o");
    let attempts: Vec<(&str, TxnBuilder)> = vec![
        (
            "write past max",
            Box::new(|t| {
                t.write(4 * CHUNK, b"x".to_vec());
            }),
        ),
        (
            "huge write_full",
            Box::new(|t| {
                t.write_full(vec![0; 4 * CHUNK as usize + 1]);
            }),
        ),
        (
            "truncate past max",
            Box::new(|t| {
                t.truncate(4 * CHUNK + 1);
            }),
        ),
        (
            "offset overflow",
            Box::new(|t| {
                t.write(u64::MAX, b"xy".to_vec());
            }),
        ),
        (
            "zero overflow",
            Box::new(|t| {
                t.zero(u64::MAX, 2);
            }),
        ),
        (
            "empty xattr name",
            Box::new(|t| {
                t.set_xattr("", b"x".to_vec());
            }),
        ),
        (
            "long xattr name",
            Box::new(|t| {
                t.set_xattr("a".repeat(101), b"x".to_vec());
            }),
        ),
        (
            "big xattr value",
            Box::new(|t| {
                t.set_xattr("a", vec![0; 64 * 1024 + 1]);
            }),
        ),
        (
            "long omap key",
            Box::new(|t| {
                t.omap_set([(vec![b'k'; 4097], b"x".to_vec())]);
            }),
        ),
        ("no ops", Box::new(|_| {})),
    ];
    for (what, build) in attempts {
        let result = commit(&store, &object, |t| build(t));
        assert!(
            matches!(
                result,
                Err(StoreError::ObjectTooLarge { .. }
                    | StoreError::OffsetOverflow { .. }
                    | StoreError::InvalidArgument { .. })
            ),
            "{what}: {result:?}"
        );
    }
    // Appends are checked against the size they would reach.
    commit(&store, &object, |t| {
        t.write_full(vec![1; 4 * CHUNK as usize - 1]);
    })
    .unwrap();
    assert!(matches!(
        commit(&store, &object, |t| {
            t.append(b"ab".to_vec());
        }),
        Err(StoreError::ObjectTooLarge { size, .. }) if size == 4 * CHUNK + 1
    ));
    commit(&store, &object, |t| {
        t.append(b"a".to_vec());
    })
    .unwrap();
    assert_eq!(store.stat(PG, &object).unwrap().size, 4 * CHUNK);
}

/// Bytes that lz4 shrinks to a fraction: a short cycle.
fn compressible(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index % 251) as u8).collect()
}

#[test]
fn compressible_chunks_are_stored_compressed_unless_compression_is_off() {
    for compression in [Compression::Lz4, Compression::None] {
        let (store, engine) = memory_store_in_engine_only(StoreConfig {
            compression,
            ..StoreConfig::default()
        });
        let squeezable = compressible(4 * CHUNK as usize);
        let random = pattern(CHUNK as usize, 9);
        commit(&store, &obj("squeezable"), |t| {
            t.write_full(squeezable.clone());
        })
        .unwrap();
        commit(&store, &obj("random"), |t| {
            t.write_full(random.clone());
        })
        .unwrap();
        // A partial overwrite reads, decompresses and rewrites one chunk.
        commit(&store, &obj("squeezable"), |t| {
            t.write(CHUNK + 100, b"patch".to_vec());
        })
        .unwrap();
        let mut expected = squeezable.clone();
        expected[CHUNK as usize + 100..CHUNK as usize + 105].copy_from_slice(b"patch");
        assert_eq!(store.read(PG, &obj("squeezable"), 0, 0).unwrap(), expected);
        assert_eq!(store.read(PG, &obj("random"), 0, 0).unwrap(), random);

        let stored: Vec<usize> = data_chunks(engine.as_ref())
            .iter()
            .map(|(_, value)| value.len())
            .collect();
        // Key order: "random" (1 chunk) before "squeezable" (4 chunks).
        assert_eq!(stored.len(), 5, "{compression:?}");
        assert_eq!(stored[0], 9 + CHUNK as usize, "random data stays raw");
        for &len in &stored[1..] {
            match compression {
                Compression::Lz4 => assert!(len < CHUNK as usize / 8, "{len} bytes stored"),
                Compression::None => assert_eq!(len, 9 + CHUNK as usize),
            }
        }
    }
}

#[test]
fn a_damaged_compressed_chunk_is_reported_not_decompressed() {
    let (store, engine) = memory_store();
    let object = obj("squeezed");
    commit(&store, &object, |t| {
        t.write_full(compressible(2 * CHUNK as usize));
    })
    .unwrap();
    damage_chunk(engine.as_ref(), 1, 20);
    assert!(matches!(
        store.read(PG, &object, CHUNK, 10),
        Err(StoreError::Corruption { chunk: 1, .. })
    ));
    assert_eq!(store.read(PG, &object, 0, 10).unwrap(), compressible(10));
}
