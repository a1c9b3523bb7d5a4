//! Crash test: a child process writes numbered batches and is killed with SIGKILL while it
//! writes; after reopening, every batch whose sync returned must be there, whole, and no
//! batch may be half-applied. Run for each durable backend, three kills per store.
//!
//! The test binary is its own child: with `KV_CRASH_CHILD=<backend>` and `KV_CRASH_DIR` set
//! it runs the writer instead of the tests (hence `harness = false` in Cargo.toml).
//!
//! Batch `n` puts six keys `n/0..n/5` into `crash` (one 160 KiB value every 64th batch, so
//! blob files are involved), one key into `crash.side` (atomicity across keyspaces), sets
//! `meta/last = n` and deletes `(n-5)/5`. A syncing thread prints `synced n` once a sync
//! covered batch `n`. So after recovery, with `L = meta/last`: batches `0..=L` are present
//! exactly as batch `L` leaves them (deletes included), nothing beyond `L` exists, and `L`
//! is at least the last acknowledged batch.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::TempDir;
use kv::{Backend, Engine, Entry, KeyRange, Options, WriteBatch};

const CHILD_BACKEND_VAR: &str = "KV_CRASH_CHILD";
const CHILD_DIR_VAR: &str = "KV_CRASH_DIR";
/// The writer stops by itself after this many batches, so a lost parent leaves no runaway.
const MAX_BATCHES_PER_RUN: u64 = 20_000;
const KEYS_PER_BATCH: u64 = 6;
const DELETE_DISTANCE: u64 = 5;
/// Every 64th batch carries a value large enough for sled's blob files and fjall's.
const BIG_EVERY: u64 = 64;
const BIG_LEN: usize = 160 << 10;

fn batch_key(n: u64, i: u64) -> Vec<u8> {
    format!("{n:010}/{i}").into_bytes()
}

fn big_key(n: u64) -> Vec<u8> {
    format!("{n:010}/big").into_bytes()
}

/// A value that names its batch and slot and varies in length.
fn batch_value(n: u64, i: u64) -> Vec<u8> {
    let mut value = format!("{n}:{i}:").into_bytes();
    let padding = ((n * 7 + i * 13) % 300) as usize;
    value.extend(std::iter::repeat_n((n % 251) as u8, padding));
    value
}

fn big_value(n: u64) -> Vec<u8> {
    (0..BIG_LEN).map(|j| (j as u64 ^ n) as u8).collect()
}

fn make_batch(n: u64) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for i in 0..KEYS_PER_BATCH {
        batch.put("crash", batch_key(n, i), batch_value(n, i));
    }
    if n.is_multiple_of(BIG_EVERY) {
        batch.put("crash", big_key(n), big_value(n));
    }
    batch.put("crash.side", format!("{n:010}"), batch_value(n, 99));
    batch.put("meta", b"last".to_vec(), n.to_be_bytes());
    if n >= DELETE_DISTANCE {
        batch.delete("crash", batch_key(n - DELETE_DISTANCE, KEYS_PER_BATCH - 1));
    }
    batch
}

fn last_batch(engine: &dyn Engine) -> Option<u64> {
    let bytes = engine.get("meta", b"last").expect("read meta/last")?;
    Some(u64::from_be_bytes(
        bytes.try_into().expect("meta/last is 8 bytes"),
    ))
}

/// The child: continue the batch sequence after whatever survived, until killed. One
/// thread writes batches back to back without syncing; the main thread syncs whatever has
/// been written and acknowledges it. Writes never wait for syncs, so the kill often lands
/// inside a batch, and syncs (sled's log flushes) fall at arbitrary points between batches.
/// fjall's smallest write-ahead log ring, so that the batches of one round pass through it
/// several times: its early checkpoints run (and are killed) while the writer goes on.
fn options() -> Options {
    Options {
        fjall_wal_bytes: 1 << 20,
        ..Options::default()
    }
}

fn run_writer(backend: Backend, dir: &Path) {
    let engine = kv::open(backend, dir, &options()).expect("child: open");
    let first = last_batch(&*engine).map_or(0, |last| last + 1);
    // Batches below `written` are complete (the writer stores n + 1 after batch n).
    let written = Arc::new(AtomicU64::new(first));
    let writer = {
        let engine = engine.clone();
        let written = written.clone();
        std::thread::spawn(move || {
            for n in first..first + MAX_BATCHES_PER_RUN {
                engine.write(make_batch(n)).expect("child: write");
                written.store(n + 1, Ordering::Release);
            }
        })
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "started {first}").expect("child: stdout");
    let mut acknowledged = first;
    loop {
        let complete = written.load(Ordering::Acquire);
        if complete > acknowledged {
            engine.sync().expect("child: sync");
            acknowledged = complete;
            writeln!(stdout, "synced {}", complete - 1).expect("child: stdout");
            stdout.flush().expect("child: flush");
        } else if writer.is_finished() {
            break;
        } else {
            std::thread::yield_now();
        }
    }
    writer.join().expect("child: writer thread");
}

