//! The block file: where large chunks live, written once with direct I/O (BlueStore's
//! model), while small writes, metadata and the references to these blocks stay in the kv
//! engine.
//!
//! Without it every byte of a large write went through buffered I/O twice (the engine's
//! journal, then its blob files at flush): twice the disk traffic, and the page-cache copies
//! on top. Here a large write's chunks are copied once into an aligned buffer and written
//! with `O_DIRECT` into fresh space (never over live data), the file is flushed (one
//! `fdatasync` shared by concurrent writers), and only then does the small engine batch
//! that references them get written: a crash before that batch leaves unreferenced space,
//! which is free again after the restart.
//!
//! # Allocation
//! The allocator's state is rebuilt at open from the extent records (one per stored block
//! range, in the PG keyspaces, written in the same batch as the reference): whatever is not
//! recorded is free. Space freed by a batch (an overwrite, a removal) is handed out again
//! only once that batch is durable, so a crash can never bring back a reference to reused
//! space, and only once no read that could have seen the old reference is still running
//! (readers hold [`BlockFile::read_guard`]). The file grows in large steps and is never
//! shrunk.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

/// The unit of allocation and of direct I/O.
pub(crate) const BLOCK: u64 = 4096;

/// How much the file grows when no free range is large enough.
const GROW_STEP: u64 = 256 << 20;

/// Freed bytes waiting for reads to end beyond which a sync waits for the running reads
/// (bounded: one read each) instead of leaving the release to a later sync: under reads
/// that never pause, space would otherwise never come back.
const PENDING_WAIT_BYTES: u64 = 256 << 20;

/// A range of the block file, `BLOCK`-aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Extent {
    pub offset: u64,
    pub len: u64,
}

impl Extent {
    fn end(self) -> u64 {
        self.offset + self.len
    }
}

/// Bytes rounded up to whole blocks.
pub(crate) fn blocks_for(len: usize) -> u64 {
    (len as u64).div_ceil(BLOCK) * BLOCK
}

/// A buffer whose start is `BLOCK`-aligned, as direct I/O needs, filled by appending (no
/// byte is written twice: zeroing 4 MiB first cost as much as copying the data in).
pub(crate) struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    /// An empty buffer with room for `len` bytes.
    pub fn with_capacity(len: usize) -> Self {
        let mut storage: Vec<u8> = Vec::with_capacity(len + BLOCK as usize);
        let start = storage.as_ptr().align_offset(BLOCK as usize);
        storage.resize(start, 0);
        Self { storage, start }
    }

    /// Appends `bytes`, then zeros up to the next block boundary.
    pub fn push_padded(&mut self, bytes: &[u8]) {
        debug_assert!(
            self.storage.capacity() - self.storage.len() >= blocks_for(bytes.len()) as usize
        );
        self.storage.extend_from_slice(bytes);
        let len = blocks_for(self.storage.len() - self.start) as usize;
        self.storage.resize(self.start + len, 0);
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..]
    }
}

/// Bytes of the block file read at once: `len` bytes from `offset`.
pub(crate) struct BlockRun {
    offset: u64,
    len: usize,
    buffer: AlignedBuf,
}

impl BlockRun {
    /// The run's bytes `from..to` (relative to its start) as `Bytes`, without a copy.
    pub fn into_bytes(self, from: usize, to: usize) -> bytes::Bytes {
        assert!(from <= to && to <= self.len, "{from}..{to} of {}", self.len);
        let start = self.buffer.start;
        bytes::Bytes::from(self.buffer.storage).slice(start + from..start + to)
    }

    /// The `len` bytes at `offset` if this run holds all of them.
    pub fn get(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let from = usize::try_from(offset.checked_sub(self.offset)?).ok()?;
        let to = from.checked_add(len).filter(|&to| to <= self.len)?;
        Some(&self.buffer.as_slice()[from..to])
    }
}

/// The most a [`BlockReader`] reads ahead at once: its buffer stays bounded however large
/// the read.
const READ_AHEAD: u64 = 4 << 20;

/// Reads the payloads of one object's chunks, a run of adjacent payloads at a time (one
/// transaction wrote a large write's chunks side by side): a 4 MiB object is one read
/// instead of 64.
pub(crate) struct BlockReader<'f> {
    file: &'f BlockFile,
    /// The ranges expected to be read, adjacent ones merged, sorted by offset.
    runs: Vec<Extent>,
    current: Option<BlockRun>,
}

