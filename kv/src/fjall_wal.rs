//! The fjall backend's own write-ahead log: a fixed ring file, zero-filled when it is made
//! and then only ever overwritten in place, written with `O_DIRECT | O_DSYNC`.
//!
//! Why: making a batch durable through fjall's journal costs an fdatasync of a file that
//! grows into a sparse preallocation, so every sync also commits file system metadata (the
//! journal's newly written blocks), and on ext4 those commits queue behind each other in
//! the one file system journal when several stores share a disk. Overwriting blocks that
//! already exist needs no metadata, and an `O_DSYNC` direct write is durable when it
//! returns. Measured on this project's disks: 4 KiB append + fdatasync 180-350 us, direct
//! synchronous overwrite 100-190 us, with one and three writers.
//!
//! How: every batch gets a record number, and every keyspace the batch writes stores that
//! number (under [`crate::keys::RESERVED_KEY`]) atomically with the batch. A sync writes the
//! records of the batches applied since the last one as one frame at the ring's head.
//! fjall's journal is still written (to the OS, not synced). After a crash each keyspace
//! holds a prefix of its own batches, though not the same prefix for all (keyspaces flush
//! to tables on their own, without a journal sync first), and its stored number says where
//! its prefix ends, so opening replays to each keyspace exactly the logged writes it lost.
//!
//! Once half the ring is used, [`Wal::early_checkpoint`] marks the head, and a background
//! thread (see `fjall_store`) fdatasyncs fjall's journal, which then covers every batch
//! logged before the mark, and moves the ring's tail to the mark ([`Wal::finish_checkpoint`],
//! a header written to one of two header blocks in turn). Syncs go on writing frames into
//! the other half meanwhile: no write waits for the journal's fdatasync, which with several
//! MiB of journal to write back took milliseconds and was most of the 1 % slowest small
//! writes. Only when the ring has no room all the same, or a batch is too large to be worth
//! logging, does a sync fdatasync the journal itself and move the tail to the head.
//!
//! Layout: two 4 KiB header blocks, then frames, each starting on a 4 KiB boundary. A
//! frame: magic, payload length, frame number, xxh3 of (number, length, payload), then the
//! payload (records), zero-padded to the block size. A frame that does not fit before the
//! ring's end goes to the first frame block. Replay follows frame numbers from the tail's
//! and stops at the first frame that is missing, torn or stale.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::batch::Mutation;

/// The log's file name in the database folder.
pub(crate) const WAL_FILE: &str = "shoal.wal";
/// The keyspace where stores of the first log format kept the number of the last batch
/// applied, for all keyspaces at once; each keyspace now keeps its own (see `fjall_store`).
pub(crate) const LEGACY_APPLIED_KEYSPACE: &str = "#wal";
/// The key of that number (u64 big-endian).
pub(crate) const LEGACY_APPLIED_KEY: &[u8] = b"applied";

/// The smallest ring a new log gets (a configured size is rounded up to it).
const MIN_RING_BYTES: u64 = 1 << 20;
const BLOCK: usize = 4096;
const DATA_START: u64 = 2 * BLOCK as u64;
const FRAME_MAGIC: u32 = 0x5357_414c;
const HEADER_MAGIC: u32 = 0x5357_4844;
const FRAME_HEADER: usize = 32;
/// A batch with more data than this is made durable through fjall's journal instead of
/// being copied into the log.
const LARGE_RECORD: usize = 256 << 10;

/// One logged batch, read back for replay.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub number: u64,
    pub mutations: Vec<Mutation>,
}

/// What the next sync must write.
#[derive(Default)]
struct Pending {
    records: Vec<Vec<u8>>,
    /// A batch went unlogged: the next sync goes through fjall's journal.
    journal_sync: bool,
}

/// Where the ring stands; touched by syncs (which the engine serializes) and checkpoints.
struct Ring {
    head: u64,
    /// Bytes between the tail and the head, skipped space at a wrap included.
    used: u64,
    next_frame: u64,
    generation: u64,
    /// An early checkpoint is under way (its mark was handed out and not finished).
    marked: bool,
    buffer: AlignedBuf,
}

/// The head of the ring when an early checkpoint began: once fjall's journal is synced,
/// every frame before it is durable in fjall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    head: u64,
    next_frame: u64,
    /// Bytes from the tail to `head`: what the checkpoint frees.
    used: u64,
    /// The header generation the mark was taken in; a checkpoint since then supersedes it.
    generation: u64,
}

