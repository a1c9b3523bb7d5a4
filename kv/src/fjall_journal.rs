//! Making fjall's journal durable without holding fjall's journal lock.
//!
//! fjall's `persist(SyncData)` runs its fdatasync while it holds the journal writer's mutex,
//! and every batch commit takes that mutex to append. So while one sync ran (0.1-0.5 ms on
//! the disks we measured), every other writer of the store waited, and group commit
//! degenerated into append, sync, append, sync: the writers that arrived during a sync could
//! not even be appended to be covered by the next one.
//!
//! Instead, [`JournalSync`] runs fdatasync on its own descriptor of the active journal file,
//! outside fjall's lock, so commits go on appending while a sync runs. This is sound because:
//! - every batch is handed to the OS when it commits (fjall's default `PersistMode::Buffer`
//!   durability for batches, which [`crate::fjall_store`] keeps), and fdatasync is a
//!   property of the file, not of the descriptor it is called on;
//! - the active journal is the file with the highest id (`<id>.jnl` in the database
//!   folder), which is the rule fjall's own recovery uses;
//! - fjall rotates to `<id + 1>.jnl` only after an fsync of the old file, under its lock, so
//!   a batch committed before this sync is either in the file found here or already durable.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Journal file names are `<id>.jnl`.
const JOURNAL_EXTENSION: &str = "jnl";

/// Listings of the folder in one sync before giving up. A second is needed only when the
/// newest journal was removed or superseded between listing and opening it.
const OPEN_ATTEMPTS: usize = 8;

/// Syncs the journal files of one fjall database.
#[derive(Debug)]
pub(crate) struct JournalSync {
    folder: PathBuf,
    /// The journal last synced, kept open so a sync usually costs two checks and one call.
    active: Mutex<Option<(u64, File)>>,
}

impl JournalSync {
    pub fn new(folder: &Path) -> Self {
        Self {
            folder: folder.to_owned(),
            active: Mutex::new(None),
        }
    }

    /// Makes every batch committed before this call durable.
    pub fn sync(&self) -> io::Result<()> {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let file = self.follow_rotations(&mut active)?;
        file.sync_data()
    }

    /// The journal fjall appends to now (or one it sealed after this call began, which is
    /// then durable already). Usually two cheap checks: the kept file is still linked and no
    /// file with the next id exists. After a rotation the folder is listed for the newest.
    fn follow_rotations<'a>(&self, active: &'a mut Option<(u64, File)>) -> io::Result<&'a File> {
        for _ in 0..OPEN_ATTEMPTS {
            if let Some((id, file)) = active.as_ref() {
                if file.metadata()?.nlink() > 0 && !journal_path(&self.folder, id + 1).exists() {
                    break;
                }
            }
            let newest = newest_journal(&self.folder)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the database folder has no journal file",
                )
            })?;
            *active = match File::open(journal_path(&self.folder, newest)) {
                Ok(file) => Some((newest, file)),
                // Removed between listing and opening: fjall flushed it, a newer one is active.
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                Err(error) => return Err(error),
            };
        }
        match active.as_ref() {
            Some((id, file)) if !journal_path(&self.folder, id + 1).exists() => Ok(file),
            _ => Err(io::Error::other(
                "the active journal kept changing while it was being opened",
            )),
        }
    }
}

impl JournalSync {
    /// The id of the journal the last sync made durable.
    #[cfg(test)]
    pub fn synced_id(&self) -> Option<u64> {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(id, _)| *id)
    }
}

fn journal_path(folder: &Path, id: u64) -> PathBuf {
    folder.join(format!("{id}.{JOURNAL_EXTENSION}"))
}

/// The highest journal id in `folder`, which is the journal fjall appends to.
pub(crate) fn newest_journal(folder: &Path) -> io::Result<Option<u64>> {
    let mut newest = None;
    for entry in std::fs::read_dir(folder)? {
        let name = entry?.file_name();
        let id = name
            .to_str()
            .and_then(|name| name.strip_suffix(JOURNAL_EXTENSION))
            .and_then(|stem| stem.strip_suffix('.'))
            .and_then(|id| id.parse::<u64>().ok());
        newest = newest.max(id);
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kv-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_newest_journal_is_the_highest_id_not_the_longest_name() {
        let dir = scratch("newest");
        for name in ["9.jnl", "10.jnl", "11.jnl.tmp", "12.jn", "x.jnl", "version"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(newest_journal(&dir).unwrap(), Some(10));
        let sync = JournalSync::new(&dir);
        sync.sync().unwrap();
        assert_eq!(sync.synced_id(), Some(10));

        // A rotation: the next sync moves to the new file.
        std::fs::write(dir.join("11.jnl"), b"").unwrap();
        sync.sync().unwrap();
        assert_eq!(sync.synced_id(), Some(11));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_without_a_journal_is_an_error_not_a_silent_success() {
        let dir = scratch("none");
        let error = JournalSync::new(&dir).sync().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
