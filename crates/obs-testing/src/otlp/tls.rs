//! TLS for the OTLP receiver (feature `tls`): a CA and certificates made in
//! the test with rcgen, the rustls server configs, the handshake, and the
//! gRPC listener's TLS stream.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::{Store, Transport};

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct CertifiedPem {
    /// The certificate (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// Its private key (PKCS#8, `-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
}

/// A certificate authority made for one test: it issues server and client
/// certificates. Two `TestPki`s never trust each other.
///
/// ```
/// let pki = obs_testing::otlp::TestPki::new("doc");
/// let server = pki.server_cert(&["localhost", "127.0.0.1"]);
/// assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(pki.ca_pem().contains("CERTIFICATE"));
/// ```
#[derive(Debug)]
pub struct TestPki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl TestPki {
    /// A new CA whose common name is `"{name} test CA"`.
    ///
    /// # Panics
    /// When rcgen cannot make a key or sign (it does not on supported
    /// platforms).
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("rcgen: CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("rcgen: CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("rcgen: CA certificate");
        Self { ca }
    }

    /// The CA certificate, PEM: what a client trusts.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> CertifiedPem {
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("rcgen: names");
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, (*first).to_owned());
        }
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().expect("rcgen: key");
        let cert = params.signed_by(&key, &self.ca).expect("rcgen: sign");
        CertifiedPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `names` (DNS names, or IP addresses such
    /// as `127.0.0.1`).
    pub fn server_cert(&self, names: &[&str]) -> CertifiedPem {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for `name`.
    pub fn client_cert(&self, name: &str) -> CertifiedPem {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A directory of PEM files for one test, removed when dropped.
#[derive(Debug)]
pub struct PemFiles {
    dir: PathBuf,
}

impl Default for PemFiles {
    fn default() -> Self {
        Self::new()
    }
}

impl PemFiles {
    /// Creates a fresh directory under the system temp directory.
    ///
    /// # Panics
    /// When it cannot be created.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "obs-testing-pem-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("pem files: cannot create the directory");
        Self { dir }
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("pem files: cannot write");
        path
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How the receiver serves TLS: its certificate and, for mutual TLS, the
/// CA its clients' certificates must chain to.
#[derive(Clone, Debug)]
pub struct ServerTls {
    cert: CertifiedPem,
    client_ca: Option<String>,
}

impl ServerTls {
    /// Serves `cert` and asks for no client certificate.
    pub fn new(cert: CertifiedPem) -> Self {
        Self {
            cert,
            client_ca: None,
        }
    }

    /// Requires a client certificate issued by the CA `ca_pem`: a client
    /// without one, or with another CA's, fails the handshake.
    pub fn require_client_cert(mut self, ca_pem: impl Into<String>) -> Self {
        self.client_ca = Some(ca_pem.into());
        self
    }

    pub(super) fn server_configs(&self) -> ServerConfigs {
        ServerConfigs {
            http: self.config(b"http/1.1"),
            grpc: self.config(b"h2"),
        }
    }

    fn config(&self, alpn: &[u8]) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("server tls: certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(self.cert.key_pem.as_bytes())
            .expect("server tls: key PEM");
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("server tls: protocol versions");
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots
                        .add(c.expect("server tls: client CA PEM"))
                        .expect("server tls: client CA");
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .expect("server tls: client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .expect("server tls: certificate and key");
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }
}

/// The rustls configs of both endpoints (ALPN differs).
#[derive(Debug)]
pub(super) struct ServerConfigs {
    pub(super) http: Arc<ServerConfig>,
    pub(super) grpc: Arc<ServerConfig>,
}

/// One TLS handshake the receiver completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSession {
    /// Which endpoint.
    pub transport: Transport,
    /// The common name of the client certificate presented, if any.
    pub client_certificate: Option<String>,
    /// The ALPN protocol agreed on.
    pub alpn: Option<String>,
}

/// The common name of a DER certificate: found by its OID (2.5.4.3) and
/// read as the UTF8String or PrintableString that follows. Enough for the
/// certificates [`TestPki`] issues.
fn common_name(der: &[u8]) -> Option<String> {
    const CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    // The subject follows the issuer: the last CN is the subject's.
    let at = der.windows(CN.len()).rposition(|w| w == CN)? + CN.len();
    let tag = *der.get(at)?;
    let len = usize::from(*der.get(at + 1)?);
    if !matches!(tag, 0x0c | 0x13) || len >= 0x80 {
        return None;
    }
    String::from_utf8(der.get(at + 2..at + 2 + len)?.to_vec()).ok()
}

/// Runs the server side of a handshake and records how it went.
pub(super) async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    store: &Store,
    transport: Transport,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match acceptor.accept(stream).await {
        Ok(tls) => {
            let (_, conn) = tls.get_ref();
            let session = TlsSession {
                transport,
                client_certificate: conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| common_name(c)),
                alpn: conn
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            };
            store
                .tls_sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(session);
            Some(tls)
        }
        Err(e) => {
            store
                .tls_failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((transport, e.to_string()));
            None
        }
    }
}

/// A server-side TLS stream tonic can serve.
pub(super) struct TlsIo(tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The gRPC listener's connections after their handshake: a task accepts
/// and hands each handshake to a task of its own, so a client that stalls
/// its handshake holds up no other.
pub(super) fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    store: Arc<Store>,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsIo, io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let store = store.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(tls) = handshake(&acceptor, stream, &store, Transport::Grpc).await {
                    let _ = tx.send(Ok(TlsIo(tls))).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_their_common_name() {
        let pki = TestPki::new("unit");
        let client = pki.client_cert("exporter-1");
        let der = CertificateDer::from_pem_slice(client.cert_pem.as_bytes()).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("exporter-1"));
        let ca = CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap();
        assert_eq!(common_name(&ca).as_deref(), Some("unit test CA"));
    }

    #[test]
    fn pem_files_are_removed_with_their_directory() {
        let files = PemFiles::new();
        let p = files.write("ca.pem", "x");
        assert!(p.exists());
        let dir = files.dir().to_owned();
        drop(files);
        assert!(!dir.exists());
    }
}
