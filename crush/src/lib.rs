//! CRUSH placement, bit-compatible with Ceph 16's `crushtool` and OSDMap.
//!
//! The crate owns the CRUSH map model ([`model`]), Ceph's hashes ([`hash`]), straw2's
//! fixed-point logarithm ([`ln`]), the mapper that runs rules ([`mapper`]), device-class shadow
//! trees ([`shadow`]), Ceph's decompiled text format ([`text`]), a builder API for the monitors
//! ([`builder`]) and previews of data movement and utilization ([`analysis`]). It is pure: no
//! I/O, no async, no global state.
#![deny(missing_docs)]

pub mod analysis;
pub mod builder;
pub mod hash;
pub mod ln;
pub mod mapper;
pub mod model;
pub mod shadow;
pub mod text;

pub use mapper::{Mapper, Workspace};
pub use model::*;
