//! The [`Actor`] trait: private state plus one synchronous handler.

use crate::Context;

/// An actor: private state that handles its messages one at a time.
///
/// Behaviours are plain synchronous code. The runtime never runs two behaviours of one actor at
/// once, so `&mut self` is all the synchronisation an actor needs. A behaviour should not block:
/// to wait for another actor, send it a [`ReplyTo`](crate::ReplyTo) that points back at yourself
/// and handle the answer as a message.
///
/// # Example
/// ```
/// use rein::{Actor, Context, Runtime};
/// use std::sync::mpsc;
///
/// struct Counter { total: u64, report: mpsc::Sender<u64> }
///
/// enum Msg { Add(u64), Done }
///
/// impl Actor for Counter {
///     type Msg = Msg;
///     fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) {
///         match msg {
///             Msg::Add(n) => self.total += n,
///             Msg::Done => {
///                 self.report.send(self.total).unwrap();
///                 ctx.stop();
///             }
///         }
///     }
/// }
///
/// let rt = Runtime::builder().threads(2).build().unwrap();
/// let (tx, rx) = mpsc::channel();
/// let counter = rt.spawn(Counter { total: 0, report: tx });
/// for i in 1..=10 {
///     counter.send(Msg::Add(i)).unwrap();
/// }
/// counter.send(Msg::Done).unwrap();
/// rt.wait();
/// assert_eq!(rx.recv().unwrap(), 55);
/// ```
pub trait Actor: Sized + Send + 'static {
    /// The one type this actor receives. Use an enum for several behaviours.
    type Msg: Send + 'static;

    /// Handles one message. A panic here stops this actor only (see [`ActorDown`](crate::ActorDown)).
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Self::Msg);

    /// Runs once, before the first message.
    fn started(&mut self, _ctx: &mut Context<Self>) {}

    /// Runs once when the actor stops: after [`Context::stop`], or at runtime shutdown. It does
    /// not run after a panic (the state may be broken) nor for an actor that nothing can reach
    /// any more (no reference left and nothing queued), which is simply dropped.
    fn stopped(&mut self, _ctx: &mut Context<Self>) {}
}
