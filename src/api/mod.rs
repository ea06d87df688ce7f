//! The admin API as its clients and its server share it: the documents every endpoint takes
//! and answers ([`documents`]), and the one client that talks to a node ([`AdminClient`]).
//! The routes (`admin`) write these types, the CLI and the probe's node client read them; it
//! sits below both in the data flow, so the probe can use it without reaching up into `admin`.

mod client;
mod documents;

pub use client::{AdminClient, ClientError};
pub use documents::wire_name;
pub use documents::{
    CertDetail, CertInstalled, CertList, CertNotIssued, CertPut, CertView, ChallengeCounts,
    ErrorBody, EtcdFleet, FleetError, FleetStatus, Health, NameOwnerView, NotServed, PassedOver,
    PkiFileView, PkiFiles, PkiPut, ProbeFinding, ProbeSummary, Removed, RenewRequested, Status,
    TokenEntry, TokenList, TokenPut, TxtPut, TxtRecord, TxtRecords,
};
