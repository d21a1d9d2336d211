//! The write queue: bytes the handler (or other actors) sent, not yet taken by the kernel.
//!
//! Why chunks of [`Bytes`] written with vectored writes: a send takes whatever the caller has
//! (`Vec<u8>`, `Bytes`, `&'static [u8]`) without copying it, and an echo sends back the very
//! buffer it received. Flushing hands the kernel up to [`MAX_SLICES`] queued chunks in one
//! `writev`, so many small sends cost one system call rather than one each, and nothing is
//! copied into a staging buffer first.
//!
//! The queue also keeps the watermarks: at or above the high one [`Conn::send`] refuses and
//! the connection throttles; at or below the low one it unthrottles.
//!
//! Chunks written by other actors (`ConnRef::write`) are marked *droppable*: under the
//! [`Overflow::Lag`](crate::Overflow::Lag) policy the oldest of them give way to new ones. The
//! handler's own sends are never dropped, nor is the chunk at the head, which may be going out
//! already.
//!
//! [`Conn::send`]: crate::Conn::send

use crate::SendToken;
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// Chunks per `writev` (Linux allows 1024; 64 covers any burst worth batching).
const MAX_SLICES: usize = 64;

/// How a flush ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// The queue is empty.
    Drained(usize),
    /// The socket would block; bytes are left. Wait for a writable edge.
    Blocked(usize),
}

impl Flushed {
    /// Bytes written by this flush.
    pub(crate) fn bytes(self) -> usize {
        match self {
            Flushed::Drained(n) | Flushed::Blocked(n) => n,
        }
    }
}

/// One queued send.
#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    token: SendToken,
    /// Written by another actor: the `Lag` overflow policy may drop it.
    droppable: bool,
}

/// Queued chunks, their tokens, and the watermarks.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    chunks: VecDeque<Chunk>,
    queued: usize,
    /// The most bytes queued at once, as of the last [`note_peak`](WriteQueue::note_peak).
    peak: usize,
    high: usize,
    low: usize,
    next_token: u64,
    /// Tokens whose bytes are all written, not yet reported to `sent`.
    written: Vec<SendToken>,
    /// A send was refused as not writeable since [`take_refused`](WriteQueue::take_refused).
    refused: bool,
    /// Front bytes a layer has taken and not yet [`consume`](WriteQueue::consume)d (TLS: in
    /// records not yet sent): [`drop_oldest_over`](WriteQueue::drop_oldest_over) keeps them.
    held: usize,
}

impl WriteQueue {
    pub(crate) fn new(high: usize, low: usize) -> Self {
        WriteQueue {
            chunks: VecDeque::new(),
            queued: 0,
            peak: 0,
            high,
            low,
            next_token: 0,
            written: Vec::new(),
            refused: false,
            held: 0,
        }
    }

    /// Queues `bytes` if the queue is below its high watermark; hands them back otherwise
    /// (and remembers the refusal).
    pub(crate) fn offer(&mut self, bytes: Bytes) -> Result<SendToken, Bytes> {
        if self.is_writeable() {
            let token = self.enqueue(bytes, false);
            self.note_peak();
            Ok(token)
        } else {
            self.refused = true;
            Err(bytes)
        }
    }

    /// Queues `bytes` whatever the watermark (for writes from other actors, which the runtime
    /// already holds back through backpressure, or an overflow policy bounds). Droppable.
    pub(crate) fn push(&mut self, bytes: Bytes) -> SendToken {
        self.enqueue(bytes, true)
    }

    fn enqueue(&mut self, bytes: Bytes, droppable: bool) -> SendToken {
        let token = SendToken(self.next_token);
        self.next_token += 1;
        if bytes.is_empty() {
            self.written.push(token);
        } else {
            self.queued += bytes.len();
            self.chunks.push_back(Chunk {
                bytes,
                token,
                droppable,
            });
        }
        token
    }

    /// Drops the oldest droppable chunks, never the head, until at most `limit` bytes are
    /// queued (or nothing droppable is left). Returns how many chunks and bytes it dropped.
    pub(crate) fn drop_oldest_over(&mut self, limit: usize) -> (u64, usize) {
        let (mut chunks, mut bytes) = (0, 0);
        // Not the head (it may be partly written), nor a chunk with bytes a layer holds.
        let mut at = 1;
        let mut kept = self.chunks.front().map_or(0, |c| c.bytes.len());
        while kept < self.held && at < self.chunks.len() {
            kept += self.chunks[at].bytes.len();
            at += 1;
        }
        while self.queued > limit && at < self.chunks.len() {
            if self.chunks[at].droppable {
                let dropped = self.chunks.remove(at).expect("in range");
                self.queued -= dropped.bytes.len();
                bytes += dropped.bytes.len();
                chunks += 1;
            } else {
                at += 1;
            }
        }
        (chunks, bytes)
    }