/// The log of one fjall database.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    /// The ring file's size: half of it between early checkpoints.
    ring_bytes: u64,
    pending: Mutex<Pending>,
    ring: Mutex<Ring>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both guarded values stay consistent at every await-free step; a panic elsewhere
    // poisons the engine through its own error path.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wal {
    /// Opens the log in `folder`, making a new one of `new_ring_bytes` (rounded up to
    /// whole blocks, at least 1 MiB) if there is none; an existing log keeps its size.
    /// Returns it with the records it holds after its last checkpoint, in order.
    pub fn open(folder: &Path, new_ring_bytes: u64) -> io::Result<(Wal, Vec<Record>)> {
        let path = folder.join(WAL_FILE);
        if !path.exists() {
            let ring_bytes = new_ring_bytes
                .max(MIN_RING_BYTES)
                .next_multiple_of(BLOCK as u64);
            create(folder, &path, ring_bytes)?;
        }
        let image = std::fs::read(&path)?;
        let ring_bytes = image.len() as u64;
        if ring_bytes < MIN_RING_BYTES || !ring_bytes.is_multiple_of(BLOCK as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {ring_bytes} bytes, not a whole number of {BLOCK}-byte blocks \
                     of at least {MIN_RING_BYTES}",
                    path.display(),
                ),
            ));
        }
        let header = read_header(&image).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has no valid header", path.display()),
            )
        })?;
        let mut records = Vec::new();
        let mut at = header.tail;
        let mut next_frame = header.next_frame;
        let mut used = 0;
        while let Some((start, len, payload)) = find_frame(&image, at, next_frame) {
            decode_records(payload, &mut records).map_err(|reason| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: frame {next_frame}: {reason}", path.display()),
                )
            })?;
            let skipped = if start == at { 0 } else { ring_bytes - at };
            used += skipped + len;
            at = start + len;
            next_frame += 1;
        }
        let file = open_direct(&path)?;
        let wal = Wal {
            file,
            path,
            ring_bytes,
            pending: Mutex::new(Pending::default()),
            ring: Mutex::new(Ring {
                head: at,
                used,
                next_frame,
                generation: header.generation,
                marked: false,
                buffer: AlignedBuf::default(),
            }),
        };
        Ok((wal, records))
    }

    /// Batch `number` encoded as a record, or `None` when it is too large to be worth
    /// logging (its sync goes through fjall's journal instead).
    pub fn record(number: u64, mutations: &[Mutation]) -> Option<Vec<u8>> {
        let bytes: usize = mutations.iter().map(encoded_len).sum();
        if bytes > LARGE_RECORD {
            return None;
        }
        let mut record = Vec::with_capacity(12 + bytes);
        record.extend_from_slice(&number.to_le_bytes());
        record.extend_from_slice(&(mutations.len() as u32).to_le_bytes());
        for mutation in mutations {
            encode(mutation, &mut record);
        }
        Some(record)
    }

    /// Notes a record (from [`Wal::record`]) whose batch fjall has committed, for the next
    /// sync; records must be noted in the order of their batches' commits.
    pub fn logged(&self, record: Option<Vec<u8>>) {
        let mut pending = lock(&self.pending);
        match record {
            Some(record) => pending.records.push(record),
            None => pending.journal_sync = true,
        }
    }

    /// Makes every batch noted so far durable: one frame written in place, or, when the
    /// ring is full or a batch went unlogged, `journal_sync` (fdatasync of fjall's journal)
    /// and a checkpoint.
    pub fn sync(&self, journal_sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let pending = std::mem::take(&mut *lock(&self.pending));
        let mut ring = lock(&self.ring);
        if pending.records.is_empty() && !pending.journal_sync {
            return Ok(());
        }
        let payload: usize = pending.records.iter().map(Vec::len).sum();
        let frame_len = (FRAME_HEADER + payload).div_ceil(BLOCK) * BLOCK;
        let capacity = self.ring_bytes - DATA_START;
        if pending.journal_sync || frame_len as u64 > capacity {
            journal_sync()?;
            return self.checkpoint(&mut ring);
        }
        let wraps = ring.head + frame_len as u64 > self.ring_bytes;
        let skipped = if wraps {
            self.ring_bytes - ring.head
        } else {
            0
        };
        if ring.used + skipped + frame_len as u64 > capacity {
            journal_sync()?;
            return self.checkpoint(&mut ring);
        }
        let at = if wraps { DATA_START } else { ring.head };
        let number = ring.next_frame;
        let buffer = ring.buffer.zeroed(frame_len);
        let mut offset = FRAME_HEADER;
        for record in &pending.records {
            buffer[offset..offset + record.len()].copy_from_slice(record);
            offset += record.len();
        }
        let checksum = frame_checksum(number, &buffer[FRAME_HEADER..FRAME_HEADER + payload]);
        buffer[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
        buffer[4..8].copy_from_slice(&(payload as u32).to_le_bytes());
        buffer[8..16].copy_from_slice(&number.to_le_bytes());
        buffer[16..24].copy_from_slice(&checksum.to_le_bytes());
        self.file.write_all_at(buffer, at)?;
        ring.used += skipped + frame_len as u64;
        ring.head = at + frame_len as u64;
        ring.next_frame += 1;
        Ok(())
    }

    /// Frees the whole ring: everything logged is durable elsewhere (fjall's journal was
    /// just synced), so the tail moves to the head.
    fn checkpoint(&self, ring: &mut Ring) -> io::Result<()> {
        if ring.used == 0 {
            // Nothing was logged since the tail was last written: it already is the head.
            return Ok(());
        }
        let (head, next_frame, used) = (ring.head, ring.next_frame, ring.used);
        self.move_tail(ring, head, next_frame, used)
    }

    /// Writes a header whose tail is `tail` (the frame numbered `next_frame` starts there),
    /// freeing `freed` bytes. The header blocks alternate, so a torn header write leaves
    /// the previous one.
    fn move_tail(&self, ring: &mut Ring, tail: u64, next_frame: u64, freed: u64) -> io::Result<()> {
        let generation = ring.generation + 1;
        let slot = generation % 2;
        let header = Header {
            generation,
            tail,
            next_frame,
        };
        let buffer = ring.buffer.zeroed(BLOCK);
        header.encode(buffer);
        self.file.write_all_at(buffer, slot * BLOCK as u64)?;
        ring.generation = generation;
        ring.used -= freed;
        Ok(())
    }

    /// Once half the ring is used and no early checkpoint is under way: the mark of one,
    /// to be finished with [`Wal::finish_checkpoint`] after fjall's journal was synced
    /// (the sync must start after this call: then it covers every frame before the mark,
    /// whose batches were all handed to the journal before they were logged).
    pub fn early_checkpoint(&self) -> Option<Mark> {
        let mut ring = lock(&self.ring);
        if ring.marked || ring.used < (self.ring_bytes - DATA_START) / 2 {
            return None;
        }
        ring.marked = true;
        Some(Mark {
            head: ring.head,
            next_frame: ring.next_frame,
            used: ring.used,
            generation: ring.generation,
        })
    }

    /// Ends the early checkpoint of `mark`: when fjall's journal was synced (`synced` is
    /// `Ok`), moves the tail to the mark, unless a checkpoint since the mark already moved
    /// it further. Either way a later sync may start another.
    pub fn finish_checkpoint(&self, mark: Mark, synced: io::Result<()>) -> io::Result<()> {
        let mut ring = lock(&self.ring);
        ring.marked = false;
        synced?;
        if ring.generation != mark.generation {
            return Ok(());
        }
        self.move_tail(&mut ring, mark.head, mark.next_frame, mark.used)
    }

    /// [`Wal::sync`] through fjall's journal whatever is pending: after a replay, so that
    /// the replayed batches are durable in fjall and the ring starts empty.
    pub fn checkpoint_now(&self, journal_sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        lock(&self.pending).journal_sync = true;
        self.sync(journal_sync)
    }
}