/// Checks the store against the invariants in the module doc; returns `L`.
fn verify(backend: Backend, dir: &Path, acknowledged: Option<u64>) -> Result<Option<u64>, String> {
    let engine = kv::open(backend, dir, &options()).map_err(|e| format!("reopen: {e}"))?;
    let last = last_batch(&*engine);
    if let Some(acked) = acknowledged {
        match last {
            Some(last) if last >= acked => {}
            _ => {
                return Err(format!(
                    "batch {acked} was acknowledged but meta/last is {last:?}"
                ))
            }
        }
    }
    let scan = |keyspace: &str| -> Result<Vec<Entry>, String> {
        engine
            .scan(keyspace, KeyRange::all())
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())
    };
    let mut expected_main = Vec::new();
    let mut expected_side = Vec::new();
    if let Some(last) = last {
        for n in 0..=last {
            for i in 0..KEYS_PER_BATCH {
                let deleted = i == KEYS_PER_BATCH - 1 && n + DELETE_DISTANCE <= last;
                if !deleted {
                    expected_main.push((batch_key(n, i), batch_value(n, i)));
                }
            }
            if n.is_multiple_of(BIG_EVERY) {
                expected_main.push((big_key(n), big_value(n)));
            }
            expected_side.push((format!("{n:010}").into_bytes(), batch_value(n, 99)));
        }
    }
    expected_main.sort();
    for (keyspace, expected) in [("crash", expected_main), ("crash.side", expected_side)] {
        let found = scan(keyspace)?;
        if found != expected {
            let first_difference = found
                .iter()
                .zip(&expected)
                .position(|(f, e)| f != e)
                .unwrap_or(found.len().min(expected.len()));
            let describe = |entries: &[(Vec<u8>, Vec<u8>)]| {
                entries
                    .get(first_difference)
                    .map(|(k, v)| format!("{} ({} bytes)", String::from_utf8_lossy(k), v.len()))
            };
            return Err(format!(
                "keyspace {keyspace} after batch {last:?}: {} entries, expected {}; first difference at #{first_difference}: found {:?}, expected {:?}",
                found.len(),
                expected.len(),
                describe(&found),
                describe(&expected),
            ));
        }
    }
    Ok(last)
}

/// Three rounds of: start the writer, let it acknowledge some batches, SIGKILL it, verify.
fn crash_and_recover(backend: Backend) -> Result<String, String> {
    let dir = TempDir::new(&format!("crash-{backend}"));
    let mut acknowledged = None;
    let mut report = Vec::new();
    // (batches to see acknowledged, then how long the writer may go on before the kill):
    // different delays land the SIGKILL at different points of a batch or sync.
    let rounds = [(300u64, 0u64), (800, 3), (500, 11)];
    for (round, (batches_before_kill, grace_ms)) in rounds.into_iter().enumerate() {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .env(CHILD_BACKEND_VAR, backend.name())
            .env(CHILD_DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn writer: {e}"))?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let (lines_tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut acks = 0;
        let mut kill_at = u64::MAX;
        let outcome = loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(n) = line.strip_prefix("synced ") {
                        let n: u64 = n.parse().map_err(|_| format!("bad line {line:?}"))?;
                        acknowledged = Some(n);
                        acks += 1;
                        if n >= kill_at {
                            break Ok(());
                        }
                    } else if let Some(first) = line.strip_prefix("started ") {
                        let first: u64 = first.parse().map_err(|_| format!("bad line {line:?}"))?;
                        kill_at = first + batches_before_kill;
                    } else {
                        break Err(format!("unexpected writer output {line:?}"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break Err("writer silent for 60 s".into()),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(format!("writer exited early after {acks} acks"))
                }
            }
        };
        // SIGKILL while the writer is in the middle of its next batches. The pause is the
        // point of the test (a kill at a random moment), not a wait for a condition.
        std::thread::sleep(Duration::from_millis(grace_ms));
        child.kill().map_err(|e| format!("kill writer: {e}"))?;
        let status = child.wait().map_err(|e| e.to_string())?;
        let _ = reader.join();
        outcome?;
        let last = verify(backend, dir.path(), acknowledged)?;
        report.push(format!(
            "round {round}: killed ({status}) after ack {acknowledged:?}, recovered through batch {last:?}"
        ));
    }
    Ok(report.join("; "))
}

fn main() {
    if let Some(backend) = std::env::var_os(CHILD_BACKEND_VAR) {
        let backend: Backend = backend
            .to_str()
            .and_then(|name| name.parse().ok())
            .expect("child: backend name");
        let dir = std::env::var_os(CHILD_DIR_VAR).expect("child: KV_CRASH_DIR");
        run_writer(backend, Path::new(&dir));
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tests: Vec<(String, Backend)> = Backend::ALL
        .into_iter()
        .filter(|backend| backend.is_durable())
        .map(|backend| {
            (
                format!("{backend}_keeps_acknowledged_batches_whole_after_sigkill"),
                backend,
            )
        })
        .collect();
    if args.iter().any(|arg| arg == "--list") {
        for (name, _) in &tests {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|arg| !arg.starts_with('-')).collect();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, backend) in &selected {
        match crash_and_recover(*backend) {
            Ok(report) => println!("test {name} ... ok\n    {report}"),
            Err(error) => {
                println!("test {name} ... FAILED\n    {error}");
                failed.push(name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        tests.len() - selected.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
