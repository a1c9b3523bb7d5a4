//! The storage benchmark (`shoal bench kv`): durable 4 KiB and 4 MiB puts and disk space,
//! per backend, as ratios to raw append+fdatasync on the same directory.
//!
//! Every target (raw file, each backend) writes the same workload into its own
//! subdirectory: `small_puts` puts of 4 KiB and `large_puts` puts of 4 MiB of incompressible
//! data, each put followed by a sync, timed per put (generating the data is not timed). The
//! targets take turns in `rounds` interleaved rounds, so a slow moment of the disk or of the
//! host's write-back cache hurts them all alike. After the writes, the bytes the target's
//! directory occupies on disk (allocated blocks) are compared with the bytes written.
//!
//! The winner among durable backends has the best geometric mean of its three ratios
//! (4 KiB rate, 4 MiB rate, raw space / its space); [`crate::Backend::default`] is set from it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{open, Backend, Engine, Error, Options, Result, WriteBatch};

/// Size of a small put.
pub const SMALL_VALUE: usize = 4 << 10;
/// Size of a large put.
pub const LARGE_VALUE: usize = 4 << 20;

/// One store to measure: a backend with its options, under a label.
#[derive(Clone, Debug)]
pub struct BenchTarget {
    /// Column label in the report.
    pub label: String,
    /// The backend.
    pub backend: Backend,
    /// Its options.
    pub options: Options,
}

impl BenchTarget {
    /// A backend with default options, labelled by its name.
    pub fn default_for(backend: Backend) -> Self {
        Self {
            label: backend.name().to_owned(),
            backend,
            options: Options::default(),
        }
    }

    /// Whether this target is a backend as the daemons would open it (default options), so
    /// it may be named the winner.
    fn is_candidate(&self) -> bool {
        self.backend.is_durable() && self.options == Options::default()
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Number of 4 KiB put+sync operations per target.
    pub small_puts: usize,
    /// Number of 4 MiB put+sync operations per target.
    pub large_puts: usize,
    /// Interleaving rounds (each target runs 1/rounds of each workload per round).
    pub rounds: usize,
    /// The stores to measure besides the raw file.
    pub targets: Vec<BenchTarget>,
}

impl Default for BenchConfig {
    /// Every backend with default options, plus fjall with every value inline (to show what
    /// key-value separation is worth). About 4000 small and 64 large puts each.
    fn default() -> Self {
        let mut targets: Vec<_> = Backend::ALL
            .into_iter()
            .map(BenchTarget::default_for)
            .collect();
        targets.insert(
            1,
            BenchTarget {
                label: "fjall-inline".to_owned(),
                backend: Backend::Fjall,
                options: Options {
                    fjall_blob_threshold: None,
                    ..Options::default()
                },
            },
        );
        Self {
            small_puts: 4000,
            large_puts: 64,
            rounds: 4,
            targets,
        }
    }
}

/// The measured figures of one target.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// 4 KiB put+sync operations per second.
    pub small_ops_per_sec: f64,
    /// 4 MiB put+sync throughput, in MB (10^6 bytes) per second.
    pub large_mb_per_sec: f64,
    /// Bytes of keys and values written.
    pub logical_bytes: u64,
    /// Bytes allocated on disk afterwards (0 for the memory backend).
    pub disk_bytes: u64,
}

/// One target's figures and their ratios to the raw file's.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetResult {
    /// The target's label.
    pub label: String,
    /// The backend measured.
    pub backend: Backend,
    /// Absolute figures.
    pub figures: Figures,
    /// `small_ops_per_sec` / raw's.
    pub small_ratio: f64,
    /// `large_mb_per_sec` / raw's.
    pub large_ratio: f64,
    /// (disk / logical) / raw's (disk / logical); `None` when nothing is on disk.
    pub space_ratio: Option<f64>,
    /// Geometric mean of the 4 KiB ratio, the 4 MiB ratio and 1 / space ratio, for durable
    /// targets; higher is better.
    pub score: Option<f64>,
}

/// The benchmark's outcome; `Display` prints it as a table.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Where it ran.
    pub dir: PathBuf,
    /// The raw append+fdatasync baseline.
    pub raw: Figures,
    /// Each target, in the configured order.
    pub targets: Vec<TargetResult>,
    /// The best durable backend with default options, if one was measured.
    pub winner: Option<Backend>,
}