/// Makes a zero-filled ring with a first header, under a temporary name renamed into
/// place, so a crash while making it leaves no half-made log.
fn create(folder: &Path, path: &Path, ring_bytes: u64) -> io::Result<()> {
    let temporary = folder.join(format!("{WAL_FILE}.new"));
    let file = File::create(&temporary)?;
    let zeros = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < ring_bytes {
        let len = zeros.len().min((ring_bytes - written) as usize);
        file.write_all_at(&zeros[..len], written)?;
        written += len as u64;
    }
    let mut block = vec![0u8; BLOCK];
    Header {
        generation: 0,
        tail: DATA_START,
        next_frame: 1,
    }
    .encode(&mut block);
    file.write_all_at(&block, 0)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    File::open(folder)?.sync_all()
}

/// Opens the ring for direct synchronous writes (plain synchronous writes where the file
/// system has no direct I/O, tmpfs for one).
fn open_direct(path: &Path) -> io::Result<File> {
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path);
    match direct {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .open(path),
        other => other,
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Header {
    generation: u64,
    tail: u64,
    next_frame: u64,
}

impl Header {
    fn encode(&self, block: &mut [u8]) {
        block[0..4].copy_from_slice(&HEADER_MAGIC.to_le_bytes());
        block[8..16].copy_from_slice(&self.generation.to_le_bytes());
        block[16..24].copy_from_slice(&self.tail.to_le_bytes());
        block[24..32].copy_from_slice(&self.next_frame.to_le_bytes());
        let checksum = xxh3_64(&block[..32]);
        block[32..40].copy_from_slice(&checksum.to_le_bytes());
    }

    /// The header in `block` of a ring of `ring_bytes`, if it is valid.
    fn decode(block: &[u8], ring_bytes: u64) -> Option<Header> {
        let word = |at: usize| u64::from_le_bytes(block[at..at + 8].try_into().expect("8 bytes"));
        if u32::from_le_bytes(block[0..4].try_into().expect("4 bytes")) != HEADER_MAGIC
            || word(32) != xxh3_64(&block[..32])
        {
            return None;
        }
        let header = Header {
            generation: word(8),
            tail: word(16),
            next_frame: word(24),
        };
        let aligned = header.tail.is_multiple_of(BLOCK as u64);
        (aligned && (DATA_START..ring_bytes).contains(&header.tail)).then_some(header)
    }
}

/// The newer of the two valid header blocks.
fn read_header(image: &[u8]) -> Option<Header> {
    [&image[..BLOCK], &image[BLOCK..2 * BLOCK]]
        .into_iter()
        .filter_map(|block| Header::decode(block, image.len() as u64))
        .max_by_key(|header| header.generation)
}

fn frame_checksum(number: u64, payload: &[u8]) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(&number.to_le_bytes());
    hasher.update(&(payload.len() as u32).to_le_bytes());
    hasher.update(payload);
    hasher.digest()
}

