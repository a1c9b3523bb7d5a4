//! The monitor client's errors: [`ClientError`] for everything a call can end with, and
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