impl<'f> BlockReader<'f> {
    /// A reader for payloads inside `ranges` (in any order), or elsewhere (those are read
    /// on their own).
    pub fn new(file: &'f BlockFile, mut ranges: Vec<Extent>) -> Self {
        ranges.sort();
        let mut runs: Vec<Extent> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match runs.last_mut() {
                Some(last) if last.end() == range.offset => last.len += range.len,
                _ => runs.push(range),
            }
        }
        Self {
            file,
            runs,
            current: None,
        }
    }

    /// The file read.
    pub fn file(&self) -> &'f BlockFile {
        self.file
    }

    /// The `len` bytes at `offset` (block-aligned).
    pub fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let held = self
            .current
            .as_ref()
            .is_some_and(|run| run.get(offset, len).is_some());
        if !held {
            let wanted_end = offset + len as u64;
            let index = self.runs.partition_point(|run| run.end() <= offset);
            let end = match self.runs.get(index) {
                Some(run) if run.offset <= offset && wanted_end <= run.end() => {
                    run.end().min(offset + READ_AHEAD.max(len as u64))
                }
                _ => wanted_end,
            };
            self.current = None;
            self.current = Some(self.file.read(offset, (end - offset) as usize)?);
        }
        let run = self.current.as_ref().expect("read above");
        Ok(run.get(offset, len).expect("the run covers the range"))
    }
}

/// What is free, and what waits to become free.
#[derive(Debug, Default)]
struct Space {
    /// Free ranges, offset -> length, coalesced (no two touch).
    free: BTreeMap<u64, u64>,
    /// The file's length.
    end: u64,
    /// Where the next search starts, so consecutive writes land side by side.
    cursor: u64,
    /// Ranges freed by batches not yet known durable, with the ticket of their batch.
    pending: VecDeque<(u64, Extent)>,
    pending_bytes: u64,
    /// Bytes referenced (allocated and not freed).
    used: u64,
}

impl Space {
    fn insert_free(&mut self, extent: Extent) {
        let mut offset = extent.offset;
        let mut end = extent.end();
        if let Some((&before, &len)) = self.free.range(..offset).next_back() {
            if before + len == offset {
                offset = before;
                self.free.remove(&before);
            }
        }
        if let Some(&len) = self.free.get(&end) {
            self.free.remove(&end);
            end += len;
        }
        self.free.insert(offset, end - offset);
    }

    /// The first free range of at least `len` bytes at or after `from`.
    fn find(&self, from: u64, len: u64) -> Option<u64> {
        self.free
            .range(from..)
            .find(|(_, &free)| free >= len)
            .map(|(&offset, _)| offset)
    }

    fn take(&mut self, offset: u64, len: u64) -> Extent {
        let free = self.free.remove(&offset).expect("a free range");
        if free > len {
            self.free.insert(offset + len, free - len);
        }
        self.cursor = offset + len;
        self.used += len;
        Extent { offset, len }
    }
}

/// The block file of one object store. See the module documentation.
#[derive(Debug)]
pub(crate) struct BlockFile {
    path: PathBuf,
    /// Opened with `O_DIRECT`: staged (large) chunks are written here.
    direct: File,
    /// Buffered: deferred writes go through the page cache (see `deferred`); direct reads
    /// write such dirty pages back before they read their range.
    buffered: File,
    space: Mutex<Space>,
    /// Writes completed so far (a counter), and the count the last flush covered.
    written: AtomicU64,
    flushed: Mutex<u64>,
    /// Tickets for freed ranges: a range freed with ticket `t` may be reused once a sync
    /// that started after `t` was handed out has finished.
    tickets: AtomicU64,
    readers: RwLock<()>,
    /// Reads issued so far (a counter, for tests of how reads are batched).
    reads: AtomicU64,
}

