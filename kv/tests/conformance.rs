//! The conformance suite: every backend must behave the same through the `Engine` trait.
//!
//! Each check is a function taking the backend; `conformance_tests!` instantiates all of
//! them per backend, so a failure names both (`fjall::range_bounds`). Reopen checks expect
//! durable backends to keep everything synced and the memory backend to start empty.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use common::TempDir;
use kv::keys::{MAX_KEY_LEN, MAX_VALUE_LEN};
use kv::{Backend, Engine, Error, KeyRange, Options, WriteBatch};

/// An engine in a scratch directory that can be closed and reopened.
struct Harness {
    backend: Backend,
    dir: TempDir,
    engine: Option<Arc<dyn Engine>>,
}

impl Harness {
    fn new(backend: Backend) -> Self {
        let dir = TempDir::new(backend.name());
        let engine = kv::open(backend, dir.path(), &Options::default()).expect("open");
        assert_eq!(engine.backend(), backend);
        Self {
            backend,
            dir,
            engine: Some(engine),
        }
    }

    fn engine(&self) -> &dyn Engine {
        self.engine.as_deref().expect("engine is open")
    }

    /// Closes the engine (every handle must be gone) and opens the directory again.
    ///
    /// sled releases its directory lock only when its background flusher thread has also
    /// let go of the database, a moment after the last handle is dropped, so the reopen is
    /// retried until it succeeds or a deadline passes.
    fn reopen(&mut self) {
        let engine = self.engine.take().expect("engine is open");
        assert_eq!(Arc::strong_count(&engine), 1, "a test kept a handle");
        drop(engine);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match kv::open(self.backend, self.dir.path(), &Options::default()) {
                Ok(engine) => {
                    self.engine = Some(engine);
                    return;
                }
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(error) => panic!("reopen: {error:?}"),
            }
        }
    }

    fn put(&self, keyspace: &str, key: &[u8], value: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.put(keyspace, key, value);
        self.engine().write(batch).expect("put");
    }

    fn get(&self, keyspace: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.engine().get(keyspace, key).expect("get")
    }

    fn scan(&self, keyspace: &str, range: KeyRange) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.engine()
            .scan(keyspace, range)
            .expect("scan")
            .collect::<Result<_, _>>()
            .expect("scan entry")
    }

    fn scan_keys(&self, keyspace: &str, range: KeyRange) -> Vec<Vec<u8>> {
        self.scan(keyspace, range)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn point_operations(backend: Backend) {
    let h = Harness::new(backend);
    assert_eq!(
        h.get("ks", b"a"),
        None,
        "a keyspace never written reads empty"
    );
    h.put("ks", b"a", b"1");
    assert_eq!(h.get("ks", b"a"), Some(b"1".to_vec()));
    h.put("ks", b"a", b"two");
    assert_eq!(h.get("ks", b"a"), Some(b"two".to_vec()), "overwrite");
    let mut batch = WriteBatch::new();
    batch
        .delete("ks", b"a".to_vec())
        .delete("ks", b"never-there".to_vec());
    batch.delete("missing-keyspace", b"x".to_vec());
    h.engine().write(batch).unwrap();
    assert_eq!(h.get("ks", b"a"), None, "deleted");
    h.put("ks", b"a", b"back");
    assert_eq!(
        h.get("ks", b"a"),
        Some(b"back".to_vec()),
        "re-put after delete"
    );
    h.engine().write(WriteBatch::new()).unwrap();
    h.engine().sync().unwrap();
}

fn scan_is_ordered_both_ways(backend: Backend) {
    let h = Harness::new(backend);
    let keys: Vec<&[u8]> = vec![
        b"b",
        b"a\x00",
        b"\xff",
        b"a",
        b"ab",
        b"a\xff\xff",
        b"\x00\x00",
        b"B",
        b"aa",
    ];
    let mut batch = WriteBatch::new();
    for (i, k) in keys.iter().enumerate() {
        batch.put("ks", *k, vec![i as u8]);
    }
    h.engine().write(batch).unwrap();
    let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    expected.sort();
    assert_eq!(
        h.scan_keys("ks", KeyRange::all()),
        expected,
        "bytewise ascending"
    );
    let reversed: Vec<Vec<u8>> = h
        .engine()
        .scan("ks", KeyRange::all())
        .unwrap()
        .rev()
        .map(|e| e.unwrap().0)
        .collect();
    expected.reverse();
    assert_eq!(reversed, expected, "descending from the back");
    // Values travel with their keys.
    for (k, v) in h.scan("ks", KeyRange::all()) {
        let i = keys.iter().position(|x| *x == k.as_slice()).unwrap();
        assert_eq!(v, vec![i as u8]);
    }
}

fn visit_agrees_with_scan_and_stops_when_told(backend: Backend) {
    let h = Harness::new(backend);
    let mut batch = WriteBatch::new();
    for i in 0..200u32 {
        // Large values too, which fjall keeps in blob files.
        let value = vec![i as u8; if i % 10 == 0 { 40 << 10 } else { 8 }];
        batch.put("ks", key(i), value);
    }
    batch.put("other", key(5), b"not this keyspace".to_vec());
    h.engine().write(batch).unwrap();
    let range = KeyRange::new(Bound::Included(key(20)), Bound::Excluded(key(150)));
    let mut visited = Vec::new();
    h.engine()
        .visit("ks", range.clone(), &mut |k, v| {
            visited.push((k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
    assert_eq!(visited, h.scan("ks", range.clone()));
    assert_eq!(visited.len(), 130);
    let mut seen = 0;
    h.engine()
        .visit("ks", range, &mut |_, _| {
            seen += 1;
            seen < 7
        })
        .unwrap();
    assert_eq!(seen, 7, "false stops the walk");
    let mut none = 0;
    h.engine()
        .visit("missing", KeyRange::all(), &mut |_, _| {
            none += 1;
            true
        })
        .unwrap();
    assert_eq!(none, 0);
    assert!(h
        .engine()
        .visit("", KeyRange::all(), &mut |_, _| true)
        .is_err());
}

fn both_ends_meet_without_repeats(backend: Backend) {
    let h = Harness::new(backend);
    let mut batch = WriteBatch::new();
    for i in 0..1000 {
        batch.put("ks", key(i), b"v".to_vec());
    }
    h.engine().write(batch).unwrap();
    let mut scan = h.engine().scan("ks", KeyRange::all()).unwrap();
    let (mut front, mut back) = (Vec::new(), Vec::new());
    loop {
        let Some(f) = scan.next() else { break };
        front.push(f.unwrap().0);
        for _ in 0..3 {
            if let Some(b) = scan.next_back() {
                back.push(b.unwrap().0);
            }
        }
    }
    back.reverse();
    front.extend(back);
    assert_eq!(front, (0..1000).map(key).collect::<Vec<_>>());
}

fn range_bounds(backend: Backend) {
    let h = Harness::new(backend);
    let mut model = BTreeMap::new();
    let mut batch = WriteBatch::new();
    for k in [&b"a"[..], b"b", b"ba", b"bb", b"c", b"c\x00", b"d", b"\xff"] {
        batch.put("ks", k, k);
        model.insert(k.to_vec(), k.to_vec());
    }
    h.put("before", b"zzz", b"neighbour");
    h.put("ks2", b"a", b"neighbour");
    h.engine().write(batch).unwrap();

    let points: [&[u8]; 8] = [b"", b"a", b"b", b"b\x00", b"bb", b"c", b"e", b"\xff"];
    let mut bounds = vec![Bound::Unbounded];
    for p in points {
        bounds.push(Bound::Included(p.to_vec()));
        bounds.push(Bound::Excluded(p.to_vec()));
    }
    for start in &bounds {
        for end in &bounds {
            let range = KeyRange::new(start.clone(), end.clone());
            let expected: Vec<Vec<u8>> = model
                .keys()
                .filter(|k| range.contains(k))
                .cloned()
                .collect();
            assert_eq!(
                h.scan_keys("ks", range.clone()),
                expected,
                "range {start:?}..{end:?}"
            );
            let mut reversed = h.scan_keys("ks", range.clone());
            reversed.reverse();
            let backwards: Vec<Vec<u8>> = h
                .engine()
                .scan("ks", range)
                .unwrap()
                .rev()
                .map(|e| e.unwrap().0)
                .collect();
            assert_eq!(backwards, reversed, "reverse range {start:?}..{end:?}");
        }
    }
    assert_eq!(
        h.scan_keys("ks", KeyRange::prefix(b"b")),
        vec![b"b".to_vec(), b"ba".to_vec(), b"bb".to_vec()]
    );
    assert_eq!(
        h.scan_keys("ks", KeyRange::prefix(b"\xff")),
        vec![b"\xff".to_vec()]
    );
    assert_eq!(
        h.scan_keys("ks", KeyRange::between(b"c".to_vec(), b"a".to_vec())),
        Vec::<Vec<u8>>::new(),
        "start after end is empty"
    );
    assert!(h.scan_keys("nothing-here", KeyRange::all()).is_empty());
}

fn keyspaces_are_independent(backend: Backend) {
    let h = Harness::new(backend);
    // Names that are prefixes of each other must not bleed into one another.
    for ks in ["a", "ab", "a.b", "b"] {
        h.put(ks, b"k", ks.as_bytes());
        h.put(ks, b"\xff\xff", ks.as_bytes());
    }
    for ks in ["a", "ab", "a.b", "b"] {
        assert_eq!(h.get(ks, b"k"), Some(ks.as_bytes().to_vec()));
        let entries = h.scan(ks, KeyRange::all());
        assert_eq!(entries.len(), 2, "keyspace {ks} holds only its own keys");
        assert!(entries.iter().all(|(_, v)| v == ks.as_bytes()));
    }
    assert_eq!(h.engine().keyspaces().unwrap(), vec!["a", "a.b", "ab", "b"]);
    let mut batch = WriteBatch::new();
    batch.delete_range("ab", KeyRange::all());
    h.engine().write(batch).unwrap();
    assert_eq!(
        h.engine().keyspaces().unwrap(),
        vec!["a", "a.b", "b"],
        "an emptied keyspace is not listed"
    );
    assert_eq!(h.scan("a", KeyRange::all()).len(), 2);
}

fn batches_apply_whole_and_last_write_wins(backend: Backend) {
    let h = Harness::new(backend);
    h.put("log", b"old", b"x");
    let mut batch = WriteBatch::new();
    batch
        .put("log", b"1".to_vec(), b"entry".to_vec())
        .put("state", b"applied".to_vec(), b"1".to_vec())
        .delete("log", b"old".to_vec())
        .put("state", b"twice".to_vec(), b"first".to_vec())
        .put("state", b"twice".to_vec(), b"second".to_vec())
        .put("state", b"gone".to_vec(), b"soon".to_vec())
        .delete("state", b"gone".to_vec());
    assert_eq!(batch.len(), 7);
    h.engine().write(batch).unwrap();
    assert_eq!(h.get("log", b"1"), Some(b"entry".to_vec()));
    assert_eq!(h.get("log", b"old"), None);
    assert_eq!(h.get("state", b"applied"), Some(b"1".to_vec()));
    assert_eq!(h.get("state", b"twice"), Some(b"second".to_vec()));
    assert_eq!(h.get("state", b"gone"), None);

    // One bad operation refuses the whole batch: nothing of it lands.
    let mut bad = WriteBatch::new();
    bad.put("log", b"2".to_vec(), b"entry".to_vec())
        .delete("log", b"1".to_vec())
        .put("bad name!", b"k".to_vec(), b"v".to_vec());
    assert!(matches!(
        h.engine().write(bad),
        Err(Error::InvalidKeyspace { .. })
    ));
    assert_eq!(h.get("log", b"2"), None);
    assert_eq!(h.get("log", b"1"), Some(b"entry".to_vec()));
}

fn delete_range(backend: Backend) {
    let h = Harness::new(backend);
    let mut batch = WriteBatch::new();
    for i in 0..300 {
        batch.put("pg", key(i), b"v".to_vec());
        batch.put("other", key(i), b"v".to_vec());
    }
    h.engine().write(batch).unwrap();

    let mut batch = WriteBatch::new();
    batch
        .put("pg", b"key000100x".to_vec(), b"earlier in batch".to_vec())
        .delete_range("pg", KeyRange::between(key(100), key(200)))
        .put("pg", key(150), b"later in batch".to_vec());
    h.engine().write(batch).unwrap();
    let remaining = h.scan_keys("pg", KeyRange::all());
    let mut expected: Vec<Vec<u8>> = (0..100).chain(200..300).map(key).collect();
    expected.push(key(150));
    expected.sort();
    assert_eq!(remaining, expected);
    assert_eq!(h.get("pg", &key(150)), Some(b"later in batch".to_vec()));
    assert_eq!(
        h.scan("other", KeyRange::all()).len(),
        300,
        "other keyspaces untouched"
    );

    let mut batch = WriteBatch::new();
    batch
        .delete_range("pg", KeyRange::all())
        .delete_range("never-written", KeyRange::all())
        .delete_range("other", KeyRange::between(b"z".to_vec(), b"a".to_vec()));
    h.engine().write(batch).unwrap();
    assert!(h.scan("pg", KeyRange::all()).is_empty());
    assert_eq!(
        h.scan("other", KeyRange::all()).len(),
        300,
        "an inverted range deletes nothing"
    );
}

fn empty_keys_are_refused_empty_values_kept(backend: Backend) {
    let h = Harness::new(backend);
    let mut batch = WriteBatch::new();
    batch.put("ks", Vec::new(), b"v".to_vec());
    assert!(matches!(h.engine().write(batch), Err(Error::EmptyKey)));
    assert!(matches!(h.engine().get("ks", b""), Err(Error::EmptyKey)));
    // The one zero byte is the engine's own (see `kv::keys::RESERVED_KEY`).
    let mut batch = WriteBatch::new();
    batch.put("ks", b"\0".to_vec(), b"v".to_vec());
    assert!(matches!(h.engine().write(batch), Err(Error::ReservedKey)));
    assert!(matches!(
        h.engine().get("ks", b"\0"),
        Err(Error::ReservedKey)
    ));
    h.put("ks", b"k", b"");
    assert_eq!(
        h.get("ks", b"k"),
        Some(Vec::new()),
        "an empty value is not an absent one"
    );
    assert_eq!(
        h.scan("ks", KeyRange::all()),
        vec![(b"k".to_vec(), Vec::new())]
    );
}

fn bad_names_and_sizes_are_refused(backend: Backend) {
    let h = Harness::new(backend);
    for name in ["", "has space", "slash/name", &"n".repeat(129)] {
        assert!(
            matches!(
                h.engine().get(name, b"k"),
                Err(Error::InvalidKeyspace { .. })
            ),
            "{name:?}"
        );
        assert!(
            matches!(
                h.engine().scan(name, KeyRange::all()),
                Err(Error::InvalidKeyspace { .. })
            ),
            "{name:?}"
        );
    }
    let mut batch = WriteBatch::new();
    batch.put("ks", vec![1u8; MAX_KEY_LEN + 1], b"v".to_vec());
    assert!(matches!(
        h.engine().write(batch),
        Err(Error::KeyTooLarge { .. })
    ));
    let mut batch = WriteBatch::new();
    batch.put("ks", vec![1u8; MAX_KEY_LEN], b"v".to_vec());
    h.engine()
        .write(batch)
        .expect("a key of exactly the limit is fine");
    let too_long = vec![1u8; MAX_KEY_LEN + 1];
    assert!(matches!(
        h.engine().scan("ks", KeyRange::from_key(too_long.clone())),
        Err(Error::KeyTooLarge { .. })
    ));
    let mut batch = WriteBatch::new();
    batch.delete_range("ks", KeyRange::between(b"a".to_vec(), too_long));
    assert!(matches!(
        h.engine().write(batch),
        Err(Error::KeyTooLarge { .. })
    ));
    let mut batch = WriteBatch::new();
    batch.put("ks", b"k".to_vec(), vec![0u8; MAX_VALUE_LEN + 1]);
    assert!(matches!(
        h.engine().write(batch),
        Err(Error::ValueTooLarge { .. })
    ));
    assert_eq!(h.get("ks", b"k"), None);
}

fn large_values(backend: Backend) {
    let mut h = Harness::new(backend);
    let big: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut other = big.clone();
    other.reverse();
    let mut batch = WriteBatch::new();
    batch.put("data", b"big".to_vec(), big.clone());
    batch.put("data", b"other".to_vec(), other.clone());
    batch.put("data", b"small".to_vec(), b"s".to_vec());
    h.engine().write_sync(batch).unwrap();
    assert!(
        h.get("data", b"big") == Some(big.clone()),
        "4 MiB value read back intact"
    );
    h.reopen();
    if backend.is_durable() {
        assert!(
            h.get("data", b"big") == Some(big),
            "4 MiB value intact after reopen"
        );
        assert!(h.get("data", b"other") == Some(other));
        assert_eq!(h.get("data", b"small"), Some(b"s".to_vec()));
    } else {
        assert_eq!(h.get("data", b"big"), None);
    }
}

fn many_keys(backend: Backend) {
    let mut h = Harness::new(backend);
    const COUNT: u32 = 20_000;
    for chunk in 0..COUNT / 1000 {
        let mut batch = WriteBatch::new();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            batch.put("many", key(i), i.to_be_bytes());
        }
        h.engine().write(batch).unwrap();
    }
    h.engine().sync().unwrap();
    let check = |h: &Harness| {
        let mut expected = 0u32;
        for entry in h.engine().scan("many", KeyRange::all()).unwrap() {
            let (k, v) = entry.unwrap();
            assert_eq!(k, key(expected));
            assert_eq!(v, expected.to_be_bytes());
            expected += 1;
        }
        assert_eq!(expected, COUNT);
        assert_eq!(
            h.engine()
                .scan("many", KeyRange::all())
                .unwrap()
                .rev()
                .count(),
            COUNT as usize
        );
        assert_eq!(
            h.get("many", &key(12_345)),
            Some(12_345u32.to_be_bytes().to_vec())
        );
    };
    check(&h);
    h.reopen();
    if backend.is_durable() {
        check(&h);
    } else {
        assert!(h.scan("many", KeyRange::all()).is_empty());
    }
}

fn reopen_keeps_synced_writes(backend: Backend) {
    let mut h = Harness::new(backend);
    let mut batch = WriteBatch::new();
    batch.put("raft_log", 1u64.to_be_bytes(), b"e1".to_vec());
    batch.put("raft_log", 2u64.to_be_bytes(), b"e2".to_vec());
    batch.put("raft_state", b"hard".to_vec(), b"term 3".to_vec());
    h.engine().write_sync(batch).unwrap();
    let mut batch = WriteBatch::new();
    batch.delete("raft_log", 1u64.to_be_bytes());
    h.engine().write_sync(batch).unwrap();
    h.reopen();
    if backend.is_durable() {
        assert_eq!(
            h.get("raft_log", &1u64.to_be_bytes()),
            None,
            "the delete persisted"
        );
        assert_eq!(h.get("raft_log", &2u64.to_be_bytes()), Some(b"e2".to_vec()));
        assert_eq!(h.get("raft_state", b"hard"), Some(b"term 3".to_vec()));
        assert_eq!(
            h.engine().keyspaces().unwrap(),
            vec!["raft_log", "raft_state"]
        );
        // The reopened store keeps working.
        h.put("raft_log", &3u64.to_be_bytes(), b"e3");
        h.engine().sync().unwrap();
        let last = h
            .engine()
            .scan("raft_log", KeyRange::all())
            .unwrap()
            .next_back();
        assert_eq!(last.unwrap().unwrap().0, 3u64.to_be_bytes().to_vec());
    } else {
        assert!(
            h.engine().keyspaces().unwrap().is_empty(),
            "memory keeps nothing"
        );
    }
}

fn concurrent_writers_share_syncs(backend: Backend) {
    let h = Harness::new(backend);
    let engine = h.engine.clone().unwrap();
    const THREADS: u32 = 4;
    const WRITES: u32 = 40;
    let syncs_before = engine.syncs_performed();
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                for i in 0..WRITES {
                    let mut batch = WriteBatch::new();
                    batch.put("shared", key(t * 1000 + i), t.to_be_bytes());
                    engine.write_sync(batch).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let syncs = engine.syncs_performed() - syncs_before;
    assert!(
        syncs >= 1 && syncs <= u64::from(THREADS * WRITES),
        "{syncs} syncs"
    );
    assert_eq!(
        h.scan("shared", KeyRange::all()).len(),
        (THREADS * WRITES) as usize
    );
    engine.sync().unwrap();
    assert_eq!(
        engine.syncs_performed() - syncs_before,
        syncs,
        "nothing new to sync"
    );
}

fn writing_while_scanning(backend: Backend) {
    let h = Harness::new(backend);
    let mut batch = WriteBatch::new();
    for i in 0..500 {
        batch.put("ks", key(i), b"v".to_vec());
    }
    h.engine().write(batch).unwrap();
    let mut seen = Vec::new();
    for entry in h
        .engine()
        .scan("ks", KeyRange::between(key(0), key(500)))
        .unwrap()
    {
        let (k, _) = entry.unwrap();
        // Writes from inside the scan must not deadlock or disturb what it yields.
        let mut batch = WriteBatch::new();
        batch
            .delete("ks", k.clone())
            .put("ks", key(1000 + seen.len() as u32), b"w".to_vec());
        h.engine().write(batch).unwrap();
        seen.push(k);
    }
    assert_eq!(seen, (0..500).map(key).collect::<Vec<_>>());
    assert_eq!(h.scan("ks", KeyRange::all()).len(), 500);
    assert!(h
        .scan_keys("ks", KeyRange::all())
        .iter()
        .all(|k| k >= &key(1000)));
}

fn a_directory_has_one_engine_at_a_time(backend: Backend) {
    let h = Harness::new(backend);
    h.put("ks", b"k", b"v");
    let second = kv::open(backend, h.dir.path(), &Options::default());
    if backend.is_durable() {
        assert!(
            matches!(second, Err(Error::Storage { .. })),
            "a second open of a live store must fail, got {second:?}"
        );
        assert_eq!(
            h.get("ks", b"k"),
            Some(b"v".to_vec()),
            "the first engine is unharmed"
        );
    } else {
        let second = second.expect("memory engines are independent");
        assert_eq!(second.get("ks", b"k").unwrap(), None);
    }
}

macro_rules! conformance_tests {
    ($backend:expr) => {
        use super::*;
        #[test]
        fn point_operations() {
            super::point_operations($backend)
        }
        #[test]
        fn scan_is_ordered_both_ways() {
            super::scan_is_ordered_both_ways($backend)
        }
        #[test]
        fn visit_agrees_with_scan_and_stops_when_told() {
            super::visit_agrees_with_scan_and_stops_when_told($backend)
        }
        #[test]
        fn both_ends_meet_without_repeats() {
            super::both_ends_meet_without_repeats($backend)
        }
        #[test]
        fn range_bounds() {
            super::range_bounds($backend)
        }
        #[test]
        fn keyspaces_are_independent() {
            super::keyspaces_are_independent($backend)
        }
        #[test]
        fn batches_apply_whole_and_last_write_wins() {
            super::batches_apply_whole_and_last_write_wins($backend)
        }
        #[test]
        fn delete_range() {
            super::delete_range($backend)
        }
        #[test]
        fn empty_keys_are_refused_empty_values_kept() {
            super::empty_keys_are_refused_empty_values_kept($backend)
        }
        #[test]
        fn bad_names_and_sizes_are_refused() {
            super::bad_names_and_sizes_are_refused($backend)
        }
        #[test]
        fn large_values() {
            super::large_values($backend)
        }
        #[test]
        fn many_keys() {
            super::many_keys($backend)
        }
        #[test]
        fn reopen_keeps_synced_writes() {
            super::reopen_keeps_synced_writes($backend)
        }
        #[test]
        fn concurrent_writers_share_syncs() {
            super::concurrent_writers_share_syncs($backend)
        }
        #[test]
        fn a_directory_has_one_engine_at_a_time() {
            super::a_directory_has_one_engine_at_a_time($backend)
        }
        #[test]
        fn writing_while_scanning() {
            super::writing_while_scanning($backend)
        }
    };
}

mod fjall {
    conformance_tests!(Backend::Fjall);
}

mod sled {
    conformance_tests!(Backend::Sled);
}

mod memory {
    conformance_tests!(Backend::Memory);
}
