//! The local cluster launcher used by `shoal cluster up` and by the integration tests, plus
//! container, compose, Kubernetes and systemd files.
//!
//! Not built yet: the monitors' issue brings it.
