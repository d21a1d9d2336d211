//! Framing: cutting what a connection reads into the pieces its handler receives.
//!
//! Why it lives apart from the connection: a frame must cost O(frame) whatever else was read
//! with it, and a peer must not be able to make the connection buffer without bound. Both are
//! properties of this code alone, so they are tested here, without sockets or timing.
//!
//! * **Cost.** Frames are cut from the read buffer (a [`BytesMut`]) with `split_to(n).freeze()`:
//!   no bytes are copied, the frame is a view of the buffer it was read into. Cutting a million
//!   8-byte frames out of one 8 MiB read is a million pointer moves. Delimiter searches resume
//!   where the last one stopped, so a long line arriving in small reads is scanned once.
//! * **Bounds.** Delimited and length-prefixed framing carry a maximum. More than `max` bytes
//!   without a delimiter, or a length prefix above `max`, is a [`FrameError`] the moment it is
//!   seen, before the frame is buffered. If the handler keeps the connection open after one,
//!   the rest of the offending frame is skipped as it arrives (up to the next delimiter, or the
//!   announced length), never stored.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// How a connection cuts its input into the pieces [`received`] gets. Set it with
/// [`Conn::framing`](crate::Conn::framing) (or [`Conn::expect`](crate::Conn::expect) for fixed
/// sizes); it can be changed from `received`, and the next frame is cut the new way.
///
/// [`received`]: crate::ConnectionHandler::received
///
/// ```
/// use rein_net::{Framing, Prefix};
/// // A text protocol: lines of at most 8 KiB (a `\r` before the `\n` is stripped).
/// let lines = Framing::Lines { max: 8 * 1024 };
/// // A binary one: a 4-byte big-endian length, then at most 1 MiB of body.
/// let frames = Framing::LengthPrefixed { prefix: Prefix::U32, max: 1 << 20 };
/// assert_ne!(lines, frames);
/// assert_eq!(Framing::default(), Framing::Raw);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Whatever arrived, as it arrived (the default): no buffering beyond one read.
    #[default]
    Raw,
    /// Exactly `n` bytes per frame (`Exact(0)` is [`Raw`](Framing::Raw)). There is no maximum
    /// beyond `n` itself: choose `n` from a length you have checked.
    Exact(usize),
    /// Lines ending in `\n`, delivered without the `\n` and without a `\r` just before it. A line
    /// of more than `max` bytes (its `\r` counted) is [`FrameError::TooLong`].
    Lines {
        /// The most bytes a line may hold before its `\n`.
        max: usize,
    },
    /// Frames ending in `delimiter`, delivered without it. More than `max` bytes without the
    /// delimiter is [`FrameError::TooLong`].
    Delimited {
        /// The byte that ends a frame.
        delimiter: u8,
        /// The most bytes a frame may hold before its delimiter.
        max: usize,
    },
    /// A big-endian length prefix, then that many bytes; the body is delivered (without the
    /// prefix). A length above `max` is [`FrameError::LengthTooLarge`].
    LengthPrefixed {
        /// The prefix's width.
        prefix: Prefix,
        /// The longest body accepted.
        max: usize,
    },
}

/// The width of a [`Framing::LengthPrefixed`] length prefix (big-endian, unsigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// Two bytes: bodies up to 65,535 bytes.
    U16,
    /// Four bytes.
    U32,
}

impl Prefix {
    fn width(self) -> usize {
        match self {
            Prefix::U16 => 2,
            Prefix::U32 => 4,
        }
    }

    fn read(self, bytes: &[u8]) -> usize {
        match self {
            Prefix::U16 => usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
            // A u32 fits a usize on every platform rein runs on (32 and 64 bits).
            Prefix::U32 => u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
        }
    }
}

