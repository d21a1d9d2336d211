//! Outgoing connects: happy eyeballs over the resolved addresses, and its timers.
//!
//! Why it is its own state: everything here exists only until the connection opens (or the
//! connect fails), and none of it matters afterwards. The connection holds a [`Connector`]
//! while connecting and drops it once it is open; dropping it closes the losing attempts and
//! cancels its timers.
//!
//! The race (RFC 8305, simplified): the addresses are interleaved by family (IPv6 first, then
//! IPv4, alternating), the first attempt starts at once, and each next one starts after
//! `attempt_delay` or as soon as an attempt fails, whichever comes first. The first attempt to
//! complete wins; the others are closed and deregistered at once. The whole connect, a name
//! lookup included, is bounded by `connect_timeout` through a timer armed before anything else.

use super::msg::{ConnMsg, Msg, Step};
use super::socket::Socket;
use super::TcpConnection;
use crate::io_thread::Reactor;
use crate::{ConnectError, ConnectionHandler, ConnectionOptions, Readiness};
use rein::{Context, Timer};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// Where a connect stands after a step.
pub(crate) enum Progress {
    /// Attempts are in flight (or a lookup is pending).
    Trying,
    /// This attempt won.
    Connected(Socket),
    /// Nothing left to try; the last reason.
    Failed(ConnectError),
}

/// An outgoing connect in progress.
pub(crate) struct Connector {
    /// Addresses not tried yet, in happy-eyeballs order.
    addrs: VecDeque<SocketAddr>,
    /// Attempts in flight (registered, not yet finished), oldest first.
    attempts: Vec<Socket>,
    /// The latest attempt's number (from 1).
    attempt: u32,
    last_error: Option<ConnectError>,
    attempt_delay: Duration,
    timeout: Timer,
    delay: Option<Timer>,
}

impl Connector {
    /// Begins a connect: arms the timeout for all of it (a lookup included).
    pub(crate) fn start<H: ConnectionHandler>(
        ctx: &Context<TcpConnection<H>>,
        opts: &ConnectionOptions,
    ) -> Self {
        let timeout = ctx.after(
            opts.connect_timeout,
            ConnMsg(Msg::Step(Step::ConnectTimeout)),
        );
        Connector {
            addrs: VecDeque::new(),
            attempts: Vec::new(),
            attempt: 0,
            last_error: None,
            attempt_delay: opts.attempt_delay,
            timeout,
            delay: None,
        }
    }

    /// Adds addresses to try, in happy-eyeballs order.
    pub(crate) fn add(&mut self, addrs: Vec<SocketAddr>) {
        self.addrs.extend(interleave(addrs));
    }

    /// Records why there is nothing to try (a failed lookup).
    pub(crate) fn fail_with(&mut self, reason: ConnectError) {
        self.last_error = Some(reason);
    }

    /// Starts an attempt on the next address (skipping those that fail at once) and, if more
    /// addresses remain, arms the attempt delay. Fails once nothing is left to try.
    pub(crate) fn next_attempt<H: ConnectionHandler>(
        &mut self,
        ctx: &Context<TcpConnection<H>>,
        reactor: &Reactor,
        handler: &mut H,
    ) -> Progress {
        if let Some(t) = self.delay.take() {
            t.cancel();
        }
        while let Some(addr) = self.addrs.pop_front() {
            self.attempt += 1;
            handler.connecting(self.attempt);
            match Socket::connect(reactor, ctx, addr) {
                Ok(socket) => {
                    self.attempts.push(socket);
                    if !self.addrs.is_empty() {
                        let msg = ConnMsg(Msg::Step(Step::AttemptDelay(self.attempt)));
                        self.delay = Some(ctx.after(self.attempt_delay, msg));
                    }
                    return Progress::Trying;
                }
                Err(e) => self.last_error = Some(ConnectError::from_io(e)),
            }
        }
        if self.attempts.is_empty() {
            let reason = self.last_error.take().unwrap_or(ConnectError::NoAddresses);
            return Progress::Failed(reason);
        }
        Progress::Trying
    }

    /// The attempt delay of attempt `attempt` ran out. Only the latest attempt's delay counts:
    /// a failure since has already started the next address (and armed a fresh delay).
    pub(crate) fn delay_over<H: ConnectionHandler>(
        &mut self,
        attempt: u32,
        ctx: &Context<TcpConnection<H>>,
        reactor: &Reactor,
        handler: &mut H,
    ) -> Progress {
        if attempt != self.attempt {
            return Progress::Trying;
        }
        self.delay = None;
        self.next_attempt(ctx, reactor, handler)
    }

    /// A writable (or error) edge while connecting. Readiness does not say which socket it is
    /// for, so every attempt in flight is checked: the first that is connected wins, failed ones
    /// are dropped (each failure starts the next address at once).
    pub(crate) fn check<H: ConnectionHandler>(
        &mut self,
        ready: Readiness,
        ctx: &Context<TcpConnection<H>>,
        reactor: &Reactor,
        handler: &mut H,
    ) -> Progress {
        // A closed edge with no error recorded on any socket can only be pinned on an attempt
        // when there is exactly one.
        let lone_closed_edge = self.attempts.len() == 1 && ready.closed;
        let mut failures = 0;
        let mut i = 0;
        while i < self.attempts.len() {
            match self.attempts[i].connect_outcome(lone_closed_edge) {
                Ok(true) => {
                    let winner = self.attempts.swap_remove(i);
                    // The losers are closed and deregistered here.
                    self.attempts.clear();
                    self.addrs.clear();
                    return Progress::Connected(winner);
                }
                Ok(false) => i += 1,
                Err(reason) => {
                    self.attempts.remove(i);
                    self.last_error = Some(reason);
                    failures += 1;
                }
            }
        }
        for _ in 0..failures {
            if let Progress::Failed(reason) = self.next_attempt(ctx, reactor, handler) {
                return Progress::Failed(reason);
            }
        }
        Progress::Trying
    }
}

impl Drop for Connector {
    /// Timers do not end when their handle is dropped: cancel them. The attempts in flight are
    /// deregistered and closed as they drop.
    fn drop(&mut self) {
        self.timeout.cancel();
        if let Some(t) = self.delay.take() {
            t.cancel();
        }
    }
}

/// Happy-eyeballs order (RFC 8305, section 4, simplified): IPv6 and IPv4 alternate, IPv6 first,
/// each family keeping its given order; what is left of the longer family follows.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let (mut v6, mut v4): (VecDeque<_>, VecDeque<_>) =
        addrs.into_iter().partition(SocketAddr::is_ipv6);
    let mut out = VecDeque::with_capacity(v6.len() + v4.len());
    while !v6.is_empty() || !v4.is_empty() {
        out.extend(v6.pop_front());
        out.extend(v4.pop_front());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::interleave;
    use std::net::SocketAddr;

    #[test]
    fn interleaves_families_ipv6_first() {
        let parse =
            |v: &[&str]| -> Vec<SocketAddr> { v.iter().map(|a| a.parse().unwrap()).collect() };
        let given = parse(&["1.0.0.1:1", "1.0.0.2:1", "[::1]:1", "1.0.0.3:1", "[::2]:1"]);
        let want = parse(&["[::1]:1", "1.0.0.1:1", "[::2]:1", "1.0.0.2:1", "1.0.0.3:1"]);
        assert_eq!(Vec::from(interleave(given)), want);
        let only4 = parse(&["1.0.0.2:1", "1.0.0.1:1"]);
        assert_eq!(Vec::from(interleave(only4.clone())), only4);
        assert!(interleave(Vec::new()).is_empty());
    }
}
