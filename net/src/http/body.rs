//! Bodies in pieces: reading one (by Content-Length, chunked, or until close), writing one
//! (framing each piece as it is produced), and the small queue between an HTTP connection and
//! its TCP write queue.
//!
//! Why a separate "held" queue ([`Outbox`]): bytes produced by another actor (a response-body
//! sink, an upload sink) arrive as messages whether or not the connection is writeable, and
//! must not be lost. They wait here, in order, and go out from `unthrottled`. The queue stays
//! small because the producers are muted by the runtime while the connection is throttled
//! (the connection applies backpressure on itself): at most what they sent before the mute
//! took effect waits here.

use super::chunked::{self, ChunkedDecoder, Piece};
use super::head::{BodyLength, Framing, Headers, Refusal};
use crate::{Conn, ConnectionHandler, SendError};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

/// Reads one body from the bytes that follow its head.
#[derive(Debug)]
pub(crate) enum BodyReader {
    /// This many bytes left (`0`: the end is next).
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Everything until the peer closes (responses only).
    UntilClose,
    /// The end was reported.
    Done,
}

impl BodyReader {
    pub(crate) fn new(length: BodyLength, max_trailers: usize) -> Self {
        match length {
            BodyLength::Empty => BodyReader::Length(0),
            BodyLength::Known(n) => BodyReader::Length(n),
            BodyLength::Chunked => BodyReader::Chunked(ChunkedDecoder::new(max_trailers)),
            BodyLength::UntilClose => BodyReader::UntilClose,
        }
    }

    /// The next piece of the body from the front of `input`, or `None` when more input is
    /// needed. Data pieces are never empty; after [`Piece::End`], the rest of `input` follows
    /// the body.
    pub(crate) fn next(&mut self, input: &mut Bytes) -> Result<Option<Piece>, Refusal> {
        match self {
            BodyReader::Length(0) => {
                *self = BodyReader::Done;
                Ok(Some(Piece::End(Headers::new())))
            }
            BodyReader::Length(left) => {
                if input.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *left -= take as u64;
                Ok(Some(Piece::Data(input.split_to(take))))
            }
            BodyReader::Chunked(decoder) => {
                let piece = decoder.next(input)?;
                if decoder.is_done() {
                    *self = BodyReader::Done;
                }
                Ok(piece)
            }
            BodyReader::UntilClose => {
                if input.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Piece::Data(std::mem::take(input))))
            }
            BodyReader::Done => Ok(None),
        }
    }
}

/// What went wrong writing a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// More bytes than the announced length: the excess was dropped.
    TooLong,
    /// Fewer bytes than the announced length at the end.
    TooShort,
}

/// Frames a body's pieces as they are written.
#[derive(Debug)]
pub(crate) struct BodyWriter {
    framing: Framing,
    /// Bytes still owed under [`Framing::Length`].
    left: u64,
}

/// Pieces no larger than this are framed into one buffer with their chunk size line (a copy
/// that is cheaper than three queue entries); larger ones go out as they are.
const COPY_BELOW: usize = 1024;

impl BodyWriter {
    pub(crate) fn new(framing: Framing) -> Self {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        BodyWriter { framing, left }
    }

    /// Frames `data` and hands the wire pieces to `out`.
    pub(crate) fn piece(
        &mut self,
        data: Bytes,
        mut out: impl FnMut(Bytes),
    ) -> Result<(), Mismatch> {
        if data.is_empty() {
            // An empty chunk would end a chunked body: nothing to send.
            return Ok(());
        }
        match self.framing {
            Framing::None => Ok(()),
            Framing::UntilClose => {
                out(data);
                Ok(())
            }
            Framing::Length(_) => {
                let take = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.left -= take as u64;
                if take > 0 {
                    out(data.slice(..take));
                }
                if take < data.len() {
                    Err(Mismatch::TooLong)
                } else {
                    Ok(())
                }
            }
            Framing::Chunked => {
                if data.len() < COPY_BELOW {
                    let mut buf = BytesMut::with_capacity(data.len() + 12);
                    buf.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    buf.put_slice(&data);
                    buf.put_slice(chunked::CRLF);
                    out(buf.freeze());
                } else {
                    out(chunked::size_line(data.len()));
                    out(data);
                    out(Bytes::from_static(chunked::CRLF));
                }
                Ok(())
            }
        }
    }