/// Frame `number` at `at`, or at the ring's first frame block if the writer wrapped:
/// its start, its length on disk and its payload.
fn find_frame(image: &[u8], at: u64, number: u64) -> Option<(u64, u64, &[u8])> {
    let parse = |start: u64| -> Option<(u64, u64, &[u8])> {
        let start_index = usize::try_from(start).ok()?;
        let header = image.get(start_index..start_index + FRAME_HEADER)?;
        let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8"));
        let magic = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        if magic != FRAME_MAGIC || word(8) != number {
            return None;
        }
        let payload = image.get(start_index + FRAME_HEADER..start_index + FRAME_HEADER + len)?;
        if frame_checksum(number, payload) != word(16) {
            return None;
        }
        let on_disk = ((FRAME_HEADER + len).div_ceil(BLOCK) * BLOCK) as u64;
        Some((start, on_disk, payload))
    };
    parse(at).or_else(|| (at != DATA_START).then(|| parse(DATA_START)).flatten())
}

fn encoded_len(mutation: &Mutation) -> usize {
    2 + mutation.keyspace.len()
        + 4
        + mutation.key.len()
        + 1
        + 4
        + mutation.value.as_ref().map_or(0, Vec::len)
}

fn encode(mutation: &Mutation, out: &mut Vec<u8>) {
    out.extend_from_slice(&(mutation.keyspace.len() as u16).to_le_bytes());
    out.extend_from_slice(mutation.keyspace.as_bytes());
    out.extend_from_slice(&(mutation.key.len() as u32).to_le_bytes());
    out.extend_from_slice(&mutation.key);
    match &mutation.value {
        Some(value) => {
            out.push(1);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        None => {
            out.push(0);
            out.extend_from_slice(&0u32.to_le_bytes());
        }
    }
}

/// Reads the records of one frame's payload (checksummed, so a failure here is a bug or
/// a foreign file, not a torn write).
fn decode_records(mut payload: &[u8], out: &mut Vec<Record>) -> Result<(), String> {
    fn take<'a>(payload: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
        if payload.len() < len {
            return Err(format!(
                "a record is cut short ({} bytes left, {len} needed)",
                payload.len()
            ));
        }
        let (head, rest) = payload.split_at(len);
        *payload = rest;
        Ok(head)
    }
    fn number<const N: usize>(payload: &mut &[u8]) -> Result<[u8; N], String> {
        Ok(take(payload, N)?.try_into().expect("N bytes"))
    }
    while !payload.is_empty() {
        let record_number = u64::from_le_bytes(number(&mut payload)?);
        let count = u32::from_le_bytes(number(&mut payload)?);
        let mut mutations = Vec::new();
        for _ in 0..count {
            let keyspace_len = u16::from_le_bytes(number(&mut payload)?) as usize;
            let keyspace = String::from_utf8(take(&mut payload, keyspace_len)?.to_vec())
                .map_err(|_| "a keyspace name is not UTF-8".to_owned())?;
            let key_len = u32::from_le_bytes(number(&mut payload)?) as usize;
            let key = take(&mut payload, key_len)?.to_vec();
            let present = take(&mut payload, 1)?[0] == 1;
            let value_len = u32::from_le_bytes(number(&mut payload)?) as usize;
            let value = take(&mut payload, value_len)?.to_vec();
            mutations.push(Mutation {
                keyspace,
                key,
                value: present.then_some(value),
                // Replayed, a log-only put is an ordinary one (see `WriteBatch::put_log_only`).
                log_only: false,
            });
        }
        out.push(Record {
            number: record_number,
            mutations,
        });
    }
    Ok(())
}

