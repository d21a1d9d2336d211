//! The read buffer: one [`BytesMut`] per connection, allocated only while it holds bytes or a
//! read is under way, and sized to the traffic.
//!
//! Why this shape:
//! * **Idle connections hold nothing.** A server's connections are mostly idle, and a fixed
//!   64 KiB buffer each is most of what an idle connection costs. The buffer is given back
//!   whenever a read turn ends with nothing left undelivered, so an idle connection holds no
//!   read buffer at all.
//! * **Adaptive size.** A read starts at [`INITIAL`] (8 KiB) and doubles while reads fill it,
//!   up to the connection's `read_per_turn`; after two short reads in a row it halves again.
//!   A chatty connection with small messages never touches more than a few KiB; a bulk
//!   transfer reaches full-size reads after a few turns.
//! * **No copies.** Frames are cut off the front of this buffer (see `framing`), so what the
//!   handler gets is a view of the bytes the kernel wrote, and reading goes straight into the
//!   buffer's spare capacity, without zeroing it first.
//!
//! Reading is a closure over the spare capacity, so the costs can be counted in unit tests
//! without sockets.

use bytes::BytesMut;
use std::io;
use std::mem::MaybeUninit;

/// The first read's size, and the smallest.
pub(crate) const INITIAL: usize = 8 * 1024;

/// Whether the last read came up short of its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trend {
    Steady,
    /// One short read: one more and the size halves.
    ShortOnce,
}

/// Bytes read and not yet delivered, and the size of the next read.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    buf: BytesMut,
    next: usize,
    max: usize,
    trend: Trend,
    /// Whether the last socket read returned less than it had room for (see
    /// [`take_short`](Self::take_short)).
    short: bool,
    /// Bytes moved by buffer growth or reclaiming (tests only): the copying framing costs.
    #[cfg(test)]
    moved: usize,
}

impl ReadBuf {
    /// A buffer whose reads grow up to `max` bytes. Allocates nothing.
    pub(crate) fn new(max: usize) -> Self {
        ReadBuf {
            buf: BytesMut::new(),
            next: INITIAL.min(max.max(1)),
            max: max.max(1),
            trend: Trend::Steady,
            short: false,
            #[cfg(test)]
            moved: 0,
        }
    }

    /// Whether the last read from the socket came back short (fewer bytes than it had room
    /// for, and more than none), clearing the note. A short read means the socket had no more
    /// to give at that moment; with edge-triggered readiness, anything that arrives later
    /// brings a new edge, so the read that would only confirm `WouldBlock` can be skipped (as
    /// tokio does). Only plain socket reads note it; a TLS session's reads never do.
    pub(crate) fn take_short(&mut self) -> bool {
        std::mem::take(&mut self.short)
    }

    /// What was read and not delivered; frames are cut off its front.
    pub(crate) fn bytes(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The size the next read asks for.
    #[cfg(test)]
    pub(crate) fn next_read(&self) -> usize {
        self.next
    }

    /// Drops what is buffered (a closing connection discards its input).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
    }

