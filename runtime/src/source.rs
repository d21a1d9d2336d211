//! [`Source`]: the producer pattern, built in.
//!
//! Backpressure mutes an actor at the end of a behaviour, so a producer that sends a million
//! messages from one behaviour is muted only once it has sent them all. The fix was folklore:
//! send a chunk, send yourself `Continue`, repeat, so that every chunk is one behaviour and the
//! scheduler can mute the producer between chunks. `Source` is that actor, written once: it
//! feeds a target from an iterator (or a closure, through `std::iter::from_fn`), one chunk per
//! behaviour, is muted like any other actor when the target falls behind, and stops by itself
//! when the iterator ends. The target's backlog then stays within `high + 2·chunk`.

use crate::{Actor, ActorRef, Context, DEFAULT_BATCH};

/// A source's own message: send the next chunk. It cannot be built outside this crate.
#[derive(Debug)]
pub struct NextChunk(());

/// An actor that feeds `target` from an iterator, `chunk` messages per behaviour, muted like
/// any actor while the target (or anything it feeds) is overloaded, and stopped once the
/// iterator is exhausted or the target stops. Spawn it like any actor; it starts at once.
///
/// ```
/// use rein::{Actor, Context, Runtime, Source};
///
/// struct Sum(u64);
/// impl Actor for Sum {
///     type Msg = u64;
///     fn handle(&mut self, _: &mut Context<Self>, n: u64) {
///         self.0 += n;
///     }
///     fn stopped(&mut self, _: &mut Context<Self>) {
///         assert_eq!(self.0, 499_999_500_000);
///     }
/// }
///
/// let rt = Runtime::new().unwrap();
/// let sum = rt.spawn(Sum(0));
/// // A million numbers, never more than a bounded backlog at the sum.
/// rt.spawn(Source::new(0..1_000_000u64, sum));
/// rt.wait();
/// ```
pub struct Source<I, A>
where
    I: Iterator + Send + 'static,
    A: Actor,
    A::Msg: From<I::Item>,
{
    items: I,
    target: ActorRef<A>,
    chunk: usize,
}

impl<I, A> Source<I, A>
where
    I: Iterator + Send + 'static,
    A: Actor,
    A::Msg: From<I::Item>,
{
    /// A source of `items` for `target`, sending [`DEFAULT_BATCH`] per behaviour.
    pub fn new(items: impl IntoIterator<IntoIter = I>, target: ActorRef<A>) -> Self {
        Source {
            items: items.into_iter(),
            target,
            chunk: DEFAULT_BATCH,
        }
    }

    /// Messages sent per behaviour (at least 1). The target's backlog bound grows with it
    /// (`high + 2·chunk` for a lone source); the per-behaviour overhead shrinks.
    pub fn chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
}

impl<I, A> Actor for Source<I, A>
where
    I: Iterator + Send + 'static,
    A: Actor,
    A::Msg: From<I::Item>,
{
    type Msg = NextChunk;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx.myself().send(NextChunk(()));
    }

    fn handle(&mut self, ctx: &mut Context<Self>, _: NextChunk) {
        for _ in 0..self.chunk {
            let Some(item) = self.items.next() else {
                ctx.stop();
                return;
            };
            if self.target.send(A::Msg::from(item)).is_err() {
                // The target has stopped: nothing more can be delivered.
                ctx.stop();
                return;
            }
        }
        // A send to self never mutes: the next chunk waits only for this actor's own turn,
        // which the scheduler withholds while a receiver is overloaded.
        let _ = ctx.myself().send(NextChunk(()));
    }
}
