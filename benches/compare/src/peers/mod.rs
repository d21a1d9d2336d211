//! Peer frameworks, one module each, each written the way its own
//! documentation recommends (see `docs/compare-notes.md` for the choices).

pub mod actix_impl;
pub mod kameo_impl;
pub mod ractor_impl;
pub mod tokio_mpsc;
