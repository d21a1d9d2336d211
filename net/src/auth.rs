//! Authority tokens for opening sockets.
//!
//! Following rein's object-capability style, opening network endpoints is a power a library gets
//! only if the program hands it one, derived from [`AmbientAuth`]. Each token also carries the
//! [`ApplyReleaseBackpressureAuth`] its connections use to put pressure on their own senders
//! while their write queue is above the high watermark.

use rein::AmbientAuth;
use rein_backpressure::ApplyReleaseBackpressureAuth;

/// The power to listen on TCP ports (and run the accepted connections).
#[derive(Clone, Debug)]
pub struct TcpListenAuth {
    pub(crate) pressure: ApplyReleaseBackpressureAuth,
}

impl TcpListenAuth {
    /// Derives the token from the root authority.
    pub fn new(root: &AmbientAuth) -> Self {
        TcpListenAuth {
            pressure: ApplyReleaseBackpressureAuth::new(root),
        }
    }
}

/// The power to open outgoing TCP connections.
#[derive(Clone, Debug)]
pub struct TcpConnectAuth {
    pub(crate) pressure: ApplyReleaseBackpressureAuth,
}

impl TcpConnectAuth {
    /// Derives the token from the root authority.
    pub fn new(root: &AmbientAuth) -> Self {
        TcpConnectAuth {
            pressure: ApplyReleaseBackpressureAuth::new(root),
        }
    }
}