    /// Records the bytes queued now if they are the most so far.
    pub(crate) fn note_peak(&mut self) {
        self.peak = self.peak.max(self.queued);
    }

    /// The most bytes queued at once so far (see [`note_peak`](WriteQueue::note_peak)).
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    pub(crate) fn is_writeable(&self) -> bool {
        self.queued < self.high
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    pub(crate) fn over_high(&self) -> bool {
        self.queued >= self.high
    }

    pub(crate) fn at_or_below_low(&self) -> bool {
        self.queued <= self.low
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.chunks.is_empty()
    }

    /// Whether a send was refused as not writeable since the last call; clears the record.
    pub(crate) fn take_refused(&mut self) -> bool {
        std::mem::take(&mut self.refused)
    }

    pub(crate) fn has_written(&self) -> bool {
        !self.written.is_empty()
    }

    pub(crate) fn take_written(&mut self) -> Vec<SendToken> {
        std::mem::take(&mut self.written)
    }

    /// Drops everything queued (an abort).
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.queued = 0;
        self.held = 0;
    }

    /// Gives back the queue's memory once it is empty (an idle connection keeps none).
    pub(crate) fn shrink_if_empty(&mut self) {
        if self.chunks.is_empty() {
            self.chunks = VecDeque::new();
        }
        if self.written.is_empty() {
            self.written = Vec::new();
        }
    }

    /// Writes as much as `out` takes, up to [`MAX_SLICES`] chunks per vectored write.
    pub(crate) fn flush(&mut self, out: &mut impl Write) -> io::Result<Flushed> {
        self.flush_at_most(out, usize::MAX)
    }

