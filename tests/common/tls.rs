//! A TLS client that records what the server presented (certificate chain, ALPN, version)
//! without judging it, so a test can assert on the certificate the node chose.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::DEADLINE;

/// What the server presented in a handshake.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
}

impl Presented {
    /// SHA-256 of the leaf, lowercase hex (the `sha256_fingerprint` of the admin API).
    pub fn fingerprint(&self) -> String {
        fingerprint(self.chain.first().expect("a certificate was presented"))
    }

    /// DNS names in the leaf's subjectAltName.
    pub fn names(&self) -> Vec<String> {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let der = self.chain.first().expect("a certificate was presented");
        let (_, cert) = X509Certificate::from_der(der).expect("the leaf parses");
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(n) = name {
                    names.push(n.to_string());
                }
            }
        }
        names
    }
}

/// SHA-256 of `der`, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The fingerprint of the first certificate in `pem`.
pub fn pem_fingerprint(pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate");
    fingerprint(&der)
}

/// A TLS connection and what the server presented on it.
pub struct TlsConn {
    pub stream: TlsStream<TcpStream>,
    pub presented: Presented,
}

impl TlsConn {
    /// The protocol ALPN settled on.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    }
}

/// Connects to `addr` with SNI `sni` (`None`: no SNI extension) offering `alpn`. With
/// `trust_root` the chain must verify against that root for `sni`; without, any chain is
/// accepted (and recorded), but the handshake signature is still checked against the leaf.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&str],
    trust_root: Option<&str>,
) -> Result<TlsConn, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = trust_root.map(|pem| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("root PEM")).expect("add the root");
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("a verifier")
    });
    let recorder = Arc::new(Recorder {
        provider: provider.clone(),
        inner,
        seen: Mutex::new(Vec::new()),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // rustls sends no SNI for an IP address.
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_owned()).expect("a DNS name"),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio::time::timeout(
        DEADLINE,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
    let chain = recorder.seen.lock().expect("recorder").clone();
    Ok(TlsConn {
        stream,
        presented: Presented { chain },
    })
}

/// A verifier that accepts any chain the server presents (its signatures are still checked),
/// for clients that test sessions rather than certificates.
pub fn any_certificate() -> Arc<dyn ServerCertVerifier> {
    Arc::new(Recorder {
        provider: Arc::new(rustls::crypto::ring::default_provider()),
        inner: None,
        seen: Mutex::new(Vec::new()),
    })
}

/// Records the presented chain; verifies it with `inner` when given.
#[derive(Debug)]
struct Recorder {
    provider: Arc<CryptoProvider>,
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    seen: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut seen = vec![end_entity.clone().into_owned()];
        seen.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.seen.lock().expect("recorder") = seen;
        match &self.inner {
            Some(inner) => {
                inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