/// Input that breaks the connection's [`Framing`], handed to
/// [`frame_error`](crate::ConnectionHandler::frame_error). Nothing of the offending frame is
/// buffered: the error is raised as soon as it is certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// More than `max` bytes arrived without the delimiter (or `\n`).
    TooLong {
        /// The framing's maximum.
        max: usize,
    },
    /// A length prefix announced `len` bytes, more than `max`.
    LengthTooLarge {
        /// The announced length.
        len: usize,
        /// The framing's maximum.
        max: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { max } => {
                write!(f, "more than {max} bytes without a delimiter")
            }
            FrameError::LengthTooLarge { len, max } => {
                write!(
                    f,
                    "a frame of {len} bytes announced, more than the maximum {max}"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// What to throw away after a [`FrameError`] the handler chose to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// Everything up to and including the next delimiter.
    ToDelimiter(u8),
    /// This many more bytes (the body of a frame whose length was too large).
    Bytes(usize),
}

/// Cuts frames out of a read buffer according to a [`Framing`].
#[derive(Debug)]
pub(crate) struct Framer {
    framing: Framing,
    skip: Skip,
    /// Bytes at the front of the buffer already searched for the delimiter, without success.
    scanned: usize,
}

impl Framer {
    pub(crate) fn new() -> Self {
        Framer {
            framing: Framing::Raw,
            skip: Skip::Nothing,
            scanned: 0,
        }
    }

    pub(crate) fn framing(&self) -> Framing {
        self.framing
    }

    /// Cuts the next frame the new way (a search in progress starts over).
    pub(crate) fn set(&mut self, framing: Framing) {
        self.framing = match framing {
            Framing::Exact(0) => Framing::Raw,
            other => other,
        };
        self.scanned = 0;
    }

    /// The next frame in `buf`, an error, or `None` when more input is needed. A frame is cut
    /// off the front of `buf` without copying.
    pub(crate) fn next(&mut self, buf: &mut BytesMut) -> Option<Result<Bytes, FrameError>> {
        if !self.skipped(buf) {
            return None;
        }
        match self.framing {
            Framing::Raw => (!buf.is_empty()).then(|| Ok(buf.split().freeze())),
            Framing::Exact(n) => (buf.len() >= n).then(|| Ok(buf.split_to(n).freeze())),
            Framing::Lines { max } => self.delimited(buf, b'\n', max, true),
            Framing::Delimited { delimiter, max } => self.delimited(buf, delimiter, max, false),
            Framing::LengthPrefixed { prefix, max } => {
                let width = prefix.width();
                if buf.len() < width {
                    return None;
                }
                let len = prefix.read(&buf[..width]);
                if len > max {
                    buf.advance(width);
                    self.skip = Skip::Bytes(len);
                    return Some(Err(FrameError::LengthTooLarge { len, max }));
                }
                if buf.len() - width < len {
                    return None;
                }
                buf.advance(width);
                Some(Ok(buf.split_to(len).freeze()))
            }
        }
    }

    /// Bytes the current frame still needs beyond what `buffered` holds, when known: lets the
    /// reader size its buffer for a large frame at once.
    pub(crate) fn missing(&self, buffered: usize) -> usize {
        let frame = match self.framing {
            Framing::Exact(n) => n,
            _ => return 0,
        };
        frame.saturating_sub(buffered)
    }

    /// Throws away what an earlier error said to skip. Returns whether framing can go on.
    fn skipped(&mut self, buf: &mut BytesMut) -> bool {
        match self.skip {
            Skip::Nothing => true,
            Skip::Bytes(left) => {
                let now = left.min(buf.len());
                buf.advance(now);
                self.skip = match left - now {
                    0 => Skip::Nothing,
                    more => Skip::Bytes(more),
                };
                self.skip == Skip::Nothing
            }
            Skip::ToDelimiter(delimiter) => match buf.iter().position(|&b| b == delimiter) {
                Some(at) => {
                    buf.advance(at + 1);
                    self.skip = Skip::Nothing;
                    true
                }
                None => {
                    buf.clear();
                    false
                }
            },
        }
    }

    fn delimited(
        &mut self,
        buf: &mut BytesMut,
        delimiter: u8,
        max: usize,
        strip_cr: bool,
    ) -> Option<Result<Bytes, FrameError>> {
        let from = self.scanned.min(buf.len());
        match buf[from..].iter().position(|&b| b == delimiter) {
            Some(offset) => {
                self.scanned = 0;
                let at = from + offset;
                if at > max {
                    buf.advance(at + 1);
                    return Some(Err(FrameError::TooLong { max }));
                }
                let mut frame = buf.split_to(at + 1);
                frame.truncate(at);
                if strip_cr && frame.last() == Some(&b'\r') {
                    frame.truncate(at - 1);
                }
                Some(Ok(frame.freeze()))
            }
            None if buf.len() > max => {
                // Certain already: do not buffer the rest of it.
                self.scanned = 0;
                buf.clear();
                self.skip = Skip::ToDelimiter(delimiter);
                Some(Err(FrameError::TooLong { max }))
            }
            None => {
                self.scanned = buf.len();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn drain(framer: &mut Framer, buf: &mut BytesMut) -> Vec<Result<Bytes, FrameError>> {
        std::iter::from_fn(|| framer.next(buf)).collect()
    }

    #[test]
    fn a_million_small_frames_from_one_big_read_copy_nothing() {
        const FRAMES: usize = 1_000_000;
        const FRAME: usize = 8;
        let input = pattern(FRAMES * FRAME);
        let mut buf = BytesMut::from(&input[..]);
        let base = buf.as_ptr() as usize;
        let mut framer = Framer::new();
        framer.set(Framing::Exact(FRAME));
        let mut frames = 0;
        while let Some(frame) = framer.next(&mut buf) {
            let frame = frame.unwrap();
            assert_eq!(frame.len(), FRAME);
            // Each frame is the next 8 bytes of the one allocation the read filled: cut off, not
            // copied, so cutting costs O(1) per frame and O(input) in all.
            assert_eq!(frame.as_ptr() as usize, base + frames * FRAME);
            assert_eq!(frame, input[frames * FRAME..(frames + 1) * FRAME]);
            frames += 1;
        }
        assert_eq!(frames, FRAMES);
        assert!(buf.is_empty());
    }

    #[test]
    fn zero_and_raw_take_everything_buffered() {
        let mut framer = Framer::new();
        framer.set(Framing::Exact(0));
        assert_eq!(framer.framing(), Framing::Raw);
        let mut buf = BytesMut::new();
        assert!(framer.next(&mut buf).is_none(), "nothing is no frame");
        buf.extend_from_slice(b"hello world");
        framer.set(Framing::Exact(6));
        assert_eq!(
            framer.next(&mut buf),
            Some(Ok(Bytes::from_static(b"hello ")))
        );
        assert_eq!(framer.next(&mut buf), None, "only 5 bytes left");
        framer.set(Framing::Raw);
        assert_eq!(
            framer.next(&mut buf),
            Some(Ok(Bytes::from_static(b"world")))
        );
        assert_eq!(framer.next(&mut buf), None);
    }

    #[test]
    fn lines_strip_their_ending_and_survive_being_split_anywhere() {
        let input = b"one\r\ntwo\n\nthree\rfour\n";
        let want: Vec<&[u8]> = vec![b"one", b"two", b"", b"three\rfour"];
        for cut in 0..input.len() {
            let mut framer = Framer::new();
            framer.set(Framing::Lines { max: 64 });
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&input[..cut], &input[cut..]] {
                buf.extend_from_slice(part);
                got.extend(drain(&mut framer, &mut buf).into_iter().map(Result::unwrap));
            }
            assert_eq!(got, want, "split at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn an_over_long_line_is_an_error_as_soon_as_it_is_certain_and_is_skipped() {
        let mut framer = Framer::new();
        framer.set(Framing::Lines { max: 4 });
        let mut buf = BytesMut::from(&b"okay\nfive"[..]);
        assert_eq!(framer.next(&mut buf), Some(Ok(Bytes::from_static(b"okay"))));
        assert_eq!(
            framer.next(&mut buf),
            None,
            "4 bytes of a line may still end"
        );
        buf.extend_from_slice(b"!");
        // Five bytes and no `\n`: an error now, and nothing of it stays buffered.
        assert_eq!(
            framer.next(&mut buf),
            Some(Err(FrameError::TooLong { max: 4 }))
        );
        assert!(buf.is_empty());
        // The rest of the long line is thrown away as it arrives, never stored.
        buf.extend_from_slice(&[b'x'; 100_000]);
        assert_eq!(framer.next(&mut buf), None);
        assert!(buf.is_empty(), "skipped input is not buffered");
        buf.extend_from_slice(b"xx\nnext\n");
        assert_eq!(framer.next(&mut buf), Some(Ok(Bytes::from_static(b"next"))));
        // A complete line that is too long is an error too, and only it is dropped.
        buf.extend_from_slice(b"toolong\nfine\n");
        assert_eq!(
            framer.next(&mut buf),
            Some(Err(FrameError::TooLong { max: 4 }))
        );
        assert_eq!(framer.next(&mut buf), Some(Ok(Bytes::from_static(b"fine"))));
    }

    #[test]
    fn delimited_frames_keep_a_carriage_return() {
        let mut framer = Framer::new();
        framer.set(Framing::Delimited {
            delimiter: 0,
            max: 8,
        });
        let mut buf = BytesMut::from(&b"a\r\0bc\0"[..]);
        let got: Vec<_> = drain(&mut framer, &mut buf);
        assert_eq!(
            got,
            vec![
                Ok(Bytes::from_static(b"a\r")),
                Ok(Bytes::from_static(b"bc"))
            ]
        );
    }

    #[test]
    fn a_long_line_in_small_reads_is_scanned_once() {
        // Each read adds one byte; without the resume point every search would start over and
        // the work would grow with the square of the line.
        let mut framer = Framer::new();
        framer.set(Framing::Lines { max: 1 << 20 });
        let mut buf = BytesMut::new();
        for _ in 0..10_000 {
            buf.extend_from_slice(b"y");
            assert_eq!(framer.next(&mut buf), None);
            assert_eq!(framer.scanned, buf.len());
        }
        buf.extend_from_slice(b"\n");
        let line = framer.next(&mut buf).unwrap().unwrap();
        assert_eq!(line.len(), 10_000);
        assert_eq!(framer.scanned, 0);
    }

    #[test]
    fn length_prefixed_frames_cut_exact_bodies() {
        for prefix in [Prefix::U16, Prefix::U32] {
            let mut framer = Framer::new();
            framer.set(Framing::LengthPrefixed { prefix, max: 300 });
            let mut wire = Vec::new();
            let bodies: Vec<Vec<u8>> = (0..=300usize).step_by(50).map(pattern).collect();
            for body in &bodies {
                match prefix {
                    Prefix::U16 => wire.extend_from_slice(&(body.len() as u16).to_be_bytes()),
                    Prefix::U32 => wire.extend_from_slice(&(body.len() as u32).to_be_bytes()),
                }
                wire.extend_from_slice(body);
            }
            // Byte by byte: every split point of prefix and body is crossed.
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for &b in &wire {
                buf.extend_from_slice(&[b]);
                got.extend(drain(&mut framer, &mut buf).into_iter().map(Result::unwrap));
            }
            assert_eq!(got, bodies, "{prefix:?}");
        }
    }

    #[test]
    fn a_length_above_the_maximum_is_an_error_and_its_body_is_skipped_unbuffered() {
        let mut framer = Framer::new();
        framer.set(Framing::LengthPrefixed {
            prefix: Prefix::U32,
            max: 1000,
        });
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&1_000_000u32.to_be_bytes());
        buf.extend_from_slice(&[9; 10]);
        assert_eq!(
            framer.next(&mut buf),
            Some(Err(FrameError::LengthTooLarge {
                len: 1_000_000,
                max: 1000
            }))
        );
        // The announced body goes by in pieces and is dropped, not stored.
        let mut left = 1_000_000 - 10;
        assert_eq!(framer.next(&mut buf), None);
        assert!(buf.is_empty());
        while left > 0 {
            let n = left.min(64 * 1024);
            buf.extend_from_slice(&vec![9; n]);
            left -= n;
            assert_eq!(framer.next(&mut buf), None);
            assert!(buf.is_empty(), "skipped input is not buffered");
        }
        buf.extend_from_slice(&3u32.to_be_bytes());
        buf.extend_from_slice(b"abc");
        assert_eq!(framer.next(&mut buf), Some(Ok(Bytes::from_static(b"abc"))));
        assert!(buf.is_empty());
    }

    #[test]
    fn missing_reports_what_a_fixed_frame_still_needs() {
        let mut framer = Framer::new();
        assert_eq!(framer.missing(5), 0);
        framer.set(Framing::Exact(100));
        assert_eq!(framer.missing(30), 70);
        assert_eq!(framer.missing(300), 0);
    }
}