    /// Gives the allocation back if nothing is buffered. Frames already handed out keep their
    /// bytes: they share the allocation, which is freed when the last of them is dropped.
    pub(crate) fn release_if_empty(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// One read of at most `budget` bytes (and at least enough room for `missing` more bytes of
    /// a frame, within the budget), appended to what is buffered. Returns what `recv` returned.
    ///
    /// # Safety
    /// When `recv` returns `Ok(n)`, it must have initialised the first `n` bytes of the slice
    /// it was given (as `socket2::Socket::recv` does).
    pub(crate) unsafe fn read_with(
        &mut self,
        budget: usize,
        missing: usize,
        recv: impl FnOnce(&mut [MaybeUninit<u8>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let want = self.next.max(missing).min(budget).max(1);
        #[cfg(test)]
        let before = (self.buf.as_ptr(), self.buf.len());
        self.buf.reserve(want);
        #[cfg(test)]
        if self.buf.as_ptr() != before.0 {
            self.moved += before.1;
        }
        let spare = self.buf.spare_capacity_mut();
        let room = spare.len().min(budget);
        let n = recv(&mut spare[..room])?;
        assert!(
            n <= room,
            "recv claims more bytes than it was given room for"
        );
        // SAFETY: the caller guarantees `recv` initialised the first `n` bytes of the spare
        // capacity it was given, which starts right after the buffer's initialised length;
        // `n <= room <= spare capacity` was just checked.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        self.short = n > 0 && n < room;
        self.adapt(n, want);
        Ok(n)
    }

    /// Doubles the next read after one that filled its size; halves it after two short ones.
    fn adapt(&mut self, got: usize, asked: usize) {
        if got >= asked && asked >= self.next {
            self.next = (self.next * 2).min(self.max);
            self.trend = Trend::Steady;
        } else if got < self.next / 2 {
            match self.trend {
                Trend::Steady => self.trend = Trend::ShortOnce,
                Trend::ShortOnce => {
                    self.next = (self.next / 2).max(INITIAL.min(self.max));
                    self.trend = Trend::Steady;
                }
            }
        } else {
            self.trend = Trend::Steady;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{Framer, Framing};

    fn pattern(offset: usize, len: usize) -> Vec<u8> {
        (offset..offset + len).map(|i| (i % 251) as u8).collect()
    }

    /// Reads from `src` (at most `cap` bytes per read) into `buf`.
    fn read_from(buf: &mut ReadBuf, src: &mut &[u8], budget: usize, missing: usize) -> usize {
        let copy = |spare: &mut [MaybeUninit<u8>]| {
            let n = spare.len().min(src.len());
            for (slot, &b) in spare.iter_mut().zip(&src[..n]) {
                slot.write(b);
            }
            *src = &src[n..];
            Ok(n)
        };
        // SAFETY: `copy` writes exactly the `n` bytes it reports.
        unsafe { buf.read_with(budget, missing, copy) }.unwrap()
    }

    #[test]
    fn a_short_read_is_noted_once_and_a_full_or_empty_one_is_not() {
        let mut buf = ReadBuf::new(64 * 1024);
        let data = vec![3u8; 1 << 16];
        let mut src = &data[..];
        read_from(&mut buf, &mut src, usize::MAX, 0);
        assert!(!buf.take_short(), "a read that filled its room");
        let mut small = &data[..100];
        read_from(&mut buf, &mut small, usize::MAX, 0);
        assert!(buf.take_short(), "100 bytes into kilobytes of room");
        assert!(!buf.take_short(), "taken once");
        let mut none: &[u8] = &[];
        read_from(&mut buf, &mut none, usize::MAX, 0);
        assert!(!buf.take_short(), "the end of stream is not a short read");
    }

    #[test]
    fn reads_start_small_grow_while_full_and_shrink_when_short() {
        let mut buf = ReadBuf::new(64 * 1024);
        assert_eq!(
            buf.bytes().capacity(),
            0,
            "nothing is allocated before a read"
        );
        let data = vec![1u8; 1 << 20];
        let mut src = &data[..];
        let mut sizes = Vec::new();
        for _ in 0..5 {
            sizes.push(read_from(&mut buf, &mut src, usize::MAX, 0));
            buf.bytes().clear();
        }
        assert_eq!(sizes[0], INITIAL, "the first read asks for 8 KiB");
        assert_eq!(
            buf.next_read(),
            64 * 1024,
            "full reads doubled it to the maximum"
        );
        // Short reads: 100 bytes each.
        let small = [2u8; 100];
        for _ in 0..2 {
            let mut s = &small[..];
            read_from(&mut buf, &mut s, usize::MAX, 0);
            buf.bytes().clear();
        }
        assert_eq!(buf.next_read(), 32 * 1024, "two short reads halve it");
        for _ in 0..10 {
            let mut s = &small[..];
            read_from(&mut buf, &mut s, usize::MAX, 0);
            buf.bytes().clear();
        }
        assert_eq!(buf.next_read(), INITIAL, "but never below the initial size");
    }

    #[test]
    fn an_empty_buffer_is_given_back() {
        let mut buf = ReadBuf::new(64 * 1024);
        let data = b"ping".to_vec();
        let mut src = &data[..];
        read_from(&mut buf, &mut src, usize::MAX, 0);
        buf.release_if_empty();
        assert!(buf.bytes().capacity() > 0, "undelivered bytes are kept");
        let frame = buf.bytes().split().freeze();
        assert_eq!(&frame[..], b"ping");
        buf.release_if_empty();
        assert_eq!(
            buf.bytes().capacity(),
            0,
            "an idle connection holds no read buffer"
        );
        assert_eq!(&frame[..], b"ping", "a frame handed out keeps its bytes");
    }

    #[test]
    fn the_budget_bounds_a_read_and_a_large_frame_is_read_in_few_steps() {
        let mut buf = ReadBuf::new(64 * 1024);
        let data = vec![3u8; 1 << 20];
        let mut src = &data[..];
        assert_eq!(read_from(&mut buf, &mut src, 1000, 0), 1000);
        // A frame of 200 KiB is missing: a read asks for it, within the budget.
        let got = read_from(&mut buf, &mut src, usize::MAX, 200 * 1024);
        assert_eq!(got, 200 * 1024);
    }

    /// Reads `input` in `read`-byte pieces and cuts `frame`-byte frames, keeping the frames
    /// alive for a while (as a handler that forwards them would) when `keep` is set. Returns
    /// the bytes delivered and the bytes the buffer moved.
    fn frames_across_reads(input: &[u8], read: usize, frame: usize, keep: bool) -> (usize, usize) {
        let mut buf = ReadBuf::new(64 * 1024);
        let mut framer = Framer::new();
        framer.set(Framing::Exact(frame));
        let mut src = input;
        let mut got = 0;
        let mut kept = Vec::new();
        while !src.is_empty() {
            let mut piece = &src[..read.min(src.len())];
            let n = read_from(&mut buf, &mut piece, read, 0);
            src = &src[n..];
            while let Some(f) = framer.next(buf.bytes()) {
                let f = f.unwrap();
                assert_eq!(f, pattern(got, frame));
                got += f.len();
                if keep {
                    kept.push(f);
                }
            }
            if kept.len() > 1000 {
                kept.clear();
            }
            assert!(buf.len() < frame);
        }
        (got, buf.moved)
    }

    #[test]
    fn frames_across_many_reads_copy_only_the_partial_frames() {
        // 64 KiB reads cut into 10-byte frames: frames straddle the reads, so the buffer is
        // never empty when the next read comes and its leftover must move or be copied.
        const READ: usize = 64 * 1024;
        const READS: usize = 200;
        const FRAME: usize = 10;
        let input = pattern(0, READ * READS);
        for keep in [false, true] {
            let (got, moved) = frames_across_reads(&input, READ, FRAME, keep);
            assert_eq!(got, input.len() / FRAME * FRAME);
            // Only a partial frame (under 10 bytes) is carried into each new read.
            assert!(moved < READS * FRAME, "keep {keep}: moved {moved}");
        }
    }

    #[test]
    fn a_frame_larger_than_the_reads_grows_the_buffer_in_amortised_steps() {
        // 1 MiB frames read 1500 bytes at a time: growth must double, not add a read's worth
        // (which would copy the frame over and over: quadratic).
        const FRAME: usize = 1 << 20;
        let input = pattern(0, 3 * FRAME);
        let (got, moved) = frames_across_reads(&input, 1500, FRAME, true);
        assert_eq!(got, input.len());
        assert!(moved <= 2 * input.len(), "moved {moved}");
    }
}
