//! The TLS half of the transport (feature `otlp-tls`): loading the PEM files
//! into a rustls `ClientConfig`, and one connector (TCP, then a rustls
//! handshake) that both the HTTP client and the gRPC channel use, so both
//! protocols verify, present certificates and report failures alike.

use std::future::Future;
use std::io::{self, Read};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::Error;
use super::tls::{TlsConfig, TlsFailure, TlsRoots};

/// A PEM file larger than this is refused: CA bundles are a few hundred
/// KiB (the whole Mozilla set is about 220 KiB).
const MAX_PEM_BYTES: u64 = 4 << 20;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn file_err(what: &'static str, path: &Path, reason: impl Into<String>) -> Error {
    Error::TlsFile {
        what,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    let file = std::fs::File::open(path).map_err(|e| file_err(what, path, e.to_string()))?;
    let mut buf = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| file_err(what, path, e.to_string()))?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        return Err(file_err(
            what,
            path,
            format!("larger than {MAX_PEM_BYTES} bytes"),
        ));
    }
    Ok(buf)
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read_pem(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(what, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(
            what,
            path,
            "no PEM `CERTIFICATE` section in the file",
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let what = "client key";
    let pem = read_pem(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => file_err(
            what,
            path,
            "no PEM private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`) in the file",
        ),
        e => file_err(what, path, format!("not valid PEM: {e}")),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The root store `cfg` asks for.
fn root_store(cfg: &TlsConfig) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    let store = match (&cfg.ca_file, cfg.roots) {
        (_, Some(r)) => Some(r),
        (None, None) => Some(TlsRoots::WebPki),
        (Some(_), None) => None,
    };
    match store {
        Some(TlsRoots::WebPki) => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(TlsRoots::System) => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(Error::Config {
                    field: "exporter.tls.roots",
                    reason: format!(
                        "the system store has no usable root certificate{}{why}",
                        if why.is_empty() { "" } else { ": " }
                    ),
                });
            }
        }
        None => {}
    }
    if let Some(path) = &cfg.ca_file {
        let what = "CA certificate";
        for cert in certificates(what, path)? {
            roots
                .add(cert)
                .map_err(|e| file_err(what, path, format!("not a usable CA certificate: {e}")))?;
        }
    }
    Ok(roots)
}

/// Loads every file `cfg` names and builds the rustls client config,
/// offering `alpn` (`h2` for gRPC, `http/1.1` for OTLP/HTTP).
pub(crate) fn client_config(cfg: &TlsConfig, alpn: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    let roots = root_store(cfg)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config {
            field: "exporter.tls",
            reason: format!("the TLS provider offers no protocol version: {e}"),
        })?
        .with_root_certificates(roots);
    let mut config = match (&cfg.client_certificate_file, &cfg.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates("client certificate", cert)?;
            let key_der = private_key(key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                file_err(
                    "client key",
                    key,
                    format!("cannot be used with {}: {e}", cert.display()),
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), None) => {
            return Err(file_err(
                "client certificate",
                cert,
                "set without a client key",
            ));
        }
        (None, Some(key)) => {
            return Err(file_err(
                "client key",
                key,
                "set without a client certificate",
            ));
        }
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The TLS failure of the connection attempts since the last
/// [`take`](Self::take): the exporter turns a failed export into
/// [`Error::Tls`] with it, whatever the HTTP or gRPC stack made of the
/// error on its way up.
#[derive(Clone, Debug, Default)]
pub(crate) struct FailureSlot(Arc<Mutex<Option<Error>>>);

impl FailureSlot {
    fn set(&self, e: Error) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
    }

    /// Keeps a more precise failure already recorded.
    fn set_if_empty(&self, e: Error) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
    }

    pub(crate) fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// `host:port` of `uri` (the port of its scheme when none is given).
pub(crate) fn peer_of(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("");
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    format!("{host}:{port}")
}

/// What a rustls error means to an operator.
fn classify(e: &rustls::Error, expected: &str) -> TlsFailure {
    use rustls::AlertDescription as A;
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => TlsFailure::UnknownIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsFailure::NameMismatch {
                expected: expected.to_owned(),
            },
            C::Expired | C::ExpiredContext { .. } => TlsFailure::CertificateExpired,
            C::NotValidYet | C::NotValidYetContext { .. } => TlsFailure::CertificateNotYetValid,
            other => TlsFailure::BadCertificate(format!("{other:?}")),
        },
        rustls::Error::AlertReceived(
            a @ (A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::AccessDenied),
        ) => TlsFailure::ClientCertificateRejected(format!("alert {a:?}")),
        other => TlsFailure::Other(other.to_string()),
    }
}

