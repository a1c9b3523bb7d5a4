//! The client's errors: [`ClientError`] for everything a call can end with, and
//! [`CommandFailure`] / [`CommandErrorKind`] for a command the monitors refused, converted
//! from mon.proto's `CommandError` in one place ([`CommandFailure::from_proto`]).

use std::fmt;

use proto::mon::CommandError as ProtoCommandError;
use proto::mon::CommandErrorKind as ProtoKind;

use crate::config::ConfigError;

/// Why the monitors refused a command (mon.proto `CommandErrorKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandErrorKind {
    /// A malformed or out-of-range argument.
    InvalidArgument,
    /// A named pool, OSD, bucket, rule or monitor does not exist.
    NotFound,
    /// Something with that name or id exists already.
    AlreadyExists,
    /// The change conflicts with the cluster's state.
    Conflict,
    /// No leader committed the change in time; it may still commit later.
    NoQuorum,
    /// A monitor failed internally.
    Internal,
    /// The cluster is still being created.
    NotReady,
    /// A kind this client does not know (a newer monitor).
    Unknown,
}

impl CommandErrorKind {
    fn from_proto(code: i32) -> Self {
        match ProtoKind::try_from(code) {
            Ok(ProtoKind::InvalidArgument) => CommandErrorKind::InvalidArgument,
            Ok(ProtoKind::NotFound) => CommandErrorKind::NotFound,
            Ok(ProtoKind::AlreadyExists) => CommandErrorKind::AlreadyExists,
            Ok(ProtoKind::Conflict) => CommandErrorKind::Conflict,
            Ok(ProtoKind::NoQuorum) => CommandErrorKind::NoQuorum,
            Ok(ProtoKind::Internal) => CommandErrorKind::Internal,
            Ok(ProtoKind::NotReady) => CommandErrorKind::NotReady,
            Ok(ProtoKind::Unspecified) | Err(_) => CommandErrorKind::Unknown,
        }
    }

    /// The POSIX-style errno Ceph's tools report for this kind (`EINVAL` = 22, ...), used
    /// as the CLI's exit code.
    pub fn errno(self) -> i32 {
        match self {
            CommandErrorKind::InvalidArgument => 22, // EINVAL
            CommandErrorKind::NotFound => 2,         // ENOENT
            CommandErrorKind::AlreadyExists => 17,   // EEXIST
            CommandErrorKind::Conflict => 16,        // EBUSY
            CommandErrorKind::NoQuorum => 110,       // ETIMEDOUT
            CommandErrorKind::NotReady => 11,        // EAGAIN
            CommandErrorKind::Internal | CommandErrorKind::Unknown => 5, // EIO
        }
    }
}

impl fmt::Display for CommandErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            CommandErrorKind::InvalidArgument => "invalid argument",
            CommandErrorKind::NotFound => "not found",
            CommandErrorKind::AlreadyExists => "already exists",
            CommandErrorKind::Conflict => "conflict",
            CommandErrorKind::NoQuorum => "no quorum",
            CommandErrorKind::Internal => "internal error",
            CommandErrorKind::NotReady => "not ready",
            CommandErrorKind::Unknown => "error",
        };
        f.write_str(name)
    }
}

/// A command the monitors answered with an error.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommandFailure {
    /// The category.
    pub kind: CommandErrorKind,
    /// The argument at fault (`pg_num`, `name`), empty when there is none.
    pub argument: String,
    /// The monitors' explanation, naming the problem.
    pub message: String,
    /// The epoch of the map the command was checked against.
    pub epoch: u64,
}

impl CommandFailure {
    /// Converts mon.proto's error.
    pub fn from_proto(error: ProtoCommandError) -> Self {
        CommandFailure {
            kind: CommandErrorKind::from_proto(error.kind),
            argument: error.argument,
            message: error.message,
            epoch: error.epoch,
        }
    }
}

impl fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // The monitors' messages usually name the argument already; add it when not.
        if !self.argument.is_empty() && !self.message.contains(&self.argument) {
            write!(f, " (argument `{}`)", self.argument)?;
        }
        Ok(())
    }
}

/// One monitor that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorAttempt {
    /// Its address.
    pub addr: String,
    /// What went wrong.
    pub reason: String,
}

