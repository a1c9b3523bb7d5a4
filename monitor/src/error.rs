//! The monitor's error types and, in one place, how they become protocol answers: command
//! errors become `CommandError` replies (kind + the argument at fault), everything else a
//! gRPC status.

use std::time::Duration;

use clustermap::ChangeError;
use crush::builder::BuildError;
use proto::mon::{CommandError as ProtoCommandError, CommandErrorKind};

use crate::config::ConfigError;
use crate::node::{NodeError, ProposeError};
use crate::state::CommandError;
use crate::store::StoreError;

/// Why a monitor could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MonError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The storage engine could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] kv::Error),
    /// The Raft store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Raft node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A file of the data directory or the listening socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Server(#[from] tonic::transport::Error),
}

/// Why a submitted command produced no result, as the services see it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The command was refused (validation or apply); nothing changed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// No leader committed it in time.
    #[error("no quorum: {detail}")]
    NoQuorum {
        /// What was tried.
        detail: String,
    },
    /// A membership change was refused by Raft.
    #[error("{0}")]
    Membership(String),
    /// The monitor is stopping.
    #[error("the monitor is shutting down")]
    Stopped,
}

impl SubmitError {
    /// The error for a command that did not commit within `timeout`.
    pub fn no_quorum(timeout: Duration, leader: u64) -> Self {
        let detail = if leader == 0 {
            format!(
                "no leader was elected within {} ms; fewer than a majority of monitors are reachable",
                timeout.as_millis()
            )
        } else {
            format!(
                "the command was not committed within {} ms (leader was monitor {leader}); \
                 fewer than a majority of monitors may be reachable",
                timeout.as_millis()
            )
        };
        SubmitError::NoQuorum { detail }
    }

    /// Converts a node-level error; `NotLeader` is handled by the caller (retry) and
    /// mapped to no quorum only when the deadline passed.
    pub fn from_propose(error: ProposeError<CommandError>, timeout: Duration) -> Self {
        match error {
            ProposeError::Rejected(error) => SubmitError::Command(error),
            ProposeError::NotLeader { leader } => SubmitError::no_quorum(timeout, leader),
            ProposeError::Timeout => SubmitError::no_quorum(timeout, 0),
            ProposeError::MembershipBusy => SubmitError::Membership(
                "another monitor membership change is still being committed; retry".to_owned(),
            ),
            ProposeError::Membership(reason) => SubmitError::Membership(reason),
            ProposeError::Stopped => SubmitError::Stopped,
        }
    }

    /// The proto form of the error, with the epoch the command was checked against.
    pub fn to_proto(&self, epoch: u64) -> ProtoCommandError {
        let (kind, argument) = match self {
            SubmitError::Command(error) => kind_of(error),
            SubmitError::NoQuorum { .. } => (CommandErrorKind::NoQuorum, String::new()),
            SubmitError::Membership(_) => (CommandErrorKind::Conflict, String::new()),
            SubmitError::Stopped => (CommandErrorKind::NoQuorum, String::new()),
        };
        ProtoCommandError {
            kind: kind as i32,
            argument,
            message: self.to_string(),
            epoch,
        }
    }
}

/// The kind and the argument of a command error.
pub fn kind_of(error: &CommandError) -> (CommandErrorKind, String) {
    use CommandErrorKind as K;
    match error {
        CommandError::Change(error) => change_kind(error),
        CommandError::InvalidArgument { argument, .. } => (K::InvalidArgument, argument.clone()),
        CommandError::NotCreated => (K::NotReady, String::new()),
        CommandError::AlreadyCreated => (K::AlreadyExists, String::new()),
        CommandError::MonitorExists { .. } => (K::AlreadyExists, "id".to_owned()),
        CommandError::MonitorNotFound { .. } => (K::NotFound, "id".to_owned()),
        CommandError::Stale { .. } => (K::Conflict, String::new()),
    }
}