/// The [`Error::Tls`] an I/O error of a TLS connection stands for, if any.
fn tls_error(e: &io::Error, peer: &str, host: &str) -> Option<Error> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(Error::Tls {
        peer: peer.to_owned(),
        reason: classify(inner, host),
    })
}

/// Notes whether the server asked for a client certificate (rustls asks
/// the resolver only then), and answers as the configured resolver does.
#[derive(Debug)]
struct NoteRequest {
    inner: Arc<dyn rustls::client::ResolvesClientCert>,
    asked: Arc<AtomicBool>,
}

impl rustls::client::ResolvesClientCert for NoteRequest {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.inner.resolve(root_hint_subjects, sigschemes)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner.only_raw_public_keys()
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

/// TCP, then a TLS handshake, for every connection the client opens.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    tcp: HttpConnector,
    config: Arc<ClientConfig>,
    failure: FailureSlot,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector").finish_non_exhaustive()
    }
}

impl TlsConnector {
    pub(crate) fn new(
        config: Arc<ClientConfig>,
        connect_timeout: Option<std::time::Duration>,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        Self {
            tcp,
            config,
            failure: FailureSlot::default(),
        }
    }

    /// Where handshake (and later alert) failures are left.
    pub(crate) fn failures(&self) -> FailureSlot {
        self.failure.clone()
    }
}

/// A message for a handshake that failed: the typed error travels in the
/// [`FailureSlot`]; this is what the HTTP or gRPC stack sees.
#[derive(Debug)]
struct HandshakeError(Error);

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for HandshakeError {}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TlsStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let peer = peer_of(&uri);
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = self.tcp.call(uri);
        // A config per connection (its Arcs shared), whose resolver tells
        // this connection whether the server asked for a certificate.
        let asked = Arc::new(AtomicBool::new(false));
        let mut config = ClientConfig::clone(&self.config);
        config.client_auth_cert_resolver = Arc::new(NoteRequest {
            inner: self.config.client_auth_cert_resolver.clone(),
            asked: asked.clone(),
        });
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
        let failure = self.failure.clone();
        Box::pin(async move {
            let name = ServerName::try_from(host.clone()).map_err(|e| -> BoxError {
                format!("{peer}: {host:?} is not a valid TLS server name: {e}").into()
            })?;
            let tcp = tcp.await.map_err(|e| -> BoxError { Box::new(e) })?;
            match tls.connect(name, tcp.into_inner()).await {
                Ok(stream) => Ok(TlsStream {
                    inner: TokioIo::new(Watched {
                        inner: stream,
                        peer,
                        host,
                        failure,
                        asked,
                        received: false,
                    }),
                }),
                Err(e) => {
                    let err = tls_error(&e, &peer, &host).unwrap_or_else(|| Error::Tls {
                        peer: peer.clone(),
                        reason: TlsFailure::Other(format!("the handshake failed: {e}")),
                    });
                    failure.set(err.clone());
                    Err(Box::new(HandshakeError(err)) as BoxError)
                }
            }
        })
    }
}

/// An established TLS connection, watched for failures that show only
/// after the handshake: in TLS 1.3 a server refuses a client certificate
/// after the client has finished its part, with a fatal alert the client
/// reads later, or, when the connection is reset first, with no alert at
/// all. Both are left in the [`FailureSlot`].
struct Watched {
    inner: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    peer: String,
    host: String,
    failure: FailureSlot,
    /// The server asked for a client certificate.
    asked: Arc<AtomicBool>,
    /// Application data arrived: the server accepted the connection.
    received: bool,
}

