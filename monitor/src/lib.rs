//! The monitor (`shoal-mon`): Raft over the `kv` engine, the cluster-map state machine, the
//! monitor gRPC services and the failure policy.
//!
//! Not built yet: the monitors' issue brings it.
