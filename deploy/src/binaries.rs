//! Finding the daemon binaries: an explicit directory, else `SHOAL_BIN_DIR`, else the
//! directory of the running executable (`target/debug` for `shoal`), else its parent when
//! that directory is cargo's `deps` (test executables live in `target/debug/deps`, the
//! binaries one level up).

use std::path::{Path, PathBuf};

use crate::error::DeployError;

/// The environment variable naming the directory that holds the binaries.
pub const BIN_DIR_ENV: &str = "SHOAL_BIN_DIR";

/// The monitor daemon's file name.
pub const MON_BINARY: &str = "shoal-mon";

/// The daemon binaries the launcher runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    /// `shoal-mon`.
    pub mon: PathBuf,
}

impl Binaries {
    /// The directories searched, in order, for `explicit` and the current environment.
    pub fn search_path(explicit: Option<&Path>) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(dir) = explicit {
            dirs.push(dir.to_path_buf());
            // An explicit directory is the only one looked at: a binary found elsewhere
            // would silently be another build.
            return dirs;
        }
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|dir| !dir.is_empty()) {
            dirs.push(PathBuf::from(dir));
            return dirs;
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            if exe_dir.file_name().is_some_and(|name| name == "deps") {
                if let Some(parent) = exe_dir.parent() {
                    dirs.push(parent.to_path_buf());
                }
            }
            dirs.push(exe_dir);
        }
        dirs
    }

    /// Finds the binaries (see the module documentation).
    pub fn locate(explicit: Option<&Path>) -> Result<Self, DeployError> {
        let searched = Self::search_path(explicit);
        let mon = searched
            .iter()
            .map(|dir| dir.join(MON_BINARY))
            .find(|path| path.is_file())
            .ok_or(DeployError::BinaryNotFound {
                name: MON_BINARY,
                package: "monitor --bin shoal-mon",
                searched,
            })?;
        let mon = std::fs::canonicalize(&mon).unwrap_or(mon);
        Ok(Binaries { mon })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_directory_is_the_only_one_searched() {
        let dir = tempfile::tempdir().unwrap();
        let error = Binaries::locate(Some(dir.path())).unwrap_err().to_string();
        assert!(error.contains("shoal-mon"), "{error}");
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
        std::fs::write(dir.path().join(MON_BINARY), b"").unwrap();
        let found = Binaries::locate(Some(dir.path())).unwrap();
        assert!(found.mon.ends_with(MON_BINARY));
    }
}
