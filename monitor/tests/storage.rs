//! The Raft store over the `kv` engine: what is written survives a reopen, conflicting
//! suffixes are replaced, compaction keeps the snapshot and the terms raft needs, and the
//! `raft::Storage` answers follow the trait's contract.

use std::sync::Arc;

use monitor::store::RaftStore;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage, StorageError};

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec().into(),
        ..Entry::default()
    }
}

fn open(dir: &std::path::Path) -> RaftStore {
    let engine = kv::open(kv::Backend::Fjall, dir, &kv::Options::default()).expect("engine");
    RaftStore::open(engine).expect("store")
}

fn snapshot(index: u64, term: u64, voters: &[u64], data: &[u8]) -> Snapshot {
    let mut snapshot = Snapshot {
        data: data.to_vec().into(),
        ..Snapshot::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(ConfState {
        voters: voters.to_vec(),
        ..ConfState::default()
    });
    snapshot
}

fn all(store: &RaftStore) -> Vec<Entry> {
    store
        .entries(
            store.first_index().unwrap(),
            store.last_index().unwrap() + 1,
            None,
            GetEntriesContext::empty(false),
        )
        .unwrap()
}

#[test]
fn entries_and_hard_state_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        assert!(!store.is_initialized());
        store
            .bootstrap(snapshot(1, 1, &[1, 2, 3], b"empty"))
            .unwrap();
        let hard_state = HardState {
            term: 2,
            vote: 3,
            commit: 3,
            ..HardState::default()
        };
        let entries: Vec<Entry> = (2..=5).map(|i| entry(i, 2, &[i as u8])).collect();
        store.append(&entries, Some(&hard_state), true).unwrap();
    }
    let store = open(dir.path());
    assert!(store.is_initialized());
    let state = store.initial_state().unwrap();
    assert_eq!(state.hard_state.term, 2);
    assert_eq!(state.hard_state.vote, 3);
    assert_eq!(state.hard_state.commit, 3);
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    assert_eq!(store.first_index().unwrap(), 2);
    assert_eq!(store.last_index().unwrap(), 5);
    assert_eq!(store.term(1).unwrap(), 1, "the snapshot's term");
    assert_eq!(store.term(4).unwrap(), 2);
    let entries = all(&store);
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[2].data.as_ref(), &[4u8]);
    assert_eq!(store.latest_snapshot().get_data(), b"empty");
}

#[test]
fn a_conflicting_suffix_is_replaced_durably() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store.bootstrap(snapshot(1, 1, &[1], b"")).unwrap();
        let entries: Vec<Entry> = (2..=6).map(|i| entry(i, 2, b"old")).collect();
        store.append(&entries, None, true).unwrap();
        store
            .append(&[entry(4, 3, b"new"), entry(5, 3, b"new")], None, true)
            .unwrap();
        assert_eq!(store.last_index().unwrap(), 5);
    }
    let store = open(dir.path());
    assert_eq!(store.last_index().unwrap(), 5, "entry 6 was truncated");
    let terms: Vec<u64> = all(&store).iter().map(|entry| entry.term).collect();
    assert_eq!(terms, vec![2, 2, 3, 3]);
    drop(store);
    let mut reopened = open(dir.path());
    assert!(
        reopened.append(&[entry(9, 3, b"x")], None, false).is_err(),
        "entries after a gap are refused"
    );
    assert_eq!(reopened.last_index().unwrap(), 5);
}

#[test]
fn compaction_keeps_the_snapshot_and_the_terms_raft_needs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store.bootstrap(snapshot(1, 1, &[1, 2], b"")).unwrap();
        let entries: Vec<Entry> = (2..=100).map(|i| entry(i, 2 + i / 50, b"e")).collect();
        let hard_state = HardState {
            term: 4,
            commit: 80,
            ..HardState::default()
        };
        store.append(&entries, Some(&hard_state), true).unwrap();
        // Snapshot at 80, keep 10 entries behind it.
        store
            .compact(
                snapshot(80, store.term(80).unwrap(), &[1, 2], b"state@80"),
                71,
            )
            .unwrap();
        assert_eq!(store.first_index().unwrap(), 71);
    }
    let store = open(dir.path());
    assert_eq!(store.first_index().unwrap(), 71);
    assert_eq!(store.last_index().unwrap(), 100);
    assert_eq!(store.snapshot_index(), 80);
    assert_eq!(
        store.term(70).unwrap(),
        3,
        "the term just before the first kept entry"
    );
    assert_eq!(store.term(80).unwrap(), 3);
    assert_eq!(
        store.term(69),
        Err(raft::Error::Store(StorageError::Compacted))
    );
    assert_eq!(
        store.entries(60, 72, None, GetEntriesContext::empty(false)),
        Err(raft::Error::Store(StorageError::Compacted))
    );
    assert_eq!(
        store.term(101),
        Err(raft::Error::Store(StorageError::Unavailable))
    );
    let snapshot = store.snapshot(0, 2).unwrap();
    assert_eq!(snapshot.get_metadata().index, 80);
    assert_eq!(snapshot.get_data(), b"state@80");
    assert_eq!(
        store.snapshot(90, 2),
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    );
    // max_size limits the answer but never below one entry.
    let one = store
        .entries(71, 100, Some(1), GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(one.len(), 1);
    // The disk keeps only the kept entries: 30 log keys, not 100.
    let engine: Arc<dyn kv::Engine> = Arc::clone(store.engine());
    let keys = engine
        .scan(monitor::store::RAFT_KEYSPACE, kv::KeyRange::prefix(b"log/"))
        .unwrap()
        .count();
    assert_eq!(keys, 30);
}

#[test]
fn installing_a_snapshot_replaces_the_log_and_moves_the_commit_index() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store.bootstrap(snapshot(1, 1, &[1, 2, 3], b"")).unwrap();
        let entries: Vec<Entry> = (2..=10).map(|i| entry(i, 2, b"e")).collect();
        store.append(&entries, None, true).unwrap();
        store
            .install_snapshot(snapshot(500, 7, &[1, 2, 3, 4], b"leader state"))
            .unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.first_index().unwrap(), 501);
    assert_eq!(store.last_index().unwrap(), 500);
    assert_eq!(store.term(500).unwrap(), 7);
    let state = store.initial_state().unwrap();
    assert_eq!(state.hard_state.commit, 500);
    assert_eq!(state.conf_state.voters, vec![1, 2, 3, 4]);
    assert_eq!(store.latest_snapshot().get_data(), b"leader state");
}

#[test]
fn a_lost_commit_index_never_falls_behind_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store.bootstrap(snapshot(1, 1, &[1], b"")).unwrap();
        let entries: Vec<Entry> = (2..=20).map(|i| entry(i, 2, b"e")).collect();
        // Hard state with commit 2, then a snapshot at 15 (the commit index written with
        // it is what reopening must find, even if later unsynced commits are lost).
        let hard_state = HardState {
            term: 2,
            commit: 2,
            ..HardState::default()
        };
        store.append(&entries, Some(&hard_state), true).unwrap();
        store.compact(snapshot(15, 2, &[1], b"s"), 16).unwrap();
    }
    let store = open(dir.path());
    assert!(store.initial_state().unwrap().hard_state.commit >= 15);
}
