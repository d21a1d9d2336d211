//! The rein echo server both `tcp_echo` and `tls_echo` measure (included by path: the bench
//! binaries share no library). It sends back what it receives; a send refused by a throttled
//! connection is kept, and reading stops, until the connection is writable again.

use rein_net::{Bytes, Conn, ConnectionHandler, Flow, ListenNotify};
use std::net::SocketAddr;

pub struct Echo {
    pending: Option<Bytes>,
}

impl ConnectionHandler for Echo {
    type Msg = ();
    fn received(&mut self, conn: &mut Conn<Self>, data: Bytes) -> Flow {
        if let Err(refused) = conn.send(data) {
            self.pending = Some(refused.into_inner());
        }
        Flow::Continue
    }
    fn throttled(&mut self, conn: &mut Conn<Self>) {
        conn.mute();
    }
    fn unthrottled(&mut self, conn: &mut Conn<Self>) {
        if let Some(data) = self.pending.take() {
            let _ = conn.send(data);
        }
        conn.unmute();
    }
}

/// Reports the listening address and hands every accepted connection an [`Echo`].
pub struct EchoServer(pub std::sync::mpsc::Sender<SocketAddr>);

impl ListenNotify for EchoServer {
    type Handler = Echo;
    fn listening(&mut self, addr: SocketAddr) {
        let _ = self.0.send(addr);
    }
    fn connected(&mut self, _peer: SocketAddr) -> Echo {
        Echo { pending: None }
    }
}
