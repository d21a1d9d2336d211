//! One-shot replies: to a thread waiting in [`ActorRef::ask`](crate::ActorRef::ask), to an async
//! task awaiting [`ActorRef::ask_async`](crate::ActorRef::ask_async), or to an actor as an
//! ordinary message ([`ReplyTo::to`], [`Context::ask`](crate::Context::ask)).
//!
//! The slot behind `ask` and `ask_async` is the `oneshot` crate's channel: one allocation, a
//! lock-free hand-over, a blocking receive with a deadline and a `Future` in one type. (It
//! replaced a mutex and a condition variable, which could serve no async waiter.) Dropping the
//! receiving side (a timed-out `ask`, a dropped `ask_async` future) makes the answer come back to
//! the replier, and dropping the [`ReplyTo`] unanswered tells the asker that none will come.
//!
//! Both forms first wait a few microseconds for the answer ([`crate::quick_answer`]) before they
//! sleep: an answer that comes that fast then costs no wake-up on either side.

use crate::error::AskError;
use crate::quick_answer::{wait_briefly, InFlight, Quick};
use crate::Recipient;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Where an answer goes. Answer once with [`ReplyTo::send`]; dropping it unanswered tells the
/// asker that no reply will come ([`AskError::NoReply`]).
///
/// Inside the runtime, ask another actor with [`Context::ask`](crate::Context::ask), or by sending
/// it `ReplyTo::to(ctx.myself().recipient())`: the answer arrives as a message, and no behaviour
/// ever blocks.
pub struct ReplyTo<R> {
    target: Option<Target<R>>,
}

enum Target<R> {
    Waiter(oneshot::Sender<R>),
    Actor(Recipient<R>),
    /// An ask from inside an actor ([`Context::ask`](crate::Context::ask)): the first of the
    /// answer, the handle's drop and the timeout is delivered.
    Pending(Box<dyn Settle<R>>),
}

/// The asker's side of [`Context::ask`](crate::Context::ask): settled once, by whichever comes
/// first.
pub(crate) trait Settle<R>: Send {
    /// Delivers `result` to the asker unless it was settled already (then hands `result` back).
    fn settle(&self, result: Result<R, AskError>) -> Result<(), Result<R, AskError>>;
}

impl<R: Send + 'static> ReplyTo<R> {
    pub(crate) fn waiter(sender: oneshot::Sender<R>) -> Self {
        ReplyTo {
            target: Some(Target::Waiter(sender)),
        }
    }

    pub(crate) fn pending(settle: Box<dyn Settle<R>>) -> Self {
        ReplyTo {
            target: Some(Target::Pending(settle)),
        }
    }

    /// A fresh reply handle and the future of its answer, for requests that are not sent by
    /// [`ask_async`](crate::ActorRef::ask_async): say, a request sent with
    /// [`send_when_ready`](crate::ActorRef::send_when_ready) so that the asker waits for a
    /// pressured receiver, or one handed to another component.
    ///
    /// ```
    /// let (reply, answer) = rein::ReplyTo::<u32>::channel();
    /// reply.send(7).unwrap();
    /// drop(answer); // the answer was there; nothing is left behind
    /// ```
    pub fn channel() -> (ReplyTo<R>, AskFuture<R>) {
        let (reply, rx) = slot();
        (reply, AskFuture::waiting(rx))
    }

    /// A reply handle that delivers the answer to an actor as a message.
    pub fn to(recipient: Recipient<R>) -> Self {
        ReplyTo {
            target: Some(Target::Actor(recipient)),
        }
    }

    /// Answers. Gives the value back if nobody can receive it any more (the asker timed out, gave
    /// up, or the replying-to actor stopped).
    pub fn send(mut self, value: R) -> Result<(), R> {
        match self.target.take() {
            Some(Target::Waiter(sender)) => sender.send(value).map_err(|e| e.into_inner()),
            Some(Target::Actor(recipient)) => recipient.send(value).map_err(|e| e.into_inner()),
            Some(Target::Pending(settle)) => settle.settle(Ok(value)).map_err(|back| match back {
                Ok(value) => value,
                Err(_) => unreachable!("the value handed back is the one given"),
            }),
            None => Err(value),
        }
    }

    /// Whether an answer would still be received: the asker is still waiting (or the actor it
    /// points to is alive). A replier with costly work can skip it once this is false.
    pub fn is_wanted(&self) -> bool {
        match &self.target {
            Some(Target::Waiter(sender)) => !sender.is_closed(),
            Some(Target::Actor(recipient)) => !recipient.is_stopped(),
            Some(Target::Pending(_)) => true,
            None => false,
        }
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        // A waiter hears `NoReply` from the sender's drop; a pending ask is told here.
        if let Some(Target::Pending(settle)) = self.target.take() {
            let _ = settle.settle(Err(AskError::NoReply));
        }
    }
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyTo(..)")
    }
}