/// Runs the benchmark in subdirectories of `dir` (created, and removed afterwards).
pub fn run(dir: &Path, config: &BenchConfig) -> Result<BenchReport> {
    let rounds = config.rounds.max(1);
    let mut subdirs = vec![dir.join("raw")];
    let mut stores = vec![Workload::new(Sink::raw(&subdirs[0])?)];
    for (index, target) in config.targets.iter().enumerate() {
        // The index keeps directories apart even if two targets share a label.
        let path = dir.join(format!("{index}-{}", target.backend));
        let engine = open(target.backend, &path, &target.options)?;
        subdirs.push(path.clone());
        stores.push(Workload::new(Sink::Engine { engine, path }));
    }
    let mut data = DataSource::new(0x5eed_cafe);

    for (value_len, total, phase) in [
        (SMALL_VALUE, config.small_puts.max(1), Phase::Small),
        (LARGE_VALUE, config.large_puts.max(1), Phase::Large),
    ] {
        for round in 0..rounds {
            let puts = total / rounds + usize::from(round < total % rounds);
            // Rotate who goes first, so no target always follows the same neighbour.
            let count = stores.len();
            for turn in 0..count {
                let store = &mut stores[(turn + round) % count];
                store.run(phase, puts, value_len, &mut data)?;
            }
        }
    }

    let mut measured = Vec::new();
    for store in stores {
        measured.push(store.finish()?);
    }
    let raw = measured.remove(0);
    let raw_space = raw.disk_bytes as f64 / raw.logical_bytes.max(1) as f64;
    let targets: Vec<TargetResult> = config
        .targets
        .iter()
        .zip(measured)
        .map(|(target, figures)| {
            let small_ratio = figures.small_ops_per_sec / raw.small_ops_per_sec;
            let large_ratio = figures.large_mb_per_sec / raw.large_mb_per_sec;
            let space_ratio = (figures.disk_bytes > 0).then(|| {
                figures.disk_bytes as f64 / figures.logical_bytes.max(1) as f64 / raw_space
            });
            let score = match (target.backend.is_durable(), space_ratio) {
                (true, Some(space)) => Some((small_ratio * large_ratio / space).cbrt()),
                _ => None,
            };
            TargetResult {
                label: target.label.clone(),
                backend: target.backend,
                figures,
                small_ratio,
                large_ratio,
                space_ratio,
                score,
            }
        })
        .collect();
    let winner = config
        .targets
        .iter()
        .zip(&targets)
        .filter(|(target, _)| target.is_candidate())
        .filter_map(|(target, result)| result.score.map(|score| (target.backend, score)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(backend, _)| backend);
    // Every engine is closed by now (`finish` consumed the stores).
    for subdir in subdirs {
        match std::fs::remove_dir_all(&subdir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", subdir, e))
            }
            _ => {}
        }
    }
    Ok(BenchReport {
        dir: dir.to_owned(),
        raw,
        targets,
        winner,
    })
}

#[derive(Clone, Copy)]
enum Phase {
    Small,
    Large,
}

/// Where a workload writes.
enum Sink {
    /// One file, appended to and fdatasynced: the baseline.
    Raw { file: File, path: PathBuf },
    /// An engine: one put per batch, then a sync.
    Engine {
        engine: Arc<dyn Engine>,
        path: PathBuf,
    },
}

impl Sink {
    fn raw(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let path = dir.join("append.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok(Sink::Raw {
            file,
            path: dir.to_owned(),
        })
    }

    fn put_durably(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        match self {
            Sink::Raw { file, path } => file
                .write_all(key)
                .and_then(|()| file.write_all(value))
                .and_then(|()| file.sync_data())
                .map_err(|e| Error::io("append", path.as_path(), e)),
            Sink::Engine { engine, .. } => {
                let mut batch = WriteBatch::new();
                batch.put("bench", key, value);
                engine.write_sync(batch)
            }
        }
    }

    fn path(&self) -> &Path {
        match self {
            Sink::Raw { path, .. } | Sink::Engine { path, .. } => path,
        }
    }
}

