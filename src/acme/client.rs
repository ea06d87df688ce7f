//! The HTTP client under instant-acme. It is ours for two reasons: a private CA's root bundle
//! (`acme.ca_bundle`) must be trusted, and the `Retry-After` header of a `rateLimited` or `503`
//! answer must reach the scheduler (catalogue P4), while instant-acme keeps only the problem
//! document; and the `Retry-After` of a successful poll (RFC 8555 §7.5.1, §8.2: the CA's hint
//! while it validates or issues) must reach the order's poller, which instant-acme keeps to
//! itself when we poll step by step.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use super::AcmeError;

type Inner = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// An HTTPS client that remembers the last `Retry-After` the CA sent.
#[derive(Clone)]
pub(super) struct AcmeHttp {
    inner: Inner,
    /// From a `429` or `503`: when the CA takes requests again (the renewer's next attempt).
    retry_after: Arc<Mutex<Option<SystemTime>>>,
    /// From any other answer: when to poll again (the order's poller).
    poll_hint: Arc<Mutex<Option<SystemTime>>>,
    timeout: Duration,
}

impl AcmeHttp {
    /// Trusts `ca_bundle` (PEM, one or more roots) when given, the platform's roots otherwise.
    /// A request that gets no answer within `timeout` fails (a hung CA must not stall renewals).
    pub(super) fn new(ca_bundle: Option<&Path>, timeout: Duration) -> Result<Self, AcmeError> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match ca_bundle {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
                    AcmeError::Config(format!("acme.ca_bundle {}: {e}", path.display()))
                })?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        AcmeError::Config(format!("acme.ca_bundle {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        AcmeError::Config(format!("acme.ca_bundle {}: {e}", path.display()))
                    })?;
                }
                if roots.is_empty() {
                    return Err(AcmeError::Config(format!(
                        "acme.ca_bundle {}: no certificate found",
                        path.display()
                    )));
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| AcmeError::Config(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                builder.with_tls_config(config)
            }
            None => builder
                .try_with_platform_verifier()
                .map_err(|e| AcmeError::Config(format!("platform certificate verifier: {e}")))?,
        };
        let connector = builder.https_only().enable_http1().enable_http2().build();
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            inner,
            retry_after: Arc::new(Mutex::new(None)),
            poll_hint: Arc::new(Mutex::new(None)),
            timeout,
        })
    }

    /// Takes the `Retry-After` instant recorded since the last call, if any.
    pub(super) fn take_retry_after(&self) -> Option<SystemTime> {
        self.retry_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Takes the `Retry-After` instant of the last successful answer that had one, if any.
    pub(super) fn take_poll_hint(&self) -> Option<SystemTime> {
        self.poll_hint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = HttpClient::request(&self.inner, req);
        let slot = self.retry_after.clone();
        let hint = self.poll_hint.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let rsp = tokio::time::timeout(timeout, fut).await.map_err(|_| {
                instant_acme::Error::Other(
                    format!("no answer from the CA within {timeout:?}").into(),
                )
            })??;
            let status = rsp.parts.status.as_u16();
            let retry_after = rsp
                .parts
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            if let Some(at) = retry_after {
                let target = if status == 429 || status == 503 {
                    &slot
                } else {
                    &hint
                };
                *target.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
            }
            Ok(rsp)
        })
    }
}

/// RFC 9110 §10.2.3: delay-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(SystemTime::now() + Duration::from_secs(secs));
    }
    httpdate::parse_http_date(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let soon = parse_retry_after("120").unwrap_or(SystemTime::UNIX_EPOCH);
        assert!(soon > SystemTime::now() + Duration::from_secs(100));
        let date = parse_retry_after("Fri, 31 Dec 2100 23:59:59 GMT");
        assert!(date.is_some());
        assert!(parse_retry_after("soon").is_none());
    }
}
