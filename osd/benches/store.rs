//! `cargo bench -p osd --bench store`: the object store on fjall in a scratch directory —
//! 4 MiB write_full, 4 KiB overwrites into 4 MiB objects with 1 and 16 concurrent
//! committers (each commit durable), and 4 KiB reads — printed as a table with the load
//! average, since the machine is shared.
//!
//! The directory is under `$OSD_BENCH_DIR` when set, else under the system temp dir;
//! `$OSD_BENCH_PGS` sets how many PGs (engine keyspaces) the objects spread over. Run
//! without `--bench` (as `cargo test --all-targets` does), it runs a tiny workload only, to
//! check that the benchmark still works.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clustermap::{PgId, Uuid};
use kv::{Backend, Options};
use osd::store::{ObjectId, ObjectStore, ReqId, StoreConfig, Transaction};

const MIB: usize = 1 << 20;
const SMALL: usize = 4096;

struct Workload {
    big_objects: usize,
    small_writes_single: usize,
    small_writes_per_thread: usize,
    threads: usize,
    small_reads: usize,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// PGs the objects are spread over: `$OSD_BENCH_PGS`, default 16.
fn pg_count() -> u32 {
    std::env::var("OSD_BENCH_PGS")
        .ok()
        .and_then(|pgs| pgs.parse().ok())
        .filter(|&pgs| pgs > 0)
        .unwrap_or(16)
}

fn pg_of(object: usize) -> PgId {
    PgId::new(1, object as u32 % pg_count())
}

fn name(object: usize) -> ObjectId {
    ObjectId::new(format!("rbd_data.bench.{object:016x}"))
}

/// Latency figures of one run.
struct Figures {
    label: &'static str,
    ops: usize,
    bytes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    syncs: Option<u64>,
}

impl Figures {
    fn print(mut self) {
        self.latencies.sort();
        let percentile = |p: f64| {
            let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies
                .get(index)
                .map_or(0.0, |latency| latency.as_secs_f64() * 1e6)
        };
        let seconds = self.elapsed.as_secs_f64();
        let syncs = match self.syncs {
            Some(syncs) => format!("{:.2}", syncs as f64 / self.ops as f64),
            None => "-".to_owned(),
        };
        println!(
            "{:<34} {:>7} {:>10.0} {:>9.1} {:>9.0} {:>9.0} {:>9}",
            self.label,
            self.ops,
            self.ops as f64 / seconds,
            self.bytes as f64 / seconds / MIB as f64,
            percentile(0.5),
            percentile(0.99),
            syncs
        );
    }
}

fn timed(op: impl FnOnce()) -> Duration {
    let start = Instant::now();
    op();
    start.elapsed()
}

fn run(dir: &Path, workload: &Workload) {
    let engine = kv::open(Backend::Fjall, dir, &Options::default()).expect("open fjall");
    let store = Arc::new(
        ObjectStore::mkfs(engine.clone(), Uuid([1; 16]), StoreConfig::default()).expect("mkfs"),
    );
    for ps in 0..pg_count() {
        store.create_pg(PgId::new(1, ps)).expect("create pg");
    }
    println!(
        "{:<34} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "workload (fjall, synced commits)", "ops", "ops/s", "MiB/s", "p50 us", "p99 us", "syncs/op"
    );

    // The engine alone, for scale: one synced put of a 4 KiB and of a 64 KiB value (a small
    // object write stores one 64 KiB chunk plus metadata, log entry and PG info).
    for (label, len) in [
        ("baseline: kv put 4 KiB + sync", SMALL),
        ("baseline: kv put 64 KiB + sync", 64 << 10),
    ] {
        let value = vec![0xa5u8; len];
        let syncs = engine.syncs_performed();
        let mut latencies = Vec::new();
        let elapsed = timed(|| {
            for i in 0..workload.small_writes_single {
                let mut batch = kv::WriteBatch::new();
                batch.put("baseline", (i as u64).to_be_bytes(), value.clone());
                latencies.push(timed(|| engine.write_sync(batch).expect("baseline put")));
            }
        });
        Figures {
            label,
            ops: workload.small_writes_single,
            bytes: workload.small_writes_single * len,
            elapsed,
            latencies,
            syncs: Some(engine.syncs_performed() - syncs),
        }
        .print();
    }

    // 4 MiB write_full: also fills the objects the small ops work on.
    let big = vec![0x5au8; 4 * MIB];
    let syncs = engine.syncs_performed();
    let mut latencies = Vec::new();
    let elapsed = timed(|| {
        for object in 0..workload.big_objects {
            let mut txn = Transaction::new(pg_of(object), name(object), 1);
            txn.write_full(big.clone());
            latencies.push(timed(|| {
                store.commit(txn).expect("write_full");
            }));
        }
    });
    Figures {
        label: "4 MiB write_full, 1 committer",
        ops: workload.big_objects,
        bytes: workload.big_objects * 4 * MIB,
        elapsed,
        latencies,
        syncs: Some(engine.syncs_performed() - syncs),
    }
    .print();

    // Every client op carries a request id, so each commit also checks the dedup index.
    let small_write = |store: &ObjectStore, rng: &mut Rng, object: usize| {
        let offset = rng.below((4 * MIB / SMALL) as u64) * SMALL as u64;
        let mut txn = Transaction::new(pg_of(object), name(object), 1);
        txn.reqid(ReqId::new(rng.next(), rng.next()))
            .write(offset, vec![rng.below(256) as u8; SMALL]);
        timed(|| {
            store.commit(txn).expect("4 KiB write");
        })
    };

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let syncs = engine.syncs_performed();
    let mut latencies = Vec::new();
    let elapsed = timed(|| {
        for _ in 0..workload.small_writes_single {
            let object = rng.below(workload.big_objects as u64) as usize;
            latencies.push(small_write(&store, &mut rng, object));
        }
    });
    Figures {
        label: "4 KiB write, 1 committer",
        ops: workload.small_writes_single,
        bytes: workload.small_writes_single * SMALL,
        elapsed,
        latencies,
        syncs: Some(engine.syncs_performed() - syncs),
    }
    .print();

    let syncs = engine.syncs_performed();
    let barrier = Arc::new(Barrier::new(workload.threads + 1));
    let handles: Vec<_> = (0..workload.threads)
        .map(|thread| {
            let store = store.clone();
            let barrier = barrier.clone();
            let per_thread = workload.small_writes_per_thread;
            let objects = workload.big_objects;
            let threads = workload.threads;
            std::thread::spawn(move || {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (thread as u64 + 1));
                barrier.wait();
                // Each thread owns the objects congruent to it, as a PG orders per object
                // (the smoke run has fewer objects than threads: then they share).
                let mut owned: Vec<usize> = (0..objects)
                    .filter(|object| object % threads == thread)
                    .collect();
                if owned.is_empty() {
                    owned.push(thread % objects);
                }
                (0..per_thread)
                    .map(|i| small_write(&store, &mut rng, owned[i % owned.len()]))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let start = Instant::now();
    barrier.wait();
    let latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|handle| handle.join().expect("writer thread"))
        .collect();
    let elapsed = start.elapsed();
    let ops = workload.threads * workload.small_writes_per_thread;
    Figures {
        label: "4 KiB write, 16 committers",
        ops,
        bytes: ops * SMALL,
        elapsed,
        latencies,
        syncs: Some(engine.syncs_performed() - syncs),
    }
    .print();

    let mut latencies = Vec::new();
    let elapsed = timed(|| {
        for _ in 0..workload.small_reads {
            let object = rng.below(workload.big_objects as u64) as usize;
            let offset = rng.below((4 * MIB / SMALL) as u64) * SMALL as u64;
            latencies.push(timed(|| {
                let data = store
                    .read(pg_of(object), &name(object), offset, SMALL as u64)
                    .expect("4 KiB read");
                assert_eq!(data.len(), SMALL);
            }));
        }
    });
    Figures {
        label: "4 KiB read, 1 reader",
        ops: workload.small_reads,
        bytes: workload.small_reads * SMALL,
        elapsed,
        latencies,
        syncs: None,
    }
    .print();
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let base = std::env::var_os("OSD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("osd-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let workload = if full {
        Workload {
            big_objects: 64,
            small_writes_single: 2000,
            small_writes_per_thread: 250,
            threads: 16,
            small_reads: 20_000,
        }
    } else {
        Workload {
            big_objects: 2,
            small_writes_single: 8,
            small_writes_per_thread: 2,
            threads: 16,
            small_reads: 8,
        }
    };
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average before: {}", load.trim());
    }
    run(&dir, &workload);
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average after: {}", load.trim());
    }
    // Peak resident memory of the whole run (engine cache 64 MiB, metadata cache 8 MiB).
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(peak) = status.lines().find(|line| line.starts_with("VmHWM")) {
            println!("peak RSS: {}", peak.trim_start_matches("VmHWM:").trim());
        }
    }
    std::fs::remove_dir_all(&dir).expect("remove the benchmark directory");
    if !full {
        println!("smoke run (no --bench): a tiny workload, its figures mean nothing");
    }
}