    /// Ends the body: the last chunk (with `trailers`) under chunked framing.
    pub(crate) fn finish(
        &mut self,
        trailers: Option<&Headers>,
        mut out: impl FnMut(Bytes),
    ) -> Result<(), Mismatch> {
        match self.framing {
            Framing::Chunked => {
                out(match trailers {
                    Some(t) if !t.is_empty() => chunked::last_with(t),
                    _ => Bytes::from_static(chunked::LAST),
                });
                Ok(())
            }
            Framing::Length(_) if self.left > 0 => Err(Mismatch::TooShort),
            _ => Ok(()),
        }
    }
}

/// Bytes waiting for the TCP write queue to take them, in order (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    held: VecDeque<Bytes>,
}

impl Outbox {
    /// Queues `bytes` on the connection, or holds them if it is not writeable (or others are
    /// held already: order is kept). Bytes for a connection that is closing are dropped.
    pub(crate) fn push<H: ConnectionHandler>(&mut self, conn: &mut Conn<H>, bytes: Bytes) {
        if !self.held.is_empty() {
            self.held.push_back(bytes);
            return;
        }
        match conn.send(bytes) {
            Ok(_) | Err(SendError::NotConnected(_)) => {}
            Err(SendError::NotWriteable(bytes)) => self.held.push_back(bytes),
        }
    }

    /// Moves held bytes to the connection while it takes them. Returns whether none are left.
    pub(crate) fn flush<H: ConnectionHandler>(&mut self, conn: &mut Conn<H>) -> bool {
        while let Some(bytes) = self.held.pop_front() {
            match conn.send(bytes) {
                Ok(_) => {}
                Err(SendError::NotConnected(_)) => self.held.clear(),
                Err(SendError::NotWriteable(bytes)) => {
                    self.held.push_front(bytes);
                    return false;
                }
            }
        }
        self.held = VecDeque::new();
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Bytes held.
    pub(crate) fn held(&self) -> usize {
        self.held.iter().map(Bytes::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        writer: &mut BodyWriter,
        pieces: &[&'static [u8]],
        trailers: Option<&Headers>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            let _ = writer.piece(Bytes::from_static(p), |b| out.extend_from_slice(&b));
        }
        let _ = writer.finish(trailers, |b| out.extend_from_slice(&b));
        out
    }

    #[test]
    fn chunked_writing_skips_empty_pieces_and_ends_once() {
        let mut w = BodyWriter::new(Framing::Chunked);
        let big: &'static [u8] = &[b'x'; 2000];
        let out = collect(&mut w, &[b"hello", b"", big], None);
        let mut want = b"5\r\nhello\r\n7d0\r\n".to_vec();
        want.extend_from_slice(big);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, want);
        let mut trailers = Headers::new();
        trailers.insert("x-sum", "7");
        let mut w = BodyWriter::new(Framing::Chunked);
        assert_eq!(
            collect(&mut w, &[], Some(&trailers)),
            b"0\r\nx-sum: 7\r\n\r\n"
        );
    }

    #[test]
    fn length_framing_drops_excess_and_reports_shortfall() {
        let mut w = BodyWriter::new(Framing::Length(4));
        let mut out = Vec::new();
        assert_eq!(
            w.piece(Bytes::from_static(b"abcdef"), |b| out.extend_from_slice(&b)),
            Err(Mismatch::TooLong)
        );
        assert_eq!(out, b"abcd");
        let mut w = BodyWriter::new(Framing::Length(4));
        assert_eq!(w.piece(Bytes::from_static(b"ab"), |_| {}), Ok(()));
        assert_eq!(w.finish(None, |_| {}), Err(Mismatch::TooShort));
        let mut w = BodyWriter::new(Framing::None);
        assert!(
            collect(&mut w, &[b"dropped"], None).is_empty(),
            "HEAD: nothing goes out"
        );
    }

    #[test]
    fn reading_by_length_leaves_what_follows() {
        let mut r = BodyReader::new(BodyLength::Known(3), 1024);
        let mut input = Bytes::from_static(b"abcGET");
        assert_eq!(
            r.next(&mut input).unwrap(),
            Some(Piece::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(
            r.next(&mut input).unwrap(),
            Some(Piece::End(Headers::new()))
        );
        assert_eq!(r.next(&mut input).unwrap(), None);
        assert_eq!(input, Bytes::from_static(b"GET"));
    }
}
