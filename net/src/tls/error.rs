//! Why TLS fails, as types: [`TlsError`] for a connection (its handshake or its records),
//! [`TlsConfigError`] for building a configuration, [`StartTlsError`] for a refused upgrade.
//!
//! Why rustls' own error is kept inside rather than mapped onto a closed set of variants:
//! rustls distinguishes dozens of failures (each certificate problem, each alert, each way a
//! peer misbehaves), and a handler that needs one can match on it; the `Display` text says in
//! plain words which side of the handshake went wrong and why.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a TLS connection failed: reaches the handler as
/// [`ConnectError::Tls`](crate::ConnectError::Tls) when the handshake of a connection that
/// starts with TLS fails (it never became `connected`), and as
/// [`CloseReason::Tls`](crate::CloseReason::Tls) afterwards (a failed
/// [`start_tls`](crate::Conn::start_tls) upgrade, a corrupted record, a truncated stream).
///
/// ```
/// use rein_net::TlsError;
/// use std::time::Duration;
/// let e = TlsError::HandshakeTimedOut(Duration::from_secs(10));
/// assert_eq!(e.to_string(), "TLS handshake did not finish within 10s");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TlsError {
    /// rustls refused what the peer sent or how it behaved: a certificate that is invalid,
    /// expired, for another name or from an unknown CA
    /// ([`rustls::Error::InvalidCertificate`]); no protocol version, cipher suite or ALPN
    /// protocol in common ([`rustls::Error::PeerIncompatible`],
    /// [`rustls::Error::NoApplicationProtocol`]); bytes that are not TLS
    /// ([`rustls::Error::InvalidMessage`]); a fatal alert from the peer, which is how a peer
    /// says it rejected *our* certificate ([`rustls::Error::AlertReceived`]); a record that
    /// does not decrypt.
    Protocol(rustls::Error),
    /// The handshake did not finish within the handshake timeout
    /// ([`TlsServer::handshake_timeout`](crate::TlsServer::handshake_timeout),
    /// [`TlsClient::handshake_timeout`](crate::TlsClient::handshake_timeout)).
    HandshakeTimedOut(Duration),
    /// The peer closed the TCP connection before the handshake finished (often: it did not
    /// like our certificate and said nothing).
    ClosedInHandshake,
    /// The peer closed the TCP connection without a TLS `close_notify` first: the end of the
    /// data cannot be told from a truncation by an attacker. Delivered data is genuine; only
    /// its completeness is in doubt.
    Truncated,
    /// Bytes arrived in the clear after the point where
    /// [`start_tls`](crate::Conn::start_tls) was asked for: a peer that did not wait for the
    /// upgrade, or plaintext injected by someone in the middle (the STARTTLS injection
    /// attacks). They are not delivered.
    PlaintextAfterStartTls,
    /// The name to verify the server's certificate against (SNI) is not a valid DNS name or
    /// IP address.
    InvalidServerName(String),
}

impl TlsError {
    /// The rustls error, for [`TlsError::Protocol`].
    pub fn rustls(&self) -> Option<&rustls::Error> {
        match self {
            TlsError::Protocol(e) => Some(e),
            _ => None,
        }
    }

    /// Carried inside an `io::Error` through the connection's read path, which turns it back
    /// into a [`CloseReason::Tls`](crate::CloseReason::Tls).
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// The `TlsError` an `io::Error` carries, if it carries one.
    pub(crate) fn from_io(e: &io::Error) -> Option<TlsError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<TlsError>())
            .cloned()
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Protocol(rustls::Error::InvalidCertificate(e)) => {
                write!(f, "TLS: the peer's certificate was rejected: {e:?}")
            }
            TlsError::Protocol(rustls::Error::AlertReceived(alert)) => {
                write!(f, "TLS: the peer sent a fatal alert: {alert:?}")
            }
            TlsError::Protocol(rustls::Error::NoApplicationProtocol) => {
                f.write_str("TLS: no application protocol (ALPN) in common with the peer")
            }
            TlsError::Protocol(rustls::Error::InvalidMessage(e)) => {
                write!(f, "TLS: the peer sent something that is not TLS: {e:?}")
            }
            TlsError::Protocol(e) => write!(f, "TLS: {e}"),
            TlsError::HandshakeTimedOut(d) => {
                write!(f, "TLS handshake did not finish within {d:?}")
            }
            TlsError::ClosedInHandshake => {
                f.write_str("TLS: the peer closed the connection during the handshake")
            }
            TlsError::Truncated => {
                f.write_str("TLS: the peer closed the connection without close_notify")
            }
            TlsError::PlaintextAfterStartTls => {
                f.write_str("TLS: bytes arrived in the clear after the STARTTLS point")
            }
            TlsError::InvalidServerName(name) => {
                write!(f, "TLS: {name:?} is not a valid server name")
            }
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a TLS configuration could not be built.
///
/// ```
/// use rein_net::{TlsConfigError, TlsServer};
/// match TlsServer::from_pem(b"not a certificate", b"not a key") {
///     Err(TlsConfigError::NoCertificates) => {}
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A file could not be read.
    Io(PathBuf, io::Error),
    /// A PEM section could not be parsed.
    Pem(String),
    /// The PEM input holds no certificate.
    NoCertificates,
    /// The PEM input holds no private key.
    NoPrivateKey,
    /// rustls refused the configuration (a key that does not match the certificate, a key type
    /// it does not support, a root certificate it cannot parse).
    Rustls(rustls::Error),
    /// No crypto provider: the crate was built with `tls` but neither `tls-ring` nor
    /// `tls-aws-lc-rs`, and no process default is installed
    /// (`rustls::crypto::CryptoProvider::install_default`).
    NoProvider,
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Io(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            TlsConfigError::Pem(e) => write!(f, "bad PEM: {e}"),
            TlsConfigError::NoCertificates => f.write_str("no certificate found in the PEM input"),
            TlsConfigError::NoPrivateKey => f.write_str("no private key found in the PEM input"),
            TlsConfigError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
            TlsConfigError::NoProvider => f.write_str(
                "no TLS crypto provider: enable `tls-ring` or `tls-aws-lc-rs`, or install a \
                 process default",
            ),
        }
    }
}

impl std::error::Error for TlsConfigError {}

impl From<rustls::Error> for TlsConfigError {
    fn from(e: rustls::Error) -> Self {
        TlsConfigError::Rustls(e)
    }
}

/// Why [`Conn::start_tls`](crate::Conn::start_tls) refused to upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartTlsError {
    /// The connection is not open (still connecting, or closing).
    NotOpen,
    /// The connection already speaks TLS (or an upgrade is under way).
    AlreadyTls,
}

impl fmt::Display for StartTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartTlsError::NotOpen => f.write_str("the connection is not open"),
            StartTlsError::AlreadyTls => f.write_str("the connection already uses TLS"),
        }
    }
}

impl std::error::Error for StartTlsError {}
