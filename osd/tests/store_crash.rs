//! Crash test: a child process commits transactions to a fjall-backed store from several
//! threads (one PG each, so their commits share syncs) and is killed with SIGKILL while it
//! writes; after reopening, every commit that was acknowledged must be there, whole, and
//! each PG must equal a replay of its first `last_update` commits.
//!
//! The test binary is its own child: with `OSD_CRASH_DIR` set it runs the writer instead of
//! the test (hence `harness = false` in Cargo.toml).
//!
//! Commit `v` of a PG (the PG version it gets; each thread always commits its PG's next
//! one) is a pure function of `v`: on object `obj{v % 16}` it either rewrites the whole object (variable
//! length, up to 200 KiB, so several chunks) or writes 5000 bytes at an offset (a partial
//! chunk update), and sets omap `last` = v. So the parent can rebuild the expected state of
//! every object by replaying commits `1..=last_update` in memory.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clustermap::PgId;
use common::{fjall_store, obj, pattern, TempDir};
use osd::store::{ObjectStore, ReqId, StoreConfig, StoreError, Transaction};

const CHILD_DIR_VAR: &str = "OSD_CRASH_DIR";
const OBJECTS: u64 = 16;
/// The child stops by itself after this many commits, so a lost parent leaves no runaway.
const MAX_COMMITS_PER_RUN: u64 = 20_000;
const KILLS: u64 = 3;
/// Writer threads in the child, each with its own PG.
const THREADS: u32 = 4;

fn pg_of_thread(thread: u32) -> PgId {
    PgId::new(1, thread)
}

fn object_of(version: u64) -> String {
    format!("obj{}", version % OBJECTS)
}

/// What commit `version` does: `(offset, data, whole)`; `whole` replaces the object.
fn operation(version: u64) -> (u64, Vec<u8>, bool) {
    if version.is_multiple_of(3) {
        let offset = (version * 131) % (100 << 10);
        (offset, pattern(5000, version), false)
    } else {
        let len = (version * 7919) % (200 << 10) + 1;
        (0, pattern(len as usize, version), true)
    }
}

fn config() -> StoreConfig {
    StoreConfig {
        pg_log_max_entries: 200,
        pg_log_trim_batch: 20,
        ..StoreConfig::default()
    }
}

fn open(dir: &Path) -> ObjectStore {
    let (store, _) = fjall_store(dir, config());
    for thread in 0..THREADS {
        match store.create_pg(pg_of_thread(thread)) {
            Ok(()) | Err(StoreError::PgExists { .. }) => {}
            Err(error) => panic!("create pg: {error}"),
        }
    }
    store
}

/// One writer thread: continue its PG's commit sequence after whatever survived.
fn write_pg(store: &ObjectStore, pg: PgId) {
    for _ in 0..MAX_COMMITS_PER_RUN {
        let version = store.pg_info(pg).expect("pg info").last_update.version + 1;
        let (offset, data, whole) = operation(version);
        let mut txn = Transaction::new(pg, obj(&object_of(version)), 1);
        txn.reqid(ReqId::new(u64::from(pg.ps), version));
        if whole {
            txn.write_full(data);
        } else {
            txn.write(offset, data);
        }
        txn.omap_set([(b"last".to_vec(), version.to_be_bytes().to_vec())]);
        let committed = store.commit(txn).expect("commit");
        assert_eq!(committed.version, version);
        // Printed only after commit returned, i.e. after the commit is durable.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "acked {} {version}", pg.ps).expect("write to the parent");
        stdout.flush().expect("flush to the parent");
    }
}

/// The child: one writer thread per PG, until killed.
fn run_child(dir: &Path) {
    let store = open(dir);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let store = &store;
            scope.spawn(move || write_pg(store, pg_of_thread(thread)));
        }
    });
}

