//! TLS settings: [`TlsServer`] for a listener's connections, [`TlsClient`] for outgoing ones,
//! [`StartTls`] for upgrading an open connection.
//!
//! Why thin wrappers over rustls' configurations rather than a settings struct of our own:
//! rustls' `ServerConfig` and `ClientConfig` already say everything (versions, suites, roots,
//! client authentication, resumption), and a program that needs one of those knobs builds its
//! own and hands it over ([`TlsServer::new`], [`TlsClient::new`]). The wrappers add what a
//! rustls configuration does not hold: where certificates come from in the common case (PEM
//! files, the Mozilla roots), the server name a client verifies, and the handshake timeout.

use super::error::TlsConfigError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The handshake timeout unless set otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider configurations are built with: the process default if one is
/// installed, else the one compiled in (see `docs/decisions/tls-crypto-provider.md`).
pub(crate) fn provider() -> Result<Arc<CryptoProvider>, TlsConfigError> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Ok(installed.clone());
    }
    compiled_in().ok_or(TlsConfigError::NoProvider)
}

#[allow(unreachable_code)]
fn compiled_in() -> Option<Arc<CryptoProvider>> {
    #[cfg(feature = "tls-ring")]
    return Some(Arc::new(rustls::crypto::ring::default_provider()));
    #[cfg(feature = "tls-aws-lc-rs")]
    return Some(Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    None
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|e| TlsConfigError::Io(path.to_path_buf(), e))
}

fn pem_error(e: rustls::pki_types::pem::Error) -> TlsConfigError {
    TlsConfigError::Pem(e.to_string())
}

/// Every certificate in `pem`, in order.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificates);
    }
    Ok(certs)
}

/// The TLS side of a listener: every accepted connection does a server handshake with this
/// before its handler hears [`connected`](crate::ConnectionHandler::connected). Set it as
/// [`ListenOptions::tls`](crate::ListenOptions::tls). Cheap to clone (the configuration is
/// shared).
///
/// ```no_run
/// use rein_net::{ListenOptions, TlsServer};
/// let tls = TlsServer::from_pem_files("cert.pem", "key.pem").expect("certificate and key");
/// let opts = ListenOptions::default().tls(tls.alpn(&[b"http/1.1"]));
/// ```
#[derive(Debug, Clone)]
pub struct TlsServer {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) handshake_timeout: Duration,
}

impl TlsServer {
    /// Uses a rustls configuration as it is (client authentication, resumption, versions:
    /// whatever it says).
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsServer {
            config,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A server presenting the certificate chain in `cert_chain` (PEM, leaf first) with the
    /// private key in `key` (PEM: PKCS#8, PKCS#1 or SEC1), rustls' safe default protocol
    /// versions (TLS 1.3 and 1.2) and no client authentication.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, TlsConfigError> {
        let certs = certificates(cert_chain)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey,
            e => pem_error(e),
        })?;
        let config = ServerConfig::builder_with_provider(provider()?)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        Ok(Self::new(Arc::new(config)))
    }

    /// [`from_pem`](TlsServer::from_pem) with the chain and the key read from files.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        Self::from_pem(&read_file(cert_chain.as_ref())?, &read_file(key.as_ref())?)
    }

    /// The application protocols (ALPN) this server accepts, most preferred first: it picks
    /// the first of these the client offers. A client that offers protocols, none of them
    /// here, fails the handshake ([`rustls::Error::NoApplicationProtocol`]); a client that
    /// offers none is accepted. Read the outcome with
    /// [`Conn::alpn_protocol`](crate::Conn::alpn_protocol).
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        Arc::make_mut(&mut self.config).alpn_protocols =
            protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// How long a handshake may take from the moment the TCP connection is accepted (or
    /// [`start_tls`](crate::Conn::start_tls) is asked for) before the connection is dropped
    /// with [`TlsError::HandshakeTimedOut`](crate::TlsError::HandshakeTimedOut) (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// The TLS side of an outgoing connection: a client handshake once TCP is up, before the