/// A block-aligned buffer for direct writes, reused between syncs.
#[derive(Default)]
struct AlignedBuf {
    storage: Vec<Block>,
}

#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; BLOCK]);

impl AlignedBuf {
    /// The first `len` bytes (a multiple of the block size), zeroed.
    fn zeroed(&mut self, len: usize) -> &mut [u8] {
        let blocks = len / BLOCK;
        if self.storage.len() < blocks {
            self.storage.resize(blocks, Block([0; BLOCK]));
        }
        let bytes: &mut [u8] = bytemuck_blocks(&mut self.storage[..blocks]);
        bytes.fill(0);
        bytes
    }
}

fn bytemuck_blocks(blocks: &mut [Block]) -> &mut [u8] {
    let len = std::mem::size_of_val(blocks);
    // SAFETY: `Block` is a plain byte array with no padding (size 4096, align 4096), so a
    // run of blocks is a run of initialized bytes of the same length.
    unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_RING_BYTES: u64 = 8 << 20;

    fn put(key: &str, value: &[u8]) -> Mutation {
        Mutation {
            keyspace: "ks".into(),
            key: key.as_bytes().to_vec(),
            value: Some(value.to_vec()),
            log_only: false,
        }
    }

    fn log(wal: &Wal, number: u64, mutations: &[Mutation]) {
        wal.logged(Wal::record(number, mutations));
    }

    fn numbers(records: &[Record]) -> Vec<u64> {
        records.iter().map(|record| record.number).collect()
    }

    /// How many times `run` called the journal sync it was given.
    fn journal_syncs_of(
        run: impl FnOnce(&mut dyn FnMut() -> io::Result<()>) -> io::Result<()>,
    ) -> usize {
        let mut count = 0;
        run(&mut || {
            count += 1;
            Ok(())
        })
        .unwrap();
        count
    }

    fn no_journal() -> io::Result<()> {
        panic!("this sync should have been a frame")
    }

    #[test]
    fn synced_records_come_back_in_order_until_a_checkpoint_frees_them() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, records) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        assert!(records.is_empty());
        log(&wal, 1, &[put("a", b"1"), put("b", b"2")]);
        log(
            &wal,
            2,
            &[Mutation {
                keyspace: "ks".into(),
                key: b"a".to_vec(),
                value: None,
                log_only: false,
            }],
        );
        wal.sync(no_journal).unwrap();
        log(&wal, 3, &[put("c", &[7; 5000])]);
        wal.sync(no_journal).unwrap();
        // Logged but never synced: not on disk.
        log(&wal, 4, &[put("d", b"4")]);
        drop(wal);
        let (wal, records) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        assert_eq!(numbers(&records), [1, 2, 3]);
        assert_eq!(records[0].mutations, [put("a", b"1"), put("b", b"2")]);
        assert_eq!(records[1].mutations[0].value, None);
        assert_eq!(records[2].mutations, [put("c", &[7; 5000])]);
        assert_eq!(journal_syncs_of(|sync| wal.checkpoint_now(sync)), 1);
        log(&wal, 5, &[put("e", b"5")]);
        wal.sync(no_journal).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        assert_eq!(numbers(&records), [5], "the checkpoint freed 1..=3");
    }

    /// Logs and syncs one small record per number, until `stop` says so.
    fn log_until(
        wal: &Wal,
        numbers: &mut std::ops::RangeFrom<u64>,
        mut stop: impl FnMut() -> bool,
    ) -> Vec<u64> {
        let mut logged = Vec::new();
        while !stop() {
            let number = numbers.next().unwrap();
            log(
                wal,
                number,
                &[put(&number.to_string(), &[number as u8; 3000])],
            );
            wal.sync(no_journal).unwrap();
            logged.push(number);
        }
        logged
    }

    /// Logs until half the ring is used: the records logged and the early checkpoint's mark.
    fn log_until_marked(wal: &Wal, next: &mut std::ops::RangeFrom<u64>) -> (Vec<u64>, Mark) {
        let mut mark = None;
        let logged = log_until(wal, next, || {
            mark = wal.early_checkpoint();
            mark.is_some()
        });
        (logged, mark.unwrap())
    }

    /// Logs `count` records.
    fn log_count(wal: &Wal, next: &mut std::ops::RangeFrom<u64>, count: usize) -> Vec<u64> {
        let mut left = count;
        log_until(wal, next, || {
            let done = left == 0;
            left = left.saturating_sub(1);
            done
        })
    }

    #[test]
    fn an_early_checkpoint_frees_the_ring_up_to_its_mark_while_frames_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), MIN_RING_BYTES).unwrap();
        let mut next = 1..;
        let (before, mark) = log_until_marked(&wal, &mut next);
        // Half of a 1 MiB ring, in frames of one 4 KiB block each.
        assert!(before.len() >= 100, "a mark after {} frames", before.len());
        assert_eq!(
            wal.early_checkpoint(),
            None,
            "one early checkpoint at a time"
        );
        // Frames go on while the journal would be syncing, into the ring's second half; once
        // the checkpoint ends they wrap into the first (a full ring would call the journal
        // sync, which `no_journal` refuses).
        let during = log_count(&wal, &mut next, 100);
        wal.finish_checkpoint(mark, Ok(())).unwrap();
        let after = log_count(&wal, &mut next, 60);
        drop(wal);
        let (wal, records) = Wal::open(dir.path(), MIN_RING_BYTES).unwrap();
        let expected: Vec<u64> = during.iter().chain(&after).copied().collect();
        assert_eq!(numbers(&records), expected, "replay starts at the mark");
        assert_eq!(
            records[0].mutations,
            [put(&expected[0].to_string(), &[expected[0] as u8; 3000])]
        );
        assert!(
            wal.early_checkpoint().is_some(),
            "more than half is in use again"
        );
    }

    #[test]
    fn an_early_checkpoint_overtaken_by_a_full_one_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), MIN_RING_BYTES).unwrap();
        let mut next = 1..;
        let (_, mark) = log_until_marked(&wal, &mut next);
        assert_eq!(journal_syncs_of(|sync| wal.checkpoint_now(sync)), 1);
        let after = log_count(&wal, &mut next, 3);
        // The mark lies before the full checkpoint's tail: moving the tail back to it would
        // replay freed frames (or frames overwritten since).
        wal.finish_checkpoint(mark, Ok(())).unwrap();
        drop(wal);
        let (_, records) = Wal::open(dir.path(), MIN_RING_BYTES).unwrap();
        assert_eq!(numbers(&records), after);
    }

    #[test]
    fn a_failed_journal_sync_keeps_every_frame_and_lets_a_later_checkpoint_start() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), MIN_RING_BYTES).unwrap();
        let mut next = 1..;
        let (logged, mark) = log_until_marked(&wal, &mut next);
        let failure = wal.finish_checkpoint(mark, Err(io::Error::other("disk gone")));
        assert_eq!(failure.unwrap_err().to_string(), "disk gone");
        assert!(
            wal.early_checkpoint().is_some(),
            "the next sync may try again"
        );
        drop(wal);
        let (_, records) = Wal::open(dir.path(), MIN_RING_BYTES).unwrap();
        assert_eq!(numbers(&records), logged);
    }

    #[test]
    fn a_log_keeps_the_size_it_was_made_with_and_refuses_a_foreign_size() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 3 << 20).unwrap();
        log(&wal, 1, &[put("a", b"1")]);
        wal.sync(no_journal).unwrap();
        drop(wal);
        let path = dir.path().join(WAL_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);
        let (_, records) = Wal::open(dir.path(), 64 << 20).unwrap();
        assert_eq!(numbers(&records), [1]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);
        // Sizes below the minimum are rounded up for new logs, refused for existing ones.
        let small = tempfile::tempdir().unwrap();
        drop(Wal::open(small.path(), 4096).unwrap());
        let small_path = small.path().join(WAL_FILE);
        assert_eq!(
            std::fs::metadata(&small_path).unwrap().len(),
            MIN_RING_BYTES
        );
        OpenOptions::new()
            .write(true)
            .open(&small_path)
            .unwrap()
            .set_len(MIN_RING_BYTES + 100)
            .unwrap();
        let error = Wal::open(small.path(), MIN_RING_BYTES).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_large_batch_goes_through_the_journal_and_frees_the_ring() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        log(&wal, 1, &[put("small", b"x")]);
        wal.sync(no_journal).unwrap();
        log(&wal, 2, &[put("big", &vec![1; LARGE_RECORD + 1])]);
        assert_eq!(journal_syncs_of(|sync| wal.sync(sync)), 1);
        drop(wal);
        let (_, records) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        assert!(records.is_empty(), "got {:?}", numbers(&records));
    }

    #[test]
    fn the_ring_wraps_and_checkpoints_when_full_and_replay_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        let value = vec![3u8; 200 << 10];
        let mut journal_syncs = 0;
        let mut since_checkpoint = Vec::new();
        for number in 1..=200u64 {
            log(&wal, number, &[put(&number.to_string(), &value)]);
            let mut checkpointed = false;
            wal.sync(|| {
                checkpointed = true;
                Ok(())
            })
            .unwrap();
            if checkpointed {
                journal_syncs += 1;
                since_checkpoint.clear();
            } else {
                since_checkpoint.push(number);
            }
        }
        // 200 frames of 204 KiB pass through an 8 MiB ring several times.
        assert!(journal_syncs >= 4, "{journal_syncs} checkpoints");
        drop(wal);
        let (_, records) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        assert_eq!(numbers(&records), since_checkpoint);
        assert!(records
            .iter()
            .all(|record| record.mutations[0].value.as_deref() == Some(&value[..])));
    }

    #[test]
    fn replay_stops_at_a_torn_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        for number in 1..=3 {
            log(&wal, number, &[put("k", &[number as u8; 100])]);
            wal.sync(no_journal).unwrap();
        }
        drop(wal);
        // Frame 2 starts one block after frame 1: damage a payload byte of it.
        let path = dir.path().join(WAL_FILE);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xee], DATA_START + BLOCK as u64 + 40)
            .unwrap();
        drop(file);
        let (_, records) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        assert_eq!(
            numbers(&records),
            [1],
            "frame 3 follows a torn frame 2 and is not used"
        );
    }

    #[test]
    fn a_torn_header_leaves_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        log(&wal, 1, &[put("a", b"1")]);
        wal.sync(no_journal).unwrap();
        // Generation 1 goes to slot 1 and frees frame 1.
        wal.checkpoint_now(|| Ok(())).unwrap();
        log(&wal, 2, &[put("b", b"2")]);
        wal.sync(no_journal).unwrap();
        drop(wal);
        let path = dir.path().join(WAL_FILE);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xee; 8], BLOCK as u64 + 16).unwrap();
        drop(file);
        // Back to generation 0: the tail before frame 1, which replays again.
        let (_, records) = Wal::open(dir.path(), TEST_RING_BYTES).unwrap();
        assert_eq!(numbers(&records), [1, 2]);
    }
}