/// A new reply slot: the handle to send with the request, and the receiving side.
pub(crate) fn slot<R: Send + 'static>() -> (ReplyTo<R>, oneshot::Receiver<R>) {
    let (tx, rx) = oneshot::channel();
    (ReplyTo::waiter(tx), rx)
}

/// Waits for the answer on the calling thread. A timeout too large to be represented as an
/// instant means no deadline. Returning drops the receiver, so a late answer is handed back.
pub(crate) fn wait<R>(
    rx: oneshot::Receiver<R>,
    ask: InFlight,
    timeout: Duration,
) -> Result<R, AskError> {
    if let Quick::Answered(answer) = quick_answer(&rx, &ask) {
        return answer;
    }
    match Instant::now().checked_add(timeout) {
        Some(deadline) => rx.recv_deadline(deadline).map_err(|e| match e {
            oneshot::RecvTimeoutError::Timeout => AskError::Timeout,
            oneshot::RecvTimeoutError::Disconnected => AskError::NoReply,
        }),
        None => rx.recv().map_err(|_| AskError::NoReply),
    }
}

/// The answer, or why none will come, if it arrives within the brief wait of
/// [`crate::quick_answer`]. `try_recv` registers nothing, so the slow path is unchanged.
fn quick_answer<R>(rx: &oneshot::Receiver<R>, ask: &InFlight) -> Quick<Result<R, AskError>> {
    wait_briefly(ask, || match rx.try_recv() {
        Ok(answer) => Some(Ok(answer)),
        Err(oneshot::TryRecvError::Disconnected) => Some(Err(AskError::NoReply)),
        Err(oneshot::TryRecvError::Empty) => None,
    })
}

/// The future of [`ActorRef::ask_async`](crate::ActorRef::ask_async): resolves to the answer, or
/// to why none will come.
///
/// It has no timeout of its own: use your async runtime's (`tokio::time::timeout`, say).
/// Dropping it cancels the ask cleanly: the replier's [`ReplyTo::send`] then hands the answer
/// back, and [`ReplyTo::is_wanted`] turns false.
#[must_use = "futures do nothing unless awaited"]
pub struct AskFuture<R> {
    state: Result<oneshot::Receiver<R>, Option<AskError>>,
    /// The ask this future answers, counted as awaited until it is answered or the future is
    /// dropped. `None` for a future from [`ReplyTo::channel`], whose answer may come from
    /// anywhere.
    ask: Option<InFlight>,
    /// Whether it has been polled: only the first poll of an ask waits briefly for the answer.
    polled: bool,
}

impl<R> AskFuture<R> {
    /// The future of an ask whose request is about to be sent.
    pub(crate) fn asked(rx: oneshot::Receiver<R>, ask: InFlight) -> Self {
        AskFuture {
            state: Ok(rx),
            ask: Some(ask),
            polled: false,
        }
    }

    fn waiting(rx: oneshot::Receiver<R>) -> Self {
        AskFuture {
            state: Ok(rx),
            ask: None,
            polled: false,
        }
    }

    pub(crate) fn failed(error: AskError) -> Self {
        AskFuture {
            state: Err(Some(error)),
            ask: None,
            polled: false,
        }
    }
}

impl<R> Future for AskFuture<R> {
    type Output = Result<R, AskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let first_poll = !std::mem::replace(&mut this.polled, true);
        let answer = match &mut this.state {
            Ok(rx) => match (first_poll, &this.ask) {
                (true, Some(ask)) => match quick_answer(rx, ask) {
                    Quick::Answered(answer) => Poll::Ready(answer),
                    Quick::NotYet => Pin::new(rx).poll(cx).map_err(|_| AskError::NoReply),
                },
                _ => Pin::new(rx).poll(cx).map_err(|_| AskError::NoReply),
            },
            Err(error) => Poll::Ready(Err(error
                .take()
                .expect("AskFuture polled after it completed"))),
        };
        if answer.is_ready() {
            // Answered: no longer an ask in flight, even if the future is kept.
            this.ask = None;
        }
        answer
    }
}