impl BlockFile {
    /// Opens (or creates) the block file at `path`; `used` are the ranges the store's
    /// records reference. Fails if a record reaches past the file's end or two overlap.
    pub fn open(path: &Path, mut used: Vec<Extent>) -> io::Result<Self> {
        let open = |flags| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(flags)
                .open(path)
        };
        let direct = match open(libc::O_DIRECT) {
            // File systems without direct I/O (tmpfs) refuse the flag: write through the
            // page cache there; the flush before any reference keeps it durable.
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(path = %path.display(), "no direct I/O on this file system; the block file is written through the page cache");
                open(0)?
            }
            opened => opened?,
        };
        let buffered = OpenOptions::new().read(true).write(true).open(path)?;
        let end = direct.metadata()?.len() / BLOCK * BLOCK;
        used.sort();
        let mut space = Space {
            end,
            ..Space::default()
        };
        let mut position = 0;
        for extent in used {
            if extent.offset < position || extent.end() > end || extent.len == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "block file {}: the record of {}+{} overlaps another or lies past \
                         the file's end ({end} bytes)",
                        path.display(),
                        extent.offset,
                        extent.len
                    ),
                ));
            }
            if extent.offset > position {
                space.insert_free(Extent {
                    offset: position,
                    len: extent.offset - position,
                });
            }
            space.used += extent.len;
            position = extent.end();
        }
        if end > position {
            space.insert_free(Extent {
                offset: position,
                len: end - position,
            });
        }
        Ok(Self {
            path: path.to_owned(),
            direct,
            buffered,
            space: Mutex::new(space),
            written: AtomicU64::new(0),
            flushed: Mutex::new(0),
            tickets: AtomicU64::new(0),
            readers: RwLock::new(()),
            reads: AtomicU64::new(0),
        })
    }

    fn space(&self) -> std::sync::MutexGuard<'_, Space> {
        self.space.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free range of `len` bytes (a multiple of `BLOCK`), growing the file if needed.
    pub fn allocate(&self, len: u64) -> io::Result<Extent> {
        debug_assert!(len > 0 && len.is_multiple_of(BLOCK));
        let mut space = self.space();
        let cursor = space.cursor;
        if let Some(offset) = space.find(cursor, len).or_else(|| space.find(0, len)) {
            return Ok(space.take(offset, len));
        }
        let new_end = space.end + GROW_STEP.max(len);
        // The new length reaches the disk with the flush that precedes any reference.
        self.direct.set_len(new_end)?;
        let grown = Extent {
            offset: space.end,
            len: new_end - space.end,
        };
        space.end = new_end;
        space.insert_free(grown);
        let offset = space.find(0, len).expect("the file just grew by enough");
        Ok(space.take(offset, len))
    }

    /// Returns ranges that no durable batch references (a write that was not applied).
    pub fn release(&self, extents: &[Extent]) {
        let mut space = self.space();
        for &extent in extents {
            space.used -= extent.len;
            space.insert_free(extent);
        }
    }

    /// Ranges whose references the engine batch just written removes: free once it is
    /// durable. Called after the batch was written.
    pub fn free_after_sync(&self, extents: Vec<Extent>) {
        if extents.is_empty() {
            return;
        }
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut space = self.space();
        space.pending_bytes += extents.iter().map(|extent| extent.len).sum::<u64>();
        space
            .pending
            .extend(extents.into_iter().map(|extent| (ticket, extent)));
    }

    /// The ticket to hand to [`BlockFile::synced`] once a sync that starts now is done.
    pub fn sync_ticket(&self) -> u64 {
        self.tickets.load(Ordering::SeqCst)
    }

    /// A sync that started when [`BlockFile::sync_ticket`] gave `ticket` is done: the
    /// ranges freed up to it can be reused, unless a read that may still use them is
    /// running (then a later sync frees them).
    pub fn synced(&self, ticket: u64) {
        let pending = self.space().pending_bytes;
        if pending == 0 {
            return;
        }
        let _no_readers = if pending >= PENDING_WAIT_BYTES {
            self.readers.write().unwrap_or_else(PoisonError::into_inner)
        } else {
            match self.readers.try_write() {
                Ok(guard) => guard,
                Err(_) => return,
            }
        };
        let mut space = self.space();
        while let Some(&(freed_by, extent)) = space.pending.front() {
            if freed_by > ticket {
                break;
            }
            space.pending.pop_front();
            space.pending_bytes -= extent.len;
            space.used -= extent.len;
            space.insert_free(extent);
        }
    }

    /// Held by every reader of referenced ranges while it resolves and reads them.
    pub fn read_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.readers.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `data` (aligned, a whole number of blocks) at `offset`.
    pub fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        debug_assert!(offset.is_multiple_of(BLOCK) && (data.len() as u64).is_multiple_of(BLOCK));
        self.direct.write_all_at(data, offset)?;
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Writes `data` at `offset` (block-aligned) through the page cache: durable only once
    /// a later [`BlockFile::flush`] returns, readable at once.
    pub fn write_buffered(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        debug_assert!(offset.is_multiple_of(BLOCK));
        self.buffered.write_all_at(data, offset)?;
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Makes every write completed before the call durable; concurrent callers share one
    /// `fdatasync`.
    pub fn flush(&self) -> io::Result<()> {
        let target = self.written.load(Ordering::SeqCst);
        let mut flushed = self.flushed.lock().unwrap_or_else(PoisonError::into_inner);
        if *flushed >= target {
            return Ok(());
        }
        let covering = self.written.load(Ordering::SeqCst);
        self.direct.sync_data()?;
        *flushed = covering;
        Ok(())
    }

    /// Reads `len` bytes at `offset` (block-aligned) with direct I/O, past the page cache.
    ///
    /// Buffered reads of data written with direct I/O always miss the page cache, and on
    /// this kind of machine (a VM whose freed memory goes back to the host) filling it cost
    /// 1.1-1.8 CPU seconds of kernel time per GB read, against 0.06 for direct reads: 4 MiB
    /// sequential reads were CPU-bound at half the disk's speed. A direct read also cannot
    /// see a stale cached page, so the disk's copy is what the checksum judges.
    pub fn read(&self, offset: u64, len: usize) -> io::Result<BlockRun> {
        debug_assert!(offset.is_multiple_of(BLOCK));
        self.reads.fetch_add(1, Ordering::Relaxed);
        let whole = blocks_for(len) as usize;
        let mut buffer = AlignedBuf::with_capacity(whole);
        let start = buffer.start;
        let mut filled = 0;
        while filled < whole {
            let spare = &mut buffer.storage.spare_capacity_mut()[..whole - filled];
            // SAFETY: the destination is `spare`'s memory, valid for `spare.len()` bytes
            // and owned by `buffer`; the kernel only writes into it.
            let read = unsafe {
                libc::pread(
                    self.direct.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    (offset + filled as u64) as libc::off_t,
                )
            };
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the block file ends before {}", offset + whole as u64),
                ));
            }
            if read < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            filled += read as usize;
            // SAFETY: the kernel initialized `read` more bytes right after the filled ones.
            unsafe { buffer.storage.set_len(start + filled) };
        }
        Ok(BlockRun {
            offset,
            len,
            buffer,
        })
    }

    /// Referenced bytes and the file's length.
    pub fn usage(&self) -> (u64, u64) {
        let space = self.space();
        (space.used, space.end)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extent(offset: u64, len: u64) -> Extent {
        Extent { offset, len }
    }

    #[test]
    fn allocations_never_overlap_recorded_or_earlier_ones_and_freed_space_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(16 * BLOCK)
            .unwrap();
        let recorded = vec![extent(0, 2 * BLOCK), extent(4 * BLOCK, BLOCK)];
        let file = BlockFile::open(&path, recorded.clone()).unwrap();
        let first = file.allocate(2 * BLOCK).unwrap();
        assert_eq!(first, extent(2 * BLOCK, 2 * BLOCK));
        let second = file.allocate(4 * BLOCK).unwrap();
        assert_eq!(second, extent(5 * BLOCK, 4 * BLOCK));
        // Larger than anything free: the file grows.
        let big = file.allocate(8 * BLOCK).unwrap();
        assert!(big.offset >= 9 * BLOCK, "{big:?}");
        assert!(file.usage().1 >= big.end());

        // Freed by a batch: not reusable before a sync that started after the free, nor
        // while a reader may still hold the old reference.
        let used = file.usage().0;
        let before = file.sync_ticket();
        file.free_after_sync(vec![first]);
        file.synced(before);
        assert_eq!(file.usage().0, used);
        let ticket = file.sync_ticket();
        {
            let _reading = file.read_guard();
            file.synced(ticket);
        }
        assert_eq!(file.usage().0, used);
        file.synced(ticket);
        assert_eq!(file.usage().0, used - first.len);
        // The freed range is whole again: a later search from the start finds it.
        let mut space = file.space();
        assert_eq!(space.find(0, 2 * BLOCK), Some(first.offset));
        assert_eq!(space.take(first.offset, 2 * BLOCK), first);
    }

    #[test]
    fn a_large_backlog_of_freed_space_waits_for_running_reads_rather_than_staying_pending() {
        let dir = tempfile::tempdir().unwrap();
        let file = BlockFile::open(&dir.path().join("blocks"), Vec::new()).unwrap();
        let big = file.allocate(PENDING_WAIT_BYTES).unwrap();
        file.free_after_sync(vec![big]);
        let ticket = file.sync_ticket();
        let reading = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _guard = file.read_guard();
                reading.wait();
                // Still reading when the sync ends (the release has to wait for it).
                std::thread::sleep(std::time::Duration::from_millis(50));
            });
            reading.wait();
            file.synced(ticket);
        });
        assert_eq!(file.usage().0, 0);
    }

    #[test]
    fn records_that_overlap_or_pass_the_end_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(4 * BLOCK)
            .unwrap();
        assert!(BlockFile::open(&path, vec![extent(0, 2 * BLOCK), extent(BLOCK, BLOCK)]).is_err());
        assert!(BlockFile::open(&path, vec![extent(3 * BLOCK, 2 * BLOCK)]).is_err());
        BlockFile::open(&path, vec![extent(3 * BLOCK, BLOCK)]).unwrap();
    }

    #[test]
    fn direct_writes_read_back_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let file = BlockFile::open(&dir.path().join("blocks"), Vec::new()).unwrap();
        let extent = file.allocate(3 * BLOCK).unwrap();
        let data: Vec<u8> = (0..3 * BLOCK).map(|index| (index % 251) as u8).collect();
        let mut buf = AlignedBuf::with_capacity(3 * BLOCK as usize);
        buf.push_padded(&data[..2 * BLOCK as usize + 10]);
        assert_eq!(buf.as_slice().len(), 3 * BLOCK as usize);
        assert_eq!(buf.as_slice().as_ptr() as u64 % BLOCK, 0);
        assert!(buf.as_slice()[2 * BLOCK as usize + 10..]
            .iter()
            .all(|&byte| byte == 0));
        file.write(extent.offset, buf.as_slice()).unwrap();
        file.flush().unwrap();
        let run = file.read(extent.offset + BLOCK, 5000).unwrap();
        let second = BLOCK as usize;
        assert_eq!(
            run.get(extent.offset + BLOCK, 5000).unwrap(),
            &buf.as_slice()[second..second + 5000]
        );
        assert_eq!(
            run.get(extent.offset + BLOCK + 4000, 1000).unwrap(),
            &buf.as_slice()[second + 4000..second + 5000]
        );
        assert!(run.get(extent.offset + BLOCK + 4000, 1001).is_none());
        assert!(run.get(extent.offset, 10).is_none());
        // Past the file's end: an error, never a short read taken for data.
        assert!(file.read(file.usage().1, 10).is_err());
    }

    #[test]
    fn a_reader_reads_each_run_of_adjacent_ranges_at_once_and_bounds_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let file = BlockFile::open(&dir.path().join("blocks"), Vec::new()).unwrap();
        let total = READ_AHEAD + 4 * BLOCK;
        let whole = file.allocate(total).unwrap();
        let data: Vec<u8> = (0..total).map(|index| (index * 7 % 253) as u8).collect();
        let mut buf = AlignedBuf::with_capacity(total as usize);
        buf.push_padded(&data);
        file.write(whole.offset, buf.as_slice()).unwrap();
        file.flush().unwrap();
        let at = |index: u64| Extent {
            offset: whole.offset + index * BLOCK,
            len: BLOCK,
        };
        let expected = |extent: Extent| {
            let from = (extent.offset - whole.offset) as usize;
            data[from..from + extent.len as usize].to_vec()
        };

        // Three adjacent ranges, given out of order, and one apart: two reads.
        let ranges = vec![at(2), at(0), at(1), at(5)];
        let mut reader = BlockReader::new(&file, ranges.clone());
        let before = file.reads.load(Ordering::Relaxed);
        for extent in [at(0), at(1), at(2), at(5)] {
            let read = reader.read(extent.offset, BLOCK as usize).unwrap().to_vec();
            assert_eq!(read, expected(extent));
        }
        assert_eq!(file.reads.load(Ordering::Relaxed) - before, 2);
        // A range the reader was not told of is read on its own, and correctly.
        let read = reader.read(at(3).offset, 100).unwrap().to_vec();
        assert_eq!(read, expected(at(3))[..100]);

        // One run longer than the read-ahead: read in two parts, each at most READ_AHEAD.
        let blocks = total / BLOCK;
        let mut reader = BlockReader::new(&file, (0..blocks).map(at).collect());
        let before = file.reads.load(Ordering::Relaxed);
        for index in 0..blocks {
            let read = reader.read(at(index).offset, BLOCK as usize).unwrap();
            assert_eq!(read, expected(at(index)));
            let held = reader.current.as_ref().unwrap().len as u64;
            assert!(held <= READ_AHEAD, "{held}");
        }
        assert_eq!(file.reads.load(Ordering::Relaxed) - before, 2);
    }
}
