//! What the node knows: challenge answers and certificates, as lock-free snapshots for the
//! serving path, and their files in the state directory.
//!
//! Writers (admin API, ACME, fleet) validate, persist, then publish a new snapshot; readers on the
//! request and handshake paths only ever load an `Arc` (arc-swap), so a write never makes a request
//! wait.

pub mod certs;
pub mod challenge;
pub mod fsio;
pub mod layout;

pub use certs::{CertRefusal, CertStore};
pub use challenge::ChallengeStore;
pub use layout::StateDir;