/// Runs a child until it acknowledged `acks` more commits, kills it, and returns the last
/// acknowledged version of each PG.
fn run_and_kill(dir: &Path, acks: u64) -> HashMap<u32, u64> {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("child stdout");
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(ack) = line.strip_prefix("acked ") else {
                continue;
            };
            // A line cut by the kill is no acknowledgement.
            let Some((Ok(ps), Ok(version))) = ack
                .split_once(' ')
                .map(|(ps, version)| (ps.parse::<u32>(), version.parse::<u64>()))
            else {
                continue;
            };
            if lines.send((ps, version)).is_err() {
                break;
            }
        }
    });
    let mut last = HashMap::new();
    let mut record = |(ps, version): (u32, u64)| {
        let entry = last.entry(ps).or_insert(0);
        *entry = version.max(*entry);
    };
    for _ in 0..acks {
        match received.recv_timeout(Duration::from_secs(120)) {
            Ok(ack) => record(ack),
            Err(error) => {
                let _ = child.kill();
                panic!("the writer stopped acknowledging: {error}");
            }
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    // The pipe closed with the child, so the reader ends; acks it read before count too.
    reader.join().expect("the reader thread");
    received.try_iter().for_each(&mut record);
    last
}

/// Checks each reopened PG against a replay of its commits `1..=last_update`; returns the
/// total number of commits found.
fn verify(dir: &Path, last_acked: &HashMap<u32, u64>) -> u64 {
    let store = open(dir);
    let mut total = 0;
    for thread in 0..THREADS {
        let pg = pg_of_thread(thread);
        let acked = last_acked.get(&thread).copied().unwrap_or(0);
        let info = store.pg_info(pg).expect("pg info");
        let last = info.last_update.version;
        assert!(
            last >= acked,
            "pg {pg}: commit {acked} was acknowledged but the store ends at {last}"
        );
        total += last;
        let mut model: HashMap<String, (Vec<u8>, u64)> = HashMap::new();
        for version in 1..=last {
            let (offset, data, whole) = operation(version);
            let entry = model.entry(object_of(version)).or_default();
            if whole {
                entry.0 = data;
            } else {
                let end = offset as usize + data.len();
                if entry.0.len() < end {
                    entry.0.resize(end, 0);
                }
                entry.0[offset as usize..end].copy_from_slice(&data);
            }
            entry.1 = version;
        }
        for (name, (content, version)) in &model {
            let object = obj(name);
            let read = store.read(pg, &object, 0, 0).expect("read after crash");
            assert!(
                read == *content,
                "pg {pg}: {name} differs from the replay of 1..={last}"
            );
            let omap = store
                .omap_get(pg, &object, &[b"last".to_vec()])
                .expect("omap after crash");
            assert_eq!(omap[&b"last".to_vec()], version.to_be_bytes());
            assert_eq!(
                store.stat(pg, &object).expect("stat").version.version,
                *version
            );
            store.object_digest(pg, &object).expect("no corrupt chunk");
        }
        let log = store
            .read_log(pg, info.log_tail, usize::MAX)
            .expect("log after crash");
        assert_eq!(log.len() as u64, info.log_len);
        if last > 0 {
            assert_eq!(
                log.last().map(|entry| entry.version),
                Some(info.last_update)
            );
        }
        assert_eq!(info.stats.objects, model.len() as u64);
    }
    total
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_DIR_VAR) {
        run_child(Path::new(&dir));
        return;
    }
    // `cargo test -- --list` and filters must not start the crash loop by accident.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--list") {
        println!("crash_then_reopen_keeps_every_acknowledged_commit: test");
        return;
    }
    let dir = TempDir::new("crash");
    let mut total = 0;
    for kill in 0..KILLS {
        let acked = run_and_kill(dir.path(), 100 + kill * 60);
        let found = verify(dir.path(), &acked);
        let acked_total: u64 = acked.values().sum();
        println!("kill {kill}: {acked_total} commits acknowledged in all, {found} recovered");
        assert!(found > total, "each run must make progress");
        total = found;
    }
    println!("test crash_then_reopen_keeps_every_acknowledged_commit ... ok");
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