fn list_attempts(attempts: &[MonitorAttempt]) -> String {
    attempts
        .iter()
        .map(|attempt| format!("{}: {}", attempt.addr, attempt.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything a monitor client call can end with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The client knows no monitor address.
    #[error("no monitor addresses configured")]
    NoMonitors,
    /// A monitor address is not usable as a gRPC endpoint.
    #[error("bad monitor address `{addr}`: {reason}")]
    BadAddress {
        /// The address.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// No monitor answered.
    #[error("no monitor answered ({})", list_attempts(.attempts))]
    Unreachable {
        /// Each monitor tried, with its failure.
        attempts: Vec<MonitorAttempt>,
    },
    /// The monitors refused the command (nothing changed, unless the kind is
    /// [`CommandErrorKind::NoQuorum`]).
    #[error("{0}")]
    Command(CommandFailure),
    /// No monitor could commit the command before the timeout: fewer than a majority of
    /// monitors are reachable. The change may still commit later.
    #[error("no quorum: {detail}")]
    NoQuorum {
        /// What the monitors or the client saw.
        detail: String,
    },
    /// A map or incremental from a monitor could not be decoded.
    #[error("cannot decode the {what} from monitor {addr}: {reason}")]
    Decode {
        /// "map" or "incremental".
        what: &'static str,
        /// The monitor.
        addr: String,
        /// The decoder's message.
        reason: String,
    },
    /// A monitor answered with something this client cannot use.
    #[error("monitor {addr}: {reason}")]
    Protocol {
        /// The monitor.
        addr: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// Waiting for a condition (a map epoch, a map watch) took too long.
    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited_ms: u128,
    },
}

impl ClientError {
    /// The command failure, when this is one (a [`ClientError::NoQuorum`] counts as a
    /// failure of kind [`CommandErrorKind::NoQuorum`]).
    pub fn command_kind(&self) -> Option<CommandErrorKind> {
        match self {
            ClientError::Command(failure) => Some(failure.kind),
            ClientError::NoQuorum { .. } => Some(CommandErrorKind::NoQuorum),
            _ => None,
        }
    }

    /// True for "no quorum" answers and when no monitor could be reached at all.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientError::NoQuorum { .. } | ClientError::Unreachable { .. }
        )
    }
}

/// Everything an object operation ([`crate::Rados`], [`crate::IoCtx`]) can end with.
///
/// The OSD's answers (osd.proto `OpErrorKind`) are converted in one place,
/// [`RadosError::from_op_error`]; the kinds the client handles itself (`STALE_EPOCH`,
/// `MISDIRECTED`, `BUSY`: refresh and resend) only surface as [`RadosError::Timeout`] when
/// resending never succeeded.
#[derive(Debug, thiserror::Error)]
pub enum RadosError {
    /// The object does not exist.
    #[error("object `{object}` does not exist")]
    NotFound {
        /// The object (`namespace/name` inside a namespace).
        object: String,
    },
    /// An exclusive create found the object existing.
    #[error("object `{object}` already exists")]
    Exists {
        /// The object.
        object: String,
    },
    /// An `assert_version` guard failed; nothing was changed.
    #[error("object `{object}` is at version {actual}, not the asserted one")]
    VersionMismatch {
        /// The object.
        object: String,
        /// The object's actual version.
        actual: crate::op::Version,
    },
    /// The named extended attribute does not exist (the object does).
    #[error("object `{object}` has no xattr `{name}`")]
    NoSuchXattr {
        /// The object.
        object: String,
        /// The attribute.
        name: String,
    },
    /// The operation was not acknowledged within the op timeout. A write that times out
    /// may or may not have been applied; it was never reported as done.
    #[error("timed out after {waited_ms} ms on object `{object}` waiting for {what}")]
    Timeout {
        /// The object (or `pg X` for listings).
        object: String,
        /// What the client was waiting for, with the last answer it got.
        what: String,
        /// How long it waited.
        waited_ms: u128,
    },
    /// The pool does not exist.
    #[error("pool `{pool}` does not exist")]
    PoolNotFound {
        /// The pool's name or id.
        pool: String,
    },
    /// A malformed request, refused by the client before sending or by the OSD.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },
    /// The object would grow beyond the maximum object size, or a message beyond the
    /// largest the OSDs accept.
    #[error("object `{object}` too large: {reason}")]
    TooLarge {
        /// The object.
        object: String,
        /// The OSD's or the client's explanation.
        reason: String,
    },
    /// Stored data failed its checksum on the primary.
    #[error("object `{object}`: data corruption: {reason}")]
    Corruption {
        /// The object.
        object: String,
        /// The OSD's explanation.
        reason: String,
    },
    /// The OSD failed internally; a write may or may not have been applied.
    #[error("osd.{osd} failed on object `{object}`: {reason}")]
    Internal {
        /// The OSD.
        osd: i32,
        /// The object.
        object: String,
        /// The OSD's explanation.
        reason: String,
    },
    /// The monitors could not be used (no map).
    #[error(transparent)]
    Mon(#[from] ClientError),
    /// An OSD address cannot be used, or an OSD answered with something the client cannot
    /// read.
    #[error("osd.{osd}: {reason}")]
    Transport {
        /// The OSD.
        osd: i32,
        /// What went wrong.
        reason: String,
    },
}

impl RadosError {
    /// Converts an OSD's final answer for `object` from `osd`. The retryable kinds
    /// (`STALE_EPOCH`, `MISDIRECTED`, `BUSY`) never reach this function in the op path;
    /// converted here anyway they read as [`RadosError::Internal`].
    pub fn from_op_error(osd: i32, object: &str, error: &proto::osd::OpError) -> RadosError {
        use proto::osd::OpErrorKind as Kind;
        let object = object.to_owned();
        let reason = error.message.clone();
        match Kind::try_from(error.kind) {
            Ok(Kind::NotFound) => RadosError::NotFound { object },
            Ok(Kind::Exists) => RadosError::Exists { object },
            Ok(Kind::VersionMismatch) => RadosError::VersionMismatch {
                object,
                actual: error
                    .actual_version
                    .as_ref()
                    .map(crate::op::Version::from_proto)
                    .unwrap_or_default(),
            },
            Ok(Kind::InvalidArgument) => RadosError::InvalidArgument {
                reason: format!("object `{object}`: {reason}"),
            },
            Ok(Kind::TooLarge) => RadosError::TooLarge { object, reason },
            Ok(Kind::PoolNotFound) => RadosError::PoolNotFound {
                pool: if reason.is_empty() {
                    format!("of object `{object}`")
                } else {
                    reason
                },
            },
            Ok(Kind::Corruption) => RadosError::Corruption { object, reason },
            Ok(
                Kind::Internal
                | Kind::StaleEpoch
                | Kind::Misdirected
                | Kind::Busy
                | Kind::Unspecified,
            )
            | Err(_) => RadosError::Internal {
                osd,
                object,
                reason: format!("{:?}: {reason}", Kind::try_from(error.kind).ok()),
            },
        }
    }

    /// The POSIX errno Ceph's tools use for this error (`ENOENT` = 2, ...), for exit codes.
    pub fn errno(&self) -> i32 {
        match self {
            RadosError::NotFound { .. } | RadosError::PoolNotFound { .. } => 2, // ENOENT
            RadosError::NoSuchXattr { .. } => 61,                               // ENODATA
            RadosError::Exists { .. } => 17,                                    // EEXIST
            RadosError::VersionMismatch { .. } => 34,                           // ERANGE
            RadosError::InvalidArgument { .. } => 22,                           // EINVAL
            RadosError::TooLarge { .. } => 27,                                  // EFBIG
            RadosError::Timeout { .. } => 110,                                  // ETIMEDOUT
            RadosError::Corruption { .. }
            | RadosError::Internal { .. }
            | RadosError::Mon(_)
            | RadosError::Transport { .. } => 5, // EIO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::osd::{Eversion, OpError, OpErrorKind};

    fn error(kind: OpErrorKind, message: &str) -> OpError {
        OpError {
            kind: kind as i32,
            message: message.to_owned(),
            actual_version: None,
        }
    }

    #[test]
    fn osd_errors_map_to_typed_errors() {
        let map = |kind, message| RadosError::from_op_error(3, "ns/obj", &error(kind, message));
        assert!(
            matches!(map(OpErrorKind::NotFound, ""), RadosError::NotFound { object } if object == "ns/obj")
        );
        assert!(matches!(
            map(OpErrorKind::Exists, ""),
            RadosError::Exists { .. }
        ));
        assert!(
            matches!(map(OpErrorKind::InvalidArgument, "bad offset"), RadosError::InvalidArgument { reason } if reason.contains("bad offset") && reason.contains("ns/obj"))
        );
        assert!(
            matches!(map(OpErrorKind::TooLarge, "over 128 MiB"), RadosError::TooLarge { reason, .. } if reason == "over 128 MiB")
        );
        assert!(matches!(
            map(OpErrorKind::Corruption, "chunk 3"),
            RadosError::Corruption { .. }
        ));
        assert!(matches!(
            map(OpErrorKind::PoolNotFound, "pool 9"),
            RadosError::PoolNotFound { .. }
        ));
        assert!(matches!(
            map(OpErrorKind::Internal, "disk"),
            RadosError::Internal { osd: 3, .. }
        ));
        let mut mismatch = error(OpErrorKind::VersionMismatch, "");
        mismatch.actual_version = Some(Eversion {
            epoch: 5,
            version: 42,
        });
        match RadosError::from_op_error(1, "o", &mismatch) {
            RadosError::VersionMismatch { actual, .. } => {
                assert_eq!((actual.epoch, actual.version), (5, 42))
            }
            other => panic!("unexpected {other:?}"),
        }
        // An unknown kind from a newer OSD is an internal error, not a panic.
        let unknown = OpError {
            kind: 99,
            message: "new".into(),
            actual_version: None,
        };
        assert!(matches!(
            RadosError::from_op_error(1, "o", &unknown),
            RadosError::Internal { .. }
        ));
        assert_eq!(map(OpErrorKind::NotFound, "").errno(), 2);
    }
}