    /// Like [`flush`](WriteQueue::flush), but writes at most `limit` bytes: a layer that sends
    /// the first bytes of the queue one way and the rest another (STARTTLS) flushes the first
    /// part with this. Reports `Drained` once `limit` bytes are written.
    pub(crate) fn flush_at_most(
        &mut self,
        out: &mut impl Write,
        limit: usize,
    ) -> io::Result<Flushed> {
        let mut total = 0;
        while !self.chunks.is_empty() && total < limit {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = self.front(&mut slices, limit - total);
            let n = match out.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Flushed::Blocked(total))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n;
            self.consume(n);
        }
        Ok(Flushed::Drained(total))
    }

    /// Marks the first `n` bytes as taken by a layer until they are
    /// [`consume`](WriteQueue::consume)d: an overflow policy must not drop them.
    pub(crate) fn hold(&mut self, n: usize) {
        self.held = n;
    }

    /// Fills `slices` with the front chunks, at most `limit` bytes in all (the last one cut
    /// short if needed); returns how many it filled. For a layer that transforms what it
    /// writes (TLS encrypts it) and [`consume`](WriteQueue::consume)s it once it is out.
    pub(crate) fn front<'a>(&'a self, slices: &mut [IoSlice<'a>], limit: usize) -> usize {
        let mut count = 0;
        let mut left = limit;
        for (chunk, slot) in self.chunks.iter().zip(slices.iter_mut()) {
            if left == 0 {
                break;
            }
            let take = chunk.bytes.len().min(left);
            *slot = IoSlice::new(&chunk.bytes[..take]);
            left -= take;
            count += 1;
        }
        count
    }

    /// Drops `n` written bytes off the front, recording the tokens of chunks now complete.
    pub(crate) fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        self.held = self.held.saturating_sub(n);
        while n > 0 {
            let front = &mut self.chunks[0].bytes;
            if n >= front.len() {
                n -= front.len();
                let chunk = self.chunks.pop_front().expect("non-empty");
                self.written.push(chunk.token);
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `cap` bytes per call, then blocks after `limit` in total;
    /// counts its calls.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        limit: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let room = self.limit - self.got.len();
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut take = self.cap.min(room);
            let mut n = 0;
            for buf in bufs {
                let part = take.min(buf.len());
                self.got.extend_from_slice(&buf[..part]);
                take -= part;
                n += part;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn flush_keeps_order_and_reports_tokens() {
        let mut queue = WriteQueue::new(10, 5);
        let a = queue.offer(Bytes::from_static(b"hello")).unwrap();
        let b = queue.offer(Bytes::from(b"world!".to_vec())).unwrap();
        assert!(
            !queue.is_writeable(),
            "11 bytes is above the high watermark of 10"
        );
        assert!(!queue.take_refused(), "an accepted send is no refusal");
        assert_eq!(
            queue.offer(Bytes::from_static(b"x")),
            Err(Bytes::from_static(b"x"))
        );
        assert!(queue.take_refused(), "the connection hears of the refusal");
        assert!(!queue.take_refused(), "once");
        let mut out = Trickle {
            got: Vec::new(),
            cap: 3,
            limit: 7,
            calls: 0,
        };
        assert_eq!(queue.flush(&mut out).unwrap(), Flushed::Blocked(7));
        assert_eq!(queue.take_written(), vec![a]);
        assert_eq!(queue.queued(), 4);
        out.limit = 100;
        assert_eq!(queue.flush(&mut out).unwrap(), Flushed::Drained(4));
        assert_eq!(out.got, b"helloworld!");
        assert_eq!(queue.take_written(), vec![b]);
        assert!(queue.at_or_below_low());
    }

    #[test]
    fn many_small_sends_go_out_in_one_vectored_write() {
        let mut queue = WriteQueue::new(1 << 20, 1 << 19);
        for i in 0..MAX_SLICES {
            queue.push(Bytes::from(vec![i as u8; 10]));
        }
        let mut out = Trickle {
            got: Vec::new(),
            cap: usize::MAX,
            limit: usize::MAX,
            calls: 0,
        };
        assert_eq!(
            queue.flush(&mut out).unwrap(),
            Flushed::Drained(10 * MAX_SLICES)
        );
        assert_eq!(out.calls, 1, "one system call for {MAX_SLICES} chunks");
        assert_eq!(queue.take_written().len(), MAX_SLICES);
    }

    #[test]
    fn a_limited_flush_stops_at_the_limit_and_front_cuts_the_last_slice() {
        let mut queue = WriteQueue::new(1 << 20, 1 << 19);
        let a = queue.push(Bytes::from_static(b"OK\n"));
        queue.push(Bytes::from_static(b"secret"));
        let mut out = Trickle {
            got: Vec::new(),
            cap: usize::MAX,
            limit: usize::MAX,
            calls: 0,
        };
        assert_eq!(
            queue.flush_at_most(&mut out, 5).unwrap(),
            Flushed::Drained(5)
        );
        assert_eq!(out.got, b"OK\nse", "nothing past the limit");
        assert_eq!(queue.take_written(), vec![a]);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(queue.front(&mut slices, 2), 1);
        assert_eq!(&*slices[0], b"cr");
        assert_eq!(queue.front(&mut slices, 100), 1);
        assert_eq!(&*slices[0], b"cret");
    }

    #[test]
    fn sends_are_not_copied() {
        let data = Bytes::from(vec![7u8; 1000]);
        let at = data.as_ptr();
        let mut queue = WriteQueue::new(1 << 20, 1 << 19);
        queue.push(data);
        assert_eq!(
            queue.chunks[0].bytes.as_ptr(),
            at,
            "the queued chunk is the sent buffer"
        );
    }

    #[test]
    fn empty_sends_complete_at_once_and_clear_drops_everything() {
        let mut queue = WriteQueue::new(10, 5);
        let t = queue.push(Bytes::new());
        assert_eq!(queue.take_written(), vec![t]);
        queue.push(Bytes::from_static(b"abc"));
        queue.clear();
        assert_eq!(queue.queued(), 0);
        assert!(!queue.has_queued());
        queue.shrink_if_empty();
        assert_eq!(queue.chunks.capacity(), 0);
    }

    #[test]
    fn lag_drops_the_oldest_writes_of_others_never_the_head_nor_own_sends() {
        let mut queue = WriteQueue::new(1 << 20, 1 << 19);
        queue.push(Bytes::from_static(b"head"));
        queue.push(Bytes::from_static(b"old1"));
        queue.offer(Bytes::from_static(b"mine")).unwrap();
        queue.push(Bytes::from_static(b"old2"));
        queue.push(Bytes::from_static(b"new"));
        queue.note_peak();
        assert_eq!(queue.queued(), 19);
        assert_eq!(queue.drop_oldest_over(12), (2, 8));
        let left: Vec<_> = queue.chunks.iter().map(|c| c.bytes.clone()).collect();
        assert_eq!(left, ["head", "mine", "new"]);
        assert_eq!(queue.queued(), 11);
        assert_eq!(
            queue.drop_oldest_over(0),
            (1, 3),
            "only `new` was left to drop"
        );
        assert_eq!(queue.queued(), 8);
        assert_eq!(queue.peak(), 19);
    }

    #[test]
    fn lag_keeps_the_bytes_a_layer_holds() {
        // TLS has encrypted the first 6 bytes (all of `head`, part of `old1`) and consumes them
        // once their records are out: dropping `old1` would make it consume the wrong bytes.
        let mut queue = WriteQueue::new(1 << 20, 1 << 19);
        for chunk in ["head", "old1", "old2", "new"] {
            queue.push(Bytes::from_static(chunk.as_bytes()));
        }
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(queue.front(&mut slices, 6), 2);
        queue.hold(6);
        assert_eq!(queue.drop_oldest_over(0), (2, 7), "old2 and new only");
        queue.consume(6);
        let left: Vec<_> = queue.chunks.iter().map(|c| c.bytes.clone()).collect();
        assert_eq!(left, ["d1"]);
        // Nothing held any more: the head is still kept, the rest may go.
        queue.push(Bytes::from_static(b"more"));
        assert_eq!(queue.drop_oldest_over(0), (1, 4));
    }
}
