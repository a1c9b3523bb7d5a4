//! The client library: connect to the monitors, cache the map, compute placement and talk
//! to OSDs directly.
//!
//! Not built yet: the OSD issue brings it.
