//! Sends that do not mute their sender: `send_ignoring_pressure`, and the pressure-aware
//! `try_send` / `is_pressured` on every address (`ActorRef` and `Recipient`), used from inside
//! behaviours by actors that must not be stalled by one slow receiver.

mod common;

use common::{until, wait};
use rein::{Actor, ActorRef, Context, Recipient, Runtime, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

const LOW: usize = 4;
const HIGH: usize = 16;

/// Holds its worker on its first message until `open` is set, so that its backlog builds up.
struct Gate {
    open: Arc<AtomicBool>,
    handled: Arc<AtomicUsize>,
}

impl Actor for Gate {
    type Msg = u32;
    fn handle(&mut self, _: &mut Context<Self>, _: u32) {
        while !self.open.load(SeqCst) {
            std::thread::yield_now();
        }
        self.handled.fetch_add(1, SeqCst);
    }
}

/// Opens the gate when dropped, so that a failing test unwinds instead of leaving a worker
/// spinning in the gate (and the runtime's drop waiting for it for ever). Declare it after the
/// runtime: it is then dropped first.
struct Opener(Arc<AtomicBool>);

impl Drop for Opener {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Spawns a gate and makes it hold its worker with one message, its first turn over (a fresh
/// actor's backlog counts its start until its first turn ends).
fn held_gate(rt: &Runtime) -> (ActorRef<Gate>, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let open = Arc::new(AtomicBool::new(true));
    let handled = Arc::new(AtomicUsize::new(0));
    let gate = rt.spawn(Gate {
        open: open.clone(),
        handled: handled.clone(),
    });
    gate.send(0).unwrap();
    until("the gate's first turn", || {
        handled.load(SeqCst) == 1 && gate.backlog() == 0
    });
    open.store(false, SeqCst);
    gate.send(u32::MAX).unwrap();
    (gate, open, handled)
}

/// How a `Sender` sends its burst.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Way {
    Send,
    IgnoringPressure,
    TrySend,
    TrySendRecipient,
}

/// Sends `burst` messages in one behaviour, the way it is told, and records what happened.
struct Sender {
    to: ActorRef<Gate>,
    recipient: Recipient<u32>,
    way: Way,
    burst: u32,
    refused: Arc<AtomicUsize>,
    /// Set at the start of the sender's second behaviour: it ran again, so it was not muted.
    ran_again: Arc<AtomicBool>,
    first: bool,
}

impl Actor for Sender {
    type Msg = ();
    fn handle(&mut self, _: &mut Context<Self>, (): ()) {
        if !self.first {
            self.ran_again.store(true, SeqCst);
            return;
        }
        self.first = false;
        for n in 0..self.burst {
            let refused = match self.way {
                Way::Send => self.to.send(n).is_err(),
                Way::IgnoringPressure => self.to.send_ignoring_pressure(n).is_err(),
                Way::TrySend => matches!(self.to.try_send(n), Err(TrySendError::Pressured(_))),
                Way::TrySendRecipient => {
                    matches!(self.recipient.try_send(n), Err(TrySendError::Pressured(_)))
                }
            };
            if refused {
                self.refused.fetch_add(1, SeqCst);
            }
        }
    }
}

struct Outcome {
    mutes: u64,
    refused: usize,
    /// Whether the sender's second message ran while the gate was still closed.
    ran_while_blocked: bool,
    peak_backlog: usize,
    handled: usize,
}

/// One sender, one gate held closed while the sender sends 200 messages in one behaviour and
/// then a second message to itself: does the second run before the gate opens?
fn burst(way: Way) -> Outcome {
    let rt = Runtime::builder()
        .threads(2)
        .watermarks(LOW, HIGH)
        .build()
        .unwrap();
    let (gate, open, handled) = held_gate(&rt);
    let _opener = Opener(open.clone());
    let refused = Arc::new(AtomicUsize::new(0));
    let ran_again = Arc::new(AtomicBool::new(false));
    let sender = rt.spawn(Sender {
        recipient: gate.recipient(),
        to: gate.clone(),
        way,
        burst: 200,
        refused: refused.clone(),
        ran_again: ran_again.clone(),
        first: true,
    });
    sender.send(()).unwrap();
    sender.send(()).unwrap();
    // Give a muted sender every chance to show it would have run (it must not), and an unmuted
    // one the time to run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while std::time::Instant::now() < deadline && !ran_again.load(SeqCst) {
        std::thread::yield_now();
    }
    let ran_while_blocked = ran_again.load(SeqCst);
    let peak_backlog = gate.backlog();
    open.store(true, SeqCst);
    let report = wait(rt);
    Outcome {
        mutes: report.metrics.mutes,
        refused: refused.load(SeqCst),
        ran_while_blocked,
        peak_backlog,
        // Less the warm-up message.
        handled: handled.load(SeqCst) - 1,
    }
}

#[test]
fn a_plain_send_to_an_overloaded_receiver_mutes_the_sender() {
    let out = burst(Way::Send);
    assert!(out.mutes >= 1);
    assert!(
        !out.ran_while_blocked,
        "muted: no second behaviour before the gate opened"
    );
    assert_eq!(out.handled, 201);
}

#[test]
fn send_ignoring_pressure_never_mutes_the_sender() {
    let out = burst(Way::IgnoringPressure);
    assert_eq!(out.mutes, 0);
    assert!(
        out.ran_while_blocked,
        "the sender ran on while its receiver was overloaded"
    );
    assert_eq!(
        out.refused, 0,
        "nothing is refused: the receiver takes it all"
    );
    assert_eq!(out.peak_backlog, 201, "and nothing bounds its backlog");
    assert_eq!(out.handled, 201);
}

#[test]
fn try_send_refuses_instead_of_muting_on_actor_refs_and_recipients() {
    for way in [Way::TrySend, Way::TrySendRecipient] {
        let out = burst(way);
        assert_eq!(out.mutes, 0, "{way:?}");
        assert!(out.ran_while_blocked, "{way:?}");
        // The gate's first message plus every accepted one: up to the high watermark.
        assert_eq!(out.peak_backlog, HIGH, "{way:?}");
        assert_eq!(out.refused, 200 - (HIGH - 1), "{way:?}");
        assert_eq!(out.handled, HIGH, "{way:?}");
    }
}

#[test]
fn recipient_is_pressured_agrees_with_actor_ref() {
    let rt = Runtime::builder()
        .threads(2)
        .watermarks(LOW, HIGH)
        .build()
        .unwrap();
    let (gate, open, _) = held_gate(&rt);
    let _opener = Opener(open.clone());
    let recipient: Recipient<u32> = gate.recipient();
    assert!(!recipient.is_pressured());
    for n in 1..HIGH as u32 {
        assert_eq!(recipient.is_pressured(), gate.is_pressured());
        recipient.send(n).unwrap();
    }
    until("the backlog reaches the high watermark", || {
        recipient.backlog() == HIGH
    });
    assert!(recipient.is_pressured() && gate.is_pressured());
    assert!(matches!(
        recipient.try_send(0),
        Err(TrySendError::Pressured(0))
    ));
    open.store(true, SeqCst);
    wait(rt);
    assert!(
        !recipient.is_pressured(),
        "a stopped actor presses on nobody"
    );
    // The runtime has ended with it, and an ended runtime is the reason given first.
    assert!(matches!(
        recipient.try_send(1),
        Err(TrySendError::RuntimeEnded(1))
    ));
    assert!(!Recipient::<u32>::closed().is_pressured());
}

/// A sender muted on a gate that stays overloaded is reported once, with the gate, after the
/// threshold and not before; `stalls` lists it while it lasts and forgets it after.
#[test]
fn a_stalled_actor_is_reported_once_with_the_receiver_it_waits_on() {
    use rein::{StallCause, StallReport};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    let reports: Arc<Mutex<Vec<(StallReport, Instant)>>> = Arc::default();
    let log = reports.clone();
    let threshold = Duration::from_millis(150);
    let rt = Runtime::builder()
        .threads(2)
        .watermarks(LOW, HIGH)
        .on_stall(threshold, move |report| {
            log.lock().unwrap().push((report, Instant::now()))
        })
        .build()
        .unwrap();
    let (gate, open, _) = held_gate(&rt);
    let _opener = Opener(open.clone());
    let ran_again = Arc::new(AtomicBool::new(false));
    let sender = rt.spawn(Sender {
        recipient: gate.recipient(),
        to: gate.clone(),
        way: Way::Send,
        burst: 100,
        refused: Arc::default(),
        ran_again: ran_again.clone(),
        first: true,
    });
    let muted_from = Instant::now();
    sender.send(()).unwrap();
    sender.send(()).unwrap();
    until("the stall report", || !reports.lock().unwrap().is_empty());
    let (report, at) = reports.lock().unwrap()[0].clone();
    assert_eq!(report.actor, sender.id());
    assert_eq!(report.receiver, gate.id());
    assert!(matches!(report.cause, StallCause::Overloaded { backlog } if backlog > HIGH));
    assert!(report.muted_for >= threshold, "{report}");
    assert!(
        at.duration_since(muted_from) >= threshold,
        "not before the threshold"
    );
    let listed = rt.stalls(threshold);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].actor, listed[0].receiver),
        (sender.id(), gate.id())
    );
    assert!(rt.stalls(Duration::from_secs(3600)).is_empty());
    // Still stalled: no second report for the same stall.
    std::thread::sleep(threshold * 2);
    assert_eq!(reports.lock().unwrap().len(), 1, "reported once");
    open.store(true, SeqCst);
    until("the sender runs again", || ran_again.load(SeqCst));
    assert!(
        rt.stalls(Duration::ZERO).is_empty(),
        "no stall once it resumed"
    );
    wait(rt);
    assert_eq!(reports.lock().unwrap().len(), 1);
}
