//! The ordered key-value engine trait (get, range scan, atomic batch, durable sync) and its
//! fjall, sled and memory backends.
//!
//! Not built yet: the monitors' issue brings it.