impl Watched {
    /// Records what an I/O error, or an early end of stream (`None`), says
    /// about TLS.
    fn failed(&self, e: Option<&io::Error>) {
        if let Some(err) = e.and_then(|e| tls_error(e, &self.peer, &self.host)) {
            self.failure.set(err);
        } else if !self.received && self.asked.load(Ordering::Relaxed) {
            let how = e.map_or_else(|| "end of stream".to_owned(), ToString::to_string);
            self.failure.set_if_empty(Error::Tls {
                peer: self.peer.clone(),
                reason: TlsFailure::ClientCertificateRejected(format!(
                    "no alert: the server asked for a client certificate and closed the \
                     connection before answering: {how}"
                )),
            });
        }
    }
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) if buf.filled().len() > before => self.received = true,
            Poll::Ready(Ok(())) => self.failed(None),
            Poll::Ready(Err(e)) => self.failed(Some(e)),
            Poll::Pending => {}
        }
        r
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Err(e)) = &r {
            self.failed(Some(e));
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Err(e)) = &r {
            self.failed(Some(e));
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Err(e)) = &r {
            self.failed(Some(e));
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connector's connection: a [`Watched`] TLS stream in hyper's I/O
/// traits.
pub(crate) struct TlsStream {
    inner: TokioIo<Watched>,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("peer", &self.inner.inner().peer)
            .finish_non_exhaustive()
    }
}

impl hyper::rt::Read for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

impl Connection for TlsStream {
    fn connected(&self) -> Connected {
        let (_, session) = self.inner.inner().inner.get_ref();
        if session.alpn_protocol() == Some(b"h2") {
            Connected::new().negotiated_h2()
        } else {
            Connected::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_host_and_port() {
        assert_eq!(
            peer_of(&"https://c.example/v1/traces".parse().unwrap()),
            "c.example:443"
        );
        assert_eq!(
            peer_of(&"http://127.0.0.1:4317".parse().unwrap()),
            "127.0.0.1:4317"
        );
        assert_eq!(peer_of(&"https://[::1]:9".parse().unwrap()), "[::1]:9");
    }

    #[test]
    fn rustls_errors_are_classified() {
        use rustls::CertificateError as C;
        let c = |e| classify(&rustls::Error::InvalidCertificate(e), "h");
        assert_eq!(c(C::UnknownIssuer), TlsFailure::UnknownIssuer);
        assert_eq!(
            c(C::NotValidForName),
            TlsFailure::NameMismatch {
                expected: "h".into()
            }
        );
        assert_eq!(c(C::Expired), TlsFailure::CertificateExpired);
        assert_eq!(c(C::NotValidYet), TlsFailure::CertificateNotYetValid);
        assert!(matches!(c(C::BadSignature), TlsFailure::BadCertificate(_)));
        assert_eq!(
            classify(
                &rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
                "h"
            ),
            TlsFailure::ClientCertificateRejected("alert CertificateRequired".into())
        );
        assert!(matches!(
            classify(
                &rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
                "h"
            ),
            TlsFailure::Other(_)
        ));
    }

    #[test]
    fn missing_and_invalid_files_name_the_file() {
        let dir = std::env::temp_dir().join(format!("obs-core-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = client_config(&TlsConfig::new().ca_file(&missing), b"h2").unwrap_err();
        assert!(
            matches!(&err, Error::TlsFile { what: "CA certificate", path, .. } if *path == missing),
            "{err:?}"
        );
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "hello, not a certificate\n").unwrap();
        let err = client_config(&TlsConfig::new().ca_file(&garbage), b"h2").unwrap_err();
        assert!(err.to_string().contains("no PEM `CERTIFICATE`"), "{err}");

        let bad_der = dir.join("bad-der.pem");
        std::fs::write(
            &bad_der,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = client_config(&TlsConfig::new().ca_file(&bad_der), b"h2").unwrap_err();
        assert!(
            matches!(&err, Error::TlsFile { what: "CA certificate", path, .. } if *path == bad_der),
            "{err:?}"
        );

        let err = client_config(&TlsConfig::new().client_identity(&bad_der, &garbage), b"h2")
            .unwrap_err();
        assert!(
            matches!(&err, Error::TlsFile { what: "client key", path, .. } if *path == garbage),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn webpki_roots_are_the_default() {
        let cfg = client_config(&TlsConfig::new(), b"http/1.1").unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(root_store(&TlsConfig::new()).unwrap().len() > 100);
    }
}
