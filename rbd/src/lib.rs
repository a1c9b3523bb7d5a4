//! Block images striped over objects, and the NBD server (`shoal-nbd`).
//!
//! Not built yet: the block-device issue brings it.
