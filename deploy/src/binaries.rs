//! Finding the daemon binaries (`shoal-mon`, and `shoal-osd` beside it): an explicit directory, else `SHOAL_BIN_DIR`, else the
//! directory of the running executable (`target/debug` for `shoal`), else its parent when
//! that directory is cargo's `deps` (test executables live in `target/debug/deps`, the
//! binaries one level up).

use std::path::{Path, PathBuf};

use crate::error::DeployError;

/// The environment variable naming the directory that holds the binaries.
pub const BIN_DIR_ENV: &str = "SHOAL_BIN_DIR";

/// The monitor daemon's file name.
pub const MON_BINARY: &str = "shoal-mon";

/// The OSD daemon's file name.
pub const OSD_BINARY: &str = "shoal-osd";

/// The daemon binaries the launcher runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binaries {
    /// `shoal-mon`.
    pub mon: PathBuf,
    /// `shoal-osd`, when it is in the same directory as `shoal-mon`; needed only to start
    /// OSDs ([`Binaries::osd`]).
    pub osd: Option<PathBuf>,
    /// The directories searched.
    pub searched: Vec<PathBuf>,
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
        let Some(mon) = searched
            .iter()
            .map(|dir| dir.join(MON_BINARY))
            .find(|path| path.is_file())
        else {
            return Err(DeployError::BinaryNotFound {
                name: MON_BINARY,
                package: "monitor --bin shoal-mon",
                searched,
            });
        };
        let mon = std::fs::canonicalize(&mon).unwrap_or(mon);
        // The OSD binary is taken from the monitor's directory only: a pair from two
        // builds could disagree on the wire format.
        let osd = mon
            .parent()
            .map(|dir| dir.join(OSD_BINARY))
            .filter(|path| path.is_file());
        Ok(Binaries { mon, osd, searched })
    }

    /// The `shoal-osd` binary, or the error that says how to build it.
    pub fn osd(&self) -> Result<PathBuf, DeployError> {
        self.osd.clone().ok_or_else(|| DeployError::BinaryNotFound {
            name: OSD_BINARY,
            package: "osd --bin shoal-osd",
            searched: self
                .mon
                .parent()
                .map(|dir| vec![dir.to_path_buf()])
                .unwrap_or_else(|| self.searched.clone()),
        })
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
        let error = found.osd().unwrap_err().to_string();
        assert!(
            error.contains("shoal-osd") && error.contains("-p osd"),
            "{error}"
        );
        std::fs::write(dir.path().join(OSD_BINARY), b"").unwrap();
        let found = Binaries::locate(Some(dir.path())).unwrap();
        assert!(found.osd().unwrap().ends_with(OSD_BINARY));
    }
}
