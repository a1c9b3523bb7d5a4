//! Routes raft-rs's `slog` records into `tracing`, so the monitor has one log stream.
//!
//! raft-rs logs through a `slog::Logger` it is handed; [`raft_logger`] builds one whose drain
//! emits a `tracing` event per record (target `raft`), with the record's key-value pairs
//! appended to the message. slog's own compile-time level ceiling still applies (release
//! builds drop raft's debug records before they reach us).

use std::fmt::{self, Write as _};

use slog::{Drain, Key, Level, OwnedKVList, Record, Serializer, KV};

/// A `slog` drain that forwards every record to `tracing`.
struct TracingDrain;

/// Collects a record's key-value pairs as ` key=value` text.
struct KeyValueText(String);

impl Serializer for KeyValueText {
    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments) -> slog::Result {
        // Writing into a String cannot fail.
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut text = KeyValueText(String::new());
        // Serializing into a String cannot fail; a failure would only lose the key-values.
        let _ = record.kv().serialize(record, &mut text);
        let _ = values.serialize(record, &mut text);
        let message = record.msg();
        let pairs = text.0;
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{message}{pairs}"),
            Level::Warning => tracing::warn!(target: "raft", "{message}{pairs}"),
            Level::Info => tracing::info!(target: "raft", "{message}{pairs}"),
            Level::Debug => tracing::debug!(target: "raft", "{message}{pairs}"),
            Level::Trace => tracing::trace!(target: "raft", "{message}{pairs}"),
        }
        Ok(())
    }
}

/// A logger for raft-rs that writes through `tracing`, tagged with the monitor's id.
pub fn raft_logger(monitor_id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("mon" => monitor_id))
}