/// A target's accumulated timings.
struct Workload {
    sink: Sink,
    next_key: u64,
    small: (usize, Duration),
    large: (usize, Duration),
    logical_bytes: u64,
}

impl Workload {
    fn new(sink: Sink) -> Self {
        Self {
            sink,
            next_key: 0,
            small: (0, Duration::ZERO),
            large: (0, Duration::ZERO),
            logical_bytes: 0,
        }
    }

    fn run(
        &mut self,
        phase: Phase,
        puts: usize,
        value_len: usize,
        data: &mut DataSource,
    ) -> Result<()> {
        let mut value = vec![0u8; value_len];
        for _ in 0..puts {
            let key = format!("object/{:016}", self.next_key).into_bytes();
            self.next_key += 1;
            data.fill(&mut value);
            let started = Instant::now();
            self.sink.put_durably(&key, &value)?;
            let elapsed = started.elapsed();
            let tally = match phase {
                Phase::Small => &mut self.small,
                Phase::Large => &mut self.large,
            };
            tally.0 += 1;
            tally.1 += elapsed;
            self.logical_bytes += (key.len() + value.len()) as u64;
        }
        Ok(())
    }

    fn finish(self) -> Result<Figures> {
        let disk_bytes = match &self.sink {
            Sink::Engine { engine, .. } if !engine.backend().is_durable() => 0,
            sink => allocated_bytes(sink.path())?,
        };
        let rate = |(count, time): (usize, Duration)| count as f64 / time.as_secs_f64().max(1e-9);
        Ok(Figures {
            small_ops_per_sec: rate(self.small),
            large_mb_per_sec: rate(self.large) * LARGE_VALUE as f64 / 1e6,
            logical_bytes: self.logical_bytes,
            disk_bytes,
        })
    }
}

/// Bytes allocated on disk under `path` (files' blocks, directories included).
pub fn allocated_bytes(path: &Path) -> Result<u64> {
    let metadata = std::fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
    let mut total = metadata.blocks() * 512;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| Error::io("list", path, e))? {
            let entry = entry.map_err(|e| Error::io("list", path, e))?;
            total += allocated_bytes(&entry.path())?;
        }
    }
    Ok(total)
}

/// Incompressible bytes (xorshift64*), so compressing backends gain nothing unfair.
struct DataSource(u64);

impl DataSource {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw_space = self.raw.disk_bytes as f64 / self.raw.logical_bytes.max(1) as f64;
        writeln!(f, "kv storage benchmark in {}", self.dir.display())?;
        writeln!(
            f,
            "raw append+fdatasync: 4 KiB put+sync {:.0} ops/s, 4 MiB put+sync {:.0} MB/s, disk/logical {:.2}",
            self.raw.small_ops_per_sec, self.raw.large_mb_per_sec, raw_space
        )?;
        writeln!(
            f,
            "{:<14} {:>12} {:>8} {:>12} {:>8} {:>13} {:>8} {:>7}",
            "target", "4KiB ops/s", "x raw", "4MiB MB/s", "x raw", "disk/logical", "x raw", "score"
        )?;
        for target in &self.targets {
            let figures = &target.figures;
            let disk_per_logical = figures.disk_bytes as f64 / figures.logical_bytes.max(1) as f64;
            let (space, space_ratio) = match target.space_ratio {
                Some(ratio) => (format!("{disk_per_logical:.2}"), format!("{ratio:.2}")),
                None => ("-".to_owned(), "-".to_owned()),
            };
            let score = target
                .score
                .map_or_else(|| "-".to_owned(), |score| format!("{score:.2}"));
            let label = if target.backend.is_durable() {
                target.label.clone()
            } else {
                format!("{}*", target.label)
            };
            writeln!(
                f,
                "{:<14} {:>12.0} {:>8.2} {:>12.0} {:>8.2} {:>13} {:>8} {:>7}",
                label,
                figures.small_ops_per_sec,
                target.small_ratio,
                figures.large_mb_per_sec,
                target.large_ratio,
                space,
                space_ratio,
                score
            )?;
        }
        writeln!(
            f,
            "(* not durable; score = geometric mean of the three ratios, space inverted)"
        )?;
        match self.winner {
            Some(winner) => writeln!(f, "winner: {winner}"),
            None => writeln!(f, "winner: none (no durable backend measured)"),
        }
    }
}
