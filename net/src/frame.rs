//! [`FrameBuffer`]: bytes read from a socket and not delivered yet, cut into frames.
//!
//! Why its own type: cutting a frame must cost O(frame), whatever else the buffer holds. The
//! obvious cut, `Vec::split_off` at the frame's end, copies the *rest* of the buffer for every
//! frame and leaves the delivered frame owning the whole allocation: a 64 KiB read cut into
//! 10-byte frames copied, and handed out as capacity, about 214 MB (3,278 times the read), and
//! the work grows with the square of the read. The peer chooses the frame boundaries and how
//! much arrives at once, so any framed server was exposed.
//!
//! Here the buffer keeps a read offset instead. A frame is copied out on its own (its `Vec` has
//! the frame's capacity, not the buffer's) and the offset moves past it. The consumed prefix is
//! reclaimed, by moving the unconsumed rest to the front, only when new bytes are appended and
//! the prefix is at least as long as the rest; each move is then paid for by at least as many
//! bytes delivered since the last one, so moving costs at most one extra copy per byte. Once
//! everything is consumed the buffer is reset, and an unusually large allocation (left by a big
//! frame) is given back rather than kept for the connection's lifetime.
//!
//! Kept apart from the connection actor so its costs can be counted in unit tests, without
//! sockets or timing.

/// Capacity an empty buffer keeps for the next reads; more than this is freed once empty.
const KEEP: usize = 256 * 1024;

/// Undelivered bytes: `buf[start..]`. `buf[..start]` is delivered and waits to be reclaimed.
#[derive(Debug, Default)]
pub(crate) struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    /// Bytes copied so far: into frames, and moved to reclaim the consumed prefix.
    #[cfg(test)]
    copied: Copied,
}

/// What [`FrameBuffer`] copied (tests only).
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Copied {
    /// Into delivered frames.
    out: usize,
    /// Moved within the buffer, reclaiming the consumed prefix.
    moved: usize,
}

impl FrameBuffer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Bytes buffered and not yet delivered.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `data` after what is buffered.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.len() {
            // The consumed prefix is at least as long as the rest: moving the rest costs no
            // more than what was delivered since the last move.
            #[cfg(test)]
            {
                self.copied.moved += self.len();
            }
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next frame: exactly `want` bytes, or everything buffered when `want` is 0. `None`
    /// when not enough (or, for 0, nothing) is buffered. Costs O(frame).
    pub(crate) fn next(&mut self, want: usize) -> Option<Vec<u8>> {
        let take = if want == 0 { self.len() } else { want };
        if take == 0 || self.len() < take {
            return None;
        }
        let frame = self.buf[self.start..self.start + take].to_vec();
        #[cfg(test)]
        {
            self.copied.out += take;
        }
        self.start += take;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > KEEP {
                self.buf = Vec::new();
            }
        }
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_million_small_frames_from_one_big_read_cost_linear_copying() {
        const FRAMES: usize = 1_000_000;
        const FRAME: usize = 8;
        let input = pattern(FRAMES * FRAME);
        let mut buffer = FrameBuffer::new();
        buffer.extend(&input);
        let mut capacity = 0;
        let mut frames = 0;
        while let Some(frame) = buffer.next(FRAME) {
            assert_eq!(frame, input[frames * FRAME..(frames + 1) * FRAME]);
            capacity += frame.capacity();
            frames += 1;
        }
        assert_eq!(frames, FRAMES);
        assert!(buffer.is_empty());
        // Each frame owns its own 8 bytes; nothing else was copied. (`split_off` per frame
        // copied and handed out about 4 * 10^12 bytes here: sum of what was left each time.)
        assert_eq!(capacity, FRAMES * FRAME);
        let copied = buffer.copied;
        assert_eq!(
            copied,
            Copied {
                out: FRAMES * FRAME,
                moved: 0
            }
        );
        // The 8 MB allocation is given back once everything is delivered.
        assert_eq!(buffer.buf.capacity(), 0);
    }

    #[test]
    fn frames_across_many_reads_copy_each_byte_a_bounded_number_of_times() {
        // 64 KiB reads cut into 10-byte frames: frames straddle the reads, so the buffer is
        // never empty when the next read arrives and has to reclaim its prefix.
        const READ: usize = 64 * 1024;
        const READS: usize = 200;
        const FRAME: usize = 10;
        let input = pattern(READ * READS);
        let mut buffer = FrameBuffer::new();
        let mut got = Vec::with_capacity(input.len());
        let mut capacity = 0;
        let mut largest_buffer = 0;
        for read in input.chunks(READ) {
            buffer.extend(read);
            largest_buffer = largest_buffer.max(buffer.buf.capacity());
            while let Some(frame) = buffer.next(FRAME) {
                capacity += frame.capacity();
                got.extend_from_slice(&frame);
            }
            assert!(buffer.len() < FRAME);
        }
        assert_eq!(got, input[..got.len()]);
        assert_eq!(got.len() + buffer.len(), input.len());
        assert_eq!(capacity, got.len());
        let copied = buffer.copied;
        assert_eq!(copied.out, got.len());
        // Only the partial frame at the end of each read moves to the front.
        assert!(copied.moved < READS * FRAME, "{copied:?}");
        // The buffer holds about one read, not all of them.
        assert!(largest_buffer <= 2 * READ + FRAME, "{largest_buffer}");
    }

    #[test]
    fn reclaiming_never_copies_more_than_was_delivered() {
        // Frames larger than reads, and reads that leave the buffer half consumed: the worst
        // case for moving the rest to the front.
        let input = pattern(3_000_000);
        let mut buffer = FrameBuffer::new();
        let mut got = Vec::new();
        let mut sizes = [1usize, 7, 1000, 3, 4096, 65_536, 100_000, 12]
            .iter()
            .cycle();
        let mut reads = input.chunks(1500).peekable();
        while reads.peek().is_some() || !buffer.is_empty() {
            let want = *sizes.next().unwrap();
            while buffer.len() < want {
                match reads.next() {
                    Some(read) => buffer.extend(read),
                    None => break,
                }
            }
            match buffer.next(want) {
                Some(frame) => {
                    assert_eq!(frame.len(), want);
                    assert_eq!(frame.capacity(), want);
                    got.extend_from_slice(&frame);
                }
                None => got.extend(buffer.next(0).unwrap_or_default()),
            }
        }
        assert_eq!(got, input);
        let copied = buffer.copied;
        assert_eq!(copied.out, input.len());
        assert!(copied.moved <= input.len(), "{copied:?}");
    }

    #[test]
    fn zero_takes_everything_buffered() {
        let mut buffer = FrameBuffer::new();
        assert_eq!(buffer.next(0), None);
        assert_eq!(buffer.next(3), None);
        buffer.extend(b"hello world");
        assert_eq!(buffer.next(6).as_deref(), Some(&b"hello "[..]));
        assert_eq!(buffer.next(6), None, "only 5 bytes left");
        assert_eq!(buffer.len(), 5);
        let rest = buffer.next(0).unwrap();
        assert_eq!(rest, b"world");
        assert_eq!(rest.capacity(), 5);
        assert!(buffer.is_empty());
        assert_eq!(buffer.next(0), None);
    }
}
