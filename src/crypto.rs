//! The TLS crypto provider of the serving path, chosen once for the whole process.
//!
//! aws-lc-rs, because the handshake is the costliest thing the edge does and aws-lc's X25519
//! and P-256 are assembly where ring's X25519 is portable code (a handshake profile on this
//! kind of machine had ring's curve25519 at a fifth of the server's CPU). TLS 1.3 suites are
//! chosen in this order, whatever the client's (`serve::tls`): AES-128-GCM-SHA256, then
//! ChaCha20-Poly1305. rustls cannot prefer ChaCha20 only for clients that list it first (devices
//! without AES instructions, as BoringSSL does); such clients pay AES in software, the rest
//! save ChaCha20's cost per byte. Both hash with SHA-256, which has CPU
//! instructions, where AES-256-GCM-SHA384 hashes with SHA-384, which has none on x86 and cost a
//! tenth of a handshake. RFC 8446 §9.1 makes AES-128-GCM-SHA256 mandatory for every client, so
//! no client is left out. TLS 1.2 keeps the ECDHE AEAD suites.
//!
//! pingora builds its rustls `ServerConfig` from the process-default provider, so this one must
//! be installed before the listeners are built: [`install`].

use std::sync::Arc;

use rustls::crypto::{aws_lc_rs, CryptoProvider};

/// The provider the node serves with.
pub fn provider() -> Arc<CryptoProvider> {
    use aws_lc_rs::cipher_suite as cs;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..aws_lc_rs::default_provider()
    })
}

/// Makes [`provider`] the process default; a provider installed earlier stays (and is
/// reported), which only happens in tests that build several servers in one process.
pub fn install() {
    if let Err(existing) = CryptoProvider::install_default(CryptoProvider::clone(&provider())) {
        tracing::debug!(
            suites = existing.cipher_suites.len(),
            "a crypto provider was already installed"
        );
    }
}

/// Loads a private key into a signing key of the serving provider.
pub fn signing_key(
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
    aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key)
}