fn change_kind(error: &ChangeError) -> (CommandErrorKind, String) {
    use CommandErrorKind as K;
    let (kind, argument) = match error {
        ChangeError::InvalidArgument { argument, .. } => (K::InvalidArgument, *argument),
        ChangeError::PoolExists { .. } => (K::AlreadyExists, "name"),
        ChangeError::PoolNotFound { .. } => (K::NotFound, "name"),
        ChangeError::PoolFlagForbids { flag, .. } => (K::Conflict, *flag),
        ChangeError::NotForPoolType { setting, .. } => (K::InvalidArgument, *setting),
        ChangeError::RuleNotFound { .. } => (K::NotFound, "crush_rule"),
        ChangeError::RuleTypeMismatch { .. } => (K::InvalidArgument, "crush_rule"),
        ChangeError::NoRuleForPoolType { .. } => (K::NotFound, "crush_rule"),
        ChangeError::RuleInUse { .. } => (K::Conflict, "crush_rule"),
        ChangeError::InvalidCrushMap { .. } => (K::InvalidArgument, "crush_map"),
        ChangeError::OsdNotFound { .. } => (K::NotFound, "ids"),
        ChangeError::OsdExists { .. } => (K::AlreadyExists, "osd_id"),
        ChangeError::OsdUuidExists { .. } => (K::AlreadyExists, "uuid"),
        ChangeError::OsdUuidMismatch { .. } => (K::InvalidArgument, "uuid"),
        ChangeError::OsdIsUp { .. } => (K::Conflict, "ids"),
        ChangeError::OsdNotUp { .. } => (K::Conflict, "ids"),
        ChangeError::OsdIdsExhausted => (K::Conflict, "osd_id"),
        ChangeError::PgNotFound { .. } => (K::NotFound, "pgid"),
        ChangeError::InvalidPgTemp { .. } => (K::InvalidArgument, "osds"),
        ChangeError::MonitorExists { .. } => (K::AlreadyExists, "name"),
        ChangeError::MonitorNotFound { .. } => (K::NotFound, "name"),
        ChangeError::LastMonitor { .. } => (K::Conflict, "id"),
        ChangeError::EpochExhausted => (K::Internal, ""),
        ChangeError::Crush(error) => return crush_kind(error),
    };
    (kind, argument.to_owned())
}

fn crush_kind(error: &BuildError) -> (CommandErrorKind, String) {
    use CommandErrorKind as K;
    let (kind, argument) = match error {
        BuildError::UnknownName { .. } => (K::NotFound, "name"),
        BuildError::UnknownType { .. } => (K::NotFound, "type"),
        BuildError::UnknownClass { .. } => (K::NotFound, "device_class"),
        BuildError::UnknownRule { .. } => (K::NotFound, "name"),
        BuildError::DuplicateName { .. } | BuildError::DuplicateRule { .. } => {
            (K::AlreadyExists, "name")
        }
        BuildError::DuplicateId { .. } => (K::AlreadyExists, "id"),
        BuildError::InvalidName { .. } => (K::InvalidArgument, "name"),
        BuildError::InvalidWeight { .. } | BuildError::WeightOverflow { .. } => {
            (K::InvalidArgument, "weight")
        }
        BuildError::InvalidLocation { .. }
        | BuildError::TypeMismatch { .. }
        | BuildError::Cycle { .. } => (K::InvalidArgument, "location"),
        BuildError::DeviceTypeForBucket { .. } => (K::InvalidArgument, "type"),
        BuildError::BucketNotEmpty { .. } | BuildError::InUseByRule { .. } => (K::Conflict, "name"),
        BuildError::ShadowBucket { .. }
        | BuildError::NotADevice { .. }
        | BuildError::NotABucket { .. }
        | BuildError::NotPlaced { .. } => (K::InvalidArgument, "name"),
        _ => (K::InvalidArgument, ""),
    };
    (kind, argument.to_owned())
}