/// handler hears [`connected`](crate::ConnectionHandler::connected). Set it as
/// [`ConnectionOptions::tls`](crate::ConnectionOptions::tls). The server's certificate is
/// verified against the roots, for the name connected to (or [`server_name`]), which is also
/// sent as SNI. Cheap to clone.
///
/// [`server_name`]: TlsClient::server_name
///
/// ```
/// use rein_net::{ConnectionOptions, TlsClient};
/// let tls = TlsClient::mozilla_roots().expect("a crypto provider").alpn(&[b"http/1.1"]);
/// let opts = ConnectionOptions::default().tls(tls);
/// ```
#[derive(Debug, Clone)]
pub struct TlsClient {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: Option<String>,
    pub(crate) handshake_timeout: Duration,
}

impl TlsClient {
    /// Uses a rustls configuration as it is.
    pub fn new(config: Arc<ClientConfig>) -> Self {
        TlsClient {
            config,
            server_name: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Verifies servers against `roots`, with rustls' safe default protocol versions and no
    /// client certificate.
    pub fn with_roots(roots: RootCertStore) -> Result<Self, TlsConfigError> {
        let config = ClientConfig::builder_with_provider(provider()?)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::new(Arc::new(config)))
    }

    /// Verifies servers against the CA certificates in `pem` (one or more).
    pub fn with_roots_pem(pem: &[u8]) -> Result<Self, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(pem)? {
            roots.add(cert)?;
        }
        Self::with_roots(roots)
    }

    /// Verifies servers against the CA certificates in the PEM file `path`.
    pub fn with_roots_pem_file(path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        Self::with_roots_pem(&read_file(path.as_ref())?)
    }

    /// Verifies servers against Mozilla's root CAs, compiled in (`webpki-roots`: nothing is
    /// read from the system or the network).
    pub fn mozilla_roots() -> Result<Self, TlsConfigError> {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::with_roots(roots)
    }

    /// The name to send as SNI and to verify the certificate against, instead of the host
    /// connected to (needed with
    /// [`TcpConnection::connect_addrs`](crate::TcpConnection::connect_addrs), which has no
    /// name: without it the peer's IP address is verified). A DNS name or an IP address.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The application protocols (ALPN) to offer, most preferred first. Read the server's
    /// choice with [`Conn::alpn_protocol`](crate::Conn::alpn_protocol).
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        Arc::make_mut(&mut self.config).alpn_protocols =
            protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// How long a handshake may take from the moment TCP is connected (or
    /// [`start_tls`](crate::Conn::start_tls) is asked for), default 10 s. The connect timeout
    /// does not include it.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name to verify: the one set, else the host connected to, else the peer's address.
    pub(crate) fn name_for(
        &self,
        host: Option<&str>,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<ServerName<'static>, super::TlsError> {
        let name = match (&self.server_name, host, peer) {
            (Some(name), _, _) => name.clone(),
            (None, Some(host), _) => host.to_string(),
            (None, None, Some(peer)) => peer.ip().to_string(),
            (None, None, None) => String::new(),
        };
        // An IPv6 literal may come bracketed from a URL.
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(bare.to_string())
            .map_err(|_| super::TlsError::InvalidServerName(name.clone()))
    }
}

/// Which side of the handshake [`Conn::start_tls`](crate::Conn::start_tls) takes: built from
/// a [`TlsServer`] or a [`TlsClient`] (`conn.start_tls(server.clone())`).
#[derive(Debug, Clone)]
pub enum StartTls {
    /// Answer a client's handshake.
    Server(TlsServer),
    /// Start a handshake with the server.
    Client(TlsClient),
}

impl From<TlsServer> for StartTls {
    fn from(server: TlsServer) -> Self {
        StartTls::Server(server)
    }
}

impl From<TlsClient> for StartTls {
    fn from(client: TlsClient) -> Self {
        StartTls::Client(client)
    }
}

impl StartTls {
    pub(crate) fn handshake_timeout(&self) -> Duration {
        match self {
            StartTls::Server(s) => s.handshake_timeout,
            StartTls::Client(c) => c.handshake_timeout,
        }
    }
}

/// What a finished handshake agreed on: [`Conn::tls`](crate::Conn::tls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The application protocol (ALPN) agreed on, if any.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The protocol version (`TLSv1_3`, `TLSv1_2`).
    pub version: Option<rustls::ProtocolVersion>,
    /// The cipher suite.
    pub cipher_suite: Option<rustls::CipherSuite>,
    /// On a server: the name the client asked for (SNI), if it sent one. On a client: the name
    /// the certificate was verified against.
    pub server_name: Option<String>,
}
