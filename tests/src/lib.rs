//! Helpers shared by the multi-process integration tests (filled as the daemons arrive).
