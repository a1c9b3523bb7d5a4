//! The client's errors: [`RadosError`] for object operations, and the monitor client's
//! [`ClientError`], [`CommandFailure`] and [`CommandErrorKind`] (owned by `monclient`,
//! re-exported here).

pub use monclient::error::{ClientError, CommandErrorKind, CommandFailure, MonitorAttempt};

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
    /// The write needs space and an OSD of the object's PG is full; nothing was changed.
    /// Removals and truncations still work; the write succeeds again once space is freed
    /// or added (the OSD's message names the full OSD and its usage).
    #[error("no space for object `{object}`: {reason}")]
    NoSpace {
        /// The object.
        object: String,
        /// The OSD's explanation.
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
            Ok(Kind::NoSpace) => RadosError::NoSpace { object, reason },
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
            RadosError::NoSpace { .. } => 28,                                   // ENOSPC
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
        let full = map(OpErrorKind::NoSpace, "osd.2 is full");
        assert!(
            matches!(&full, RadosError::NoSpace { object, reason } if object == "ns/obj" && reason == "osd.2 is full")
        );
        assert_eq!(full.errno(), 28);
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
