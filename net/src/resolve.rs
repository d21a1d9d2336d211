//! Host name resolution for outgoing connects, off the runtime's workers.
//!
//! Why: the system resolver (`getaddrinfo`, behind `ToSocketAddrs`) blocks, for seconds when a
//! DNS server is slow or unreachable. Called in a connection actor it would hold a worker, and
//! every actor queued behind it, for that long. So a connect to a host name resolves on a
//! short-lived helper thread, which hands the answer back to the connection actor as an
//! ordinary message (sends from threads outside the runtime are never muted). An IP literal
//! needs no lookup and starts its attempt at once, without a thread.
//!
//! One thread per lookup rather than one shared resolver thread: lookups are independent, so a
//! slow name does not hold the others up behind it, and a connect that is abandoned (its
//! connect timeout fired) leaves only its own lookup running to completion. The helper holds a
//! [`KeepAlive`] on the runtime until it has sent the answer, so the runtime cannot end by
//! quiescence while a lookup is pending and then drop the answer.

use rein::KeepAlive;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// What a lookup found.
pub(crate) type Answer = io::Result<Vec<SocketAddr>>;

/// `host:port` as an address when `host` is an IP literal (no lookup needed).
pub(crate) fn literal(host: &str, port: u16) -> Option<SocketAddr> {
    host.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port))
}

/// Looks `host` up on a new helper thread and calls `answer` there with the result; `alive` is
/// dropped only after `answer` returns. Fails only if the thread cannot be started.
pub(crate) fn spawn(
    host: String,
    port: u16,
    alive: KeepAlive,
    answer: impl FnOnce(Answer) + Send + 'static,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("rein-net-resolve".into())
        .spawn(move || {
            answer(lookup(&host, port));
            drop(alive);
        })
        .map(drop)
}

fn lookup(host: &str, port: u16) -> Answer {
    #[cfg(test)]
    if let Some(answer) = seam::answer(host) {
        return answer;
    }
    (host, port).to_socket_addrs().map(Iterator::collect)
}

/// Test seam: lookups of a name a test has [gated](seam::gate) wait for the answer the test
/// gives, so tests can hold a lookup pending, or make it fail, without real DNS or its timing.
#[cfg(test)]
pub(crate) mod seam {
    use super::Answer;
    use std::io;
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::sync::Mutex;
    use std::time::Duration;

    static GATES: Mutex<Vec<(String, Receiver<Answer>)>> = Mutex::new(Vec::new());

    /// The next lookup of `host` waits (at most 30 s) for the answer sent on the returned sender.
    pub(crate) fn gate(host: &str) -> Sender<Answer> {
        let (tx, rx) = channel();
        lock().push((host.to_owned(), rx));
        tx
    }

    pub(super) fn answer(host: &str) -> Option<Answer> {
        let gate = {
            let mut gates = lock();
            let at = gates.iter().position(|(name, _)| name == host)?;
            gates.swap_remove(at).1
        };
        Some(
            gate.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| Err(io::Error::other("the test gave no answer"))),
        )
    }

    fn lock() -> std::sync::MutexGuard<'static, Vec<(String, Receiver<Answer>)>> {
        GATES.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::literal;

    #[test]
    fn ip_literals_need_no_lookup() {
        assert_eq!(
            literal("127.0.0.1", 80),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(literal("::1", 80), Some("[::1]:80".parse().unwrap()));
        assert_eq!(literal("localhost", 80), None);
        assert_eq!(literal("[::1]", 80), None, "as ToSocketAddrs: no brackets");
    }
}