impl<R> std::fmt::Debug for AskFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AskFuture(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// An answered ask stops counting as in flight at once, even while its future is kept, so
    /// that it does not stop a later ask from waiting briefly.
    #[test]
    fn an_answered_ask_is_no_longer_in_flight() {
        let counter: &'static std::sync::atomic::AtomicUsize =
            Box::leak(Box::new(std::sync::atomic::AtomicUsize::new(0)));
        let (reply, rx) = slot::<u32>();
        let mut answer = AskFuture::asked(rx, InFlight::counted_in(counter));
        assert_eq!(counter.load(SeqCst), 1);
        reply.send(5).unwrap();
        let waker = std::task::Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(Pin::new(&mut answer).poll(&mut cx), Poll::Ready(Ok(5)));
        assert_eq!(
            counter.load(SeqCst),
            0,
            "answered, though the future lives on"
        );
        drop(answer);
        assert_eq!(counter.load(SeqCst), 0);
    }

    /// An answer sent a few microseconds after the asker's first poll begins is taken by that
    /// poll, and the asking task is never woken. Without the brief wait the first poll always
    /// finds nothing (the answer comes 10 µs after it starts) and the task needs a wake-up; with
    /// it, most attempts are answered at once (the bound is loose for loaded CI machines).
    #[test]
    fn an_answer_within_the_brief_wait_needs_no_wake_up() {
        if !crate::quick_answer::several_cpus() {
            return;
        }
        // Attempts until enough were answered at once, so that a loaded machine (whose threads are
        // preempted during the wait) takes longer rather than failing.
        const ENOUGH: usize = 20;
        const MAX_ATTEMPTS: u32 = 10_000;
        let mut answered_at_once = 0;
        let mut attempts = 0;
        // Asks of this test only (other tests ask at the same time).
        let counter: &'static std::sync::atomic::AtomicUsize =
            Box::leak(Box::new(std::sync::atomic::AtomicUsize::new(0)));
        for i in 0..MAX_ATTEMPTS {
            if answered_at_once == ENOUGH {
                break;
            }
            attempts += 1;
            crate::quick_answer::reset_for_test();
            let (reply, rx) = slot::<u32>();
            let mut answer = AskFuture::asked(rx, InFlight::counted_in(counter));
            let started = Arc::new(AtomicBool::new(false));
            let go = Arc::new(AtomicBool::new(false));
            let replier = {
                let (started, go) = (started.clone(), go.clone());
                std::thread::spawn(move || {
                    started.store(true, SeqCst);
                    while !go.load(SeqCst) {
                        std::hint::spin_loop();
                    }
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(10) {
                        std::hint::spin_loop();
                    }
                    reply.send(i).unwrap();
                })
            };
            while !started.load(SeqCst) {
                std::hint::spin_loop();
            }
            let wakes = Arc::new(CountingWaker(AtomicUsize::new(0)));
            let waker = std::task::Waker::from(wakes.clone());
            let mut cx = Context::from_waker(&waker);
            go.store(true, SeqCst);
            // An answer already there (this thread was preempted for 10 µs) proves nothing.
            let Ok(rx) = &answer.state else {
                unreachable!()
            };
            let came_during_the_poll = !rx.has_message();
            match Pin::new(&mut answer).poll(&mut cx) {
                Poll::Ready(got) if !came_during_the_poll => {
                    assert_eq!(got, Ok(i));
                    replier.join().unwrap();
                }
                Poll::Ready(got) => {
                    assert_eq!(got, Ok(i));
                    replier.join().unwrap();
                    assert_eq!(
                        wakes.0.load(SeqCst),
                        0,
                        "an answer taken at once wakes nobody"
                    );
                    answered_at_once += 1;
                }
                Poll::Pending => {
                    // The slow path is intact: the answer wakes the task, and the next poll
                    // has it.
                    replier.join().unwrap();
                    assert_eq!(wakes.0.load(SeqCst), 1);
                    assert_eq!(Pin::new(&mut answer).poll(&mut cx), Poll::Ready(Ok(i)));
                }
            }
        }
        eprintln!("{answered_at_once} answered at once in {attempts} attempts");
        assert!(
            answered_at_once == ENOUGH,
            "only {answered_at_once} of {attempts} answers were taken in the first poll"
        );
    }
}
