//! The chunked transfer coding (RFC 9112, section 7.1): a streaming decoder and the encoder's
//! framing.
//!
//! Why a byte-at-a-time state machine: a chunked body arrives cut at arbitrary points (a size
//! line split over two reads, a CRLF split from its chunk), and the decoder must give the same
//! answer however it is cut, while keeping no more than a few bytes of state. Every state
//! below is resumable after any byte; data is handed out as views of the input, not copied,
//! and only the trailer section (bounded by the head limit) is ever buffered.
//!
//! Strictness, for smuggling resistance: line ends must be CRLF (a bare LF is refused), a
//! size must have at least one hex digit and fit a `u64`, extensions are bounded, and the
//! trailer section is parsed by `httparse` like a head.

use super::head::{Headers, Refusal, MAX_HEADERS};
use bytes::{Bytes, BytesMut};

/// The most bytes of chunk extensions accepted on one size line.
pub(crate) const MAX_EXTENSION: usize = 4096;

/// One result of decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The last chunk and the trailer section: the body is complete.
    End(Headers),
}

#[derive(Debug)]
enum State {
    /// Before the first hex digit of a size.
    SizeStart,
    /// Inside the hex digits.
    Size(u64),
    /// After the digits: optional whitespace, then `;` or CR.
    AfterSize(u64),
    /// Inside extensions (`len` bytes so far), up to CR.
    Extension(u64, usize),
    /// Saw the CR ending a size line; LF must follow.
    SizeLf(u64),
    /// Chunk data, this many bytes left.
    Data(u64),
    /// After chunk data: CR, then LF.
    DataCr,
    DataLf,
    /// The trailer section after the last chunk, collected until an empty line.
    Trailers(BytesMut),
    Done,
}

/// Decodes a chunked body arriving in pieces.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    max_trailers: usize,
}

fn bad(why: &'static str) -> Refusal {
    Refusal::new(400, why)
}

impl ChunkedDecoder {
    /// A decoder whose trailer section may hold up to `max_trailers` bytes.
    pub(crate) fn new(max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            max_trailers,
        }
    }

    /// Whether the last chunk and trailers were decoded.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The next piece from the front of `input` (consumed as decoded), or `None` when `input`
    /// is used up without completing one. After [`Piece::End`] nothing more is consumed: what
    /// is left of `input` follows the body.
    pub(crate) fn next(&mut self, input: &mut Bytes) -> Result<Option<Piece>, Refusal> {
        loop {
            if let State::Data(left) = self.state {
                if input.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                let data = input.split_to(take);
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                return Ok(Some(Piece::Data(data)));
            }
            if let State::Done = self.state {
                return Ok(None);
            }
            let Some(&byte) = input.first() else {
                return Ok(None);
            };
            let _ = input.split_to(1);
            if let Some(end) = self.step(byte)? {
                return Ok(Some(end));
            }
        }
    }

    /// One byte of framing (any state but `Data` and `Done`).
    fn step(&mut self, b: u8) -> Result<Option<Piece>, Refusal> {
        self.state = match std::mem::replace(&mut self.state, State::Done) {
            State::SizeStart => match hex(b) {
                Some(d) => State::Size(u64::from(d)),
                None => return Err(bad("malformed chunk size")),
            },
            State::Size(n) => match hex(b) {
                Some(d) => {
                    if n > u64::MAX >> 4 {
                        return Err(bad("chunk size overflows"));
                    }
                    State::Size(n << 4 | u64::from(d))
                }
                None => return self.after_size(n, b),
            },
            State::AfterSize(n) => return self.after_size(n, b),
            State::Extension(n, len) => match b {
                b'\r' => State::SizeLf(n),
                b'\t' | b' '..=b'~' | 0x80..=0xff if len < MAX_EXTENSION => {
                    State::Extension(n, len + 1)
                }
                _ if len >= MAX_EXTENSION => return Err(bad("chunk extension too long")),
                _ => return Err(bad("malformed chunk extension")),
            },
            State::SizeLf(n) => match b {
                b'\n' if n == 0 => State::Trailers(BytesMut::new()),
                b'\n' => State::Data(n),
                _ => return Err(bad("chunk size line not ended by CRLF")),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(bad("chunk data not followed by CRLF")),
            },
            State::DataLf => match b {
                b'\n' => State::SizeStart,
                _ => return Err(bad("chunk data not followed by CRLF")),
            },
            State::Trailers(mut buf) => {
                if buf.len() >= self.max_trailers {
                    return Err(Refusal::new(431, "trailer section too large"));
                }
                buf.extend_from_slice(&[b]);
                if &buf[..] == b"\r\n" {
                    self.state = State::Done;
                    return Ok(Some(Piece::End(Headers::new())));
                }
                if buf.ends_with(b"\r\n\r\n") {
                    self.state = State::Done;
                    return parse_trailers(buf.freeze()).map(|h| Some(Piece::End(h)));
                }
                if b == b'\n' && (buf.len() == 1 || buf[buf.len() - 2] != b'\r') {
                    return Err(bad("trailer line not ended by CRLF"));
                }
                State::Trailers(buf)
            }
            State::Data(_) | State::Done => unreachable!("handled by `next`"),
        };
        Ok(None)
    }

    fn after_size(&mut self, n: u64, b: u8) -> Result<Option<Piece>, Refusal> {
        self.state = match b {
            b' ' | b'\t' => State::AfterSize(n),
            b';' => State::Extension(n, 0),
            b'\r' => State::SizeLf(n),
            _ => return Err(bad("malformed chunk size")),
        };
        Ok(None)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a complete trailer section (ending in an empty line) into fields.
fn parse_trailers(section: Bytes) -> Result<Headers, Refusal> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(&section, &mut fields) {
        Ok(httparse::Status::Complete((len, parsed))) if len == section.len() => {
            let mut headers = Headers::new();
            for field in parsed {
                headers.insert(
                    section.slice_ref(field.name.as_bytes()),
                    section.slice_ref(field.value),
                );
            }
            Ok(headers)
        }
        Err(httparse::Error::TooManyHeaders) => Err(Refusal::new(431, "too many trailer fields")),
        _ => Err(bad("malformed trailer section")),
    }
}

/// The size line that goes before a chunk of `len` bytes (`len > 0`).
pub(crate) fn size_line(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// What ends a chunk's data.
pub(crate) const CRLF: &[u8] = b"\r\n";

/// The last chunk with no trailers.
pub(crate) const LAST: &[u8] = b"0\r\n\r\n";

/// The last chunk followed by `trailers`.
pub(crate) fn last_with(trailers: &Headers) -> Bytes {
    let mut out = BytesMut::from(&b"0\r\n"[..]);
    trailers.write_to(&mut out);
    out.extend_from_slice(CRLF);
    out.freeze()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::http::testing::Rng;

    /// Decodes `input` fed in `cuts` pieces; returns the body and trailers, or the refusal.
    pub(crate) fn decode_in_pieces(
        input: &[u8],
        cuts: &[usize],
    ) -> Result<Option<(Vec<u8>, Headers, usize)>, Refusal> {
        let mut decoder = ChunkedDecoder::new(64 * 1024);
        let mut body = Vec::new();
        let mut from = 0;
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
        bounds.sort_unstable();
        bounds.push(input.len());
        for to in bounds {
            let mut piece = Bytes::copy_from_slice(&input[from..to]);
            let len = piece.len();
            while let Some(p) = decoder.next(&mut piece)? {
                match p {
                    Piece::Data(d) => {
                        assert!(!d.is_empty(), "data pieces are never empty");
                        body.extend_from_slice(&d);
                    }
                    Piece::End(trailers) => {
                        let used = from + len - piece.len();
                        return Ok(Some((body, trailers, used)));
                    }
                }
            }
            from = to;
        }
        Ok(None)
    }

    /// A second, deliberately different decoder for the randomised comparison: whole input at
    /// once, by splitting lines. Returns the body and the bytes used, `Ok(None)` if incomplete.
    pub(crate) fn oracle(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ()> {
        let mut at = 0;
        let mut body = Vec::new();
        let line = |at: usize| -> Result<Option<(usize, usize)>, ()> {
            // (end of content, start of next line); a bare LF is an error.
            match input[at..].iter().position(|&b| b == b'\n') {
                None => Ok(None),
                Some(i) if i == 0 || input[at + i - 1] != b'\r' => Err(()),
                Some(i) => Ok(Some((at + i - 1, at + i + 1))),
            }
        };
        loop {
            // A line that cannot end well is an error even before its LF arrives.
            let Some((end, next)) = line(at)? else {
                return oracle_partial_line(&input[at..]).map(|()| None);
            };
            let text = &input[at..end];
            let digits = text.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            let rest = &text[digits..];
            let ws = rest
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
            let ext = &rest[ws..];
            let ext_ok = ext.is_empty()
                || (ext[0] == b';'
                    && ext.len() - 1 <= MAX_EXTENSION
                    && ext[1..]
                        .iter()
                        .all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f)));
            if digits == 0 || !ext_ok {
                return Err(());
            }
            let significant = text[..digits].iter().skip_while(|&&b| b == b'0').count();
            if significant > 16 {
                return Err(());
            }
            let size = u64::from_str_radix(std::str::from_utf8(&text[..digits]).unwrap(), 16)
                .map_err(|_| ())?;
            at = next;
            if size == 0 {
                // Trailers: lines until an empty one.
                let start = at;
                loop {
                    let Some((end, next)) = line(at)? else {
                        return oracle_partial_line(&input[at..]).map(|()| None);
                    };
                    if end == at {
                        let section = &input[start..next];
                        if section.len() > 64 * 1024 {
                            return Err(());
                        }
                        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                        if section.len() > 2 {
                            match httparse::parse_headers(section, &mut fields) {
                                Ok(httparse::Status::Complete((n, _))) if n == section.len() => {}
                                _ => return Err(()),
                            }
                        }
                        return Ok(Some((body, next)));
                    }
                    at = next;
                }
            }
            let size = usize::try_from(size).map_err(|_| ())?;
            if input.len() - at < size {
                return Ok(None);
            }
            body.extend_from_slice(&input[at..at + size]);
            at += size;
            match &input[at..] {
                [b'\r', b'\n', ..] => at += 2,
                [] | [b'\r'] => return Ok(None),
                _ => return Err(()),
            }
        }
    }

    /// Whether an unfinished line could still become valid (only a bare LF is certain to be an
    /// error before the line ends; the streaming decoder may refuse earlier, which the
    /// comparison allows).
    fn oracle_partial_line(_rest: &[u8]) -> Result<(), ()> {
        Ok(())
    }

    /// Encodes `body` in chunks of random sizes, with random extensions and trailers.
    pub(crate) fn encode(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let n =
                (1 + rng.below(body.len() as u64 - at as u64 + 1) as usize).min(body.len() - at);
            match rng.below(4) {
                0 => out.extend_from_slice(format!("{n:X}").as_bytes()),
                1 => out.extend_from_slice(format!("00{n:x}").as_bytes()),
                _ => out.extend_from_slice(format!("{n:x}").as_bytes()),
            }
            if rng.below(5) == 0 {
                out.extend_from_slice(b";name=\"value\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body[at..at + n]);
            out.extend_from_slice(b"\r\n");
            at += n;
        }
        out.extend_from_slice(b"0\r\n");
        if rng.below(3) == 0 {
            out.extend_from_slice(b"X-Checksum: abc\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    #[test]
    fn decodes_across_every_cut() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for cut in 0..input.len() {
            let (body, trailers, used) = decode_in_pieces(input, &[cut]).unwrap().unwrap();
            assert_eq!(body, b"hello world", "cut at {cut}");
            assert_eq!(trailers.get_str("x-t"), Some("1"));
            assert_eq!(&input[used..], b"NEXT");
        }
    }

    #[test]
    fn refuses_what_it_must() {
        let refused = |input: &[u8]| decode_in_pieces(input, &[]).err().map(|r| r.status);
        assert_eq!(refused(b"x\r\n"), Some(400));
        assert_eq!(refused(b"\r\n"), Some(400), "no digits");
        assert_eq!(refused(b"5\nhello\r\n"), Some(400), "bare LF");
        assert_eq!(
            refused(b"5\r\nhelloX\r\n"),
            Some(400),
            "data longer than announced"
        );
        assert_eq!(refused(b"10000000000000000\r\n"), Some(400), "overflow");
        assert_eq!(refused(b"ffffffffffffffff0\r\n"), Some(400), "overflow");
        assert_eq!(refused(b"-1\r\n"), Some(400));
        assert_eq!(refused(b"0x5\r\n"), Some(400));
        assert_eq!(refused(b"0\r\nbad trailer\r\n\r\n"), Some(400));
        let long_ext = [&b"1;"[..], &vec![b'a'; MAX_EXTENSION + 1], b"\r\n"].concat();
        assert_eq!(refused(&long_ext), Some(400));
        // The largest size that fits is framing, not an error (the body limit is elsewhere).
        assert!(decode_in_pieces(b"ffffffffffffffff\r\nab", &[])
            .unwrap()
            .is_none());
        assert!(
            decode_in_pieces(b"0000000000000000000005\r\nhello\r\n0\r\n\r\n", &[])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn randomised_against_an_oracle() {
        let mut rng = Rng::from_env("chunked decoder");
        for case in 0..4000 {
            let len = rng.below(300) as usize;
            let body = rng.bytes(len);
            let mut input = encode(&mut rng, &body);
            let mutated = rng.below(2) == 0;
            if mutated {
                rng.mutate(&mut input);
            }
            let cuts: Vec<usize> = (0..rng.below(6))
                .map(|_| rng.below(input.len() as u64 + 1) as usize)
                .collect();
            let got = decode_in_pieces(&input, &cuts);
            let whole = decode_in_pieces(&input, &[]);
            let seed = rng.seed();
            // However the input is cut, the answer is the same.
            assert_eq!(
                got.as_ref()
                    .map(|o| o.as_ref().map(|(b, _, u)| (b.clone(), *u)))
                    .map_err(|r| r.status),
                whole
                    .as_ref()
                    .map(|o| o.as_ref().map(|(b, _, u)| (b.clone(), *u)))
                    .map_err(|r| r.status),
                "case {case} (seed {seed}): cuts {cuts:?} changed the answer for {:?}",
                String::from_utf8_lossy(&input)
            );
            if !mutated {
                let (decoded, _, used) = got.unwrap().expect("complete");
                assert_eq!(decoded, body, "case {case} (seed {seed})");
                assert_eq!(used, input.len());
                continue;
            }
            match (whole, oracle(&input)) {
                (Ok(Some((b, _, u))), Ok(Some((ob, ou)))) => {
                    assert_eq!((b, u), (ob, ou), "case {case} (seed {seed})");
                }
                (Err(r), Err(())) => assert!(r.status == 400 || r.status == 431),
                (Ok(None), Ok(None)) => {}
                // The streaming decoder may refuse a line before it ends; the oracle waits.
                (Err(r), Ok(None)) => assert_eq!(r.status, 400),
                (ours, theirs) => panic!(
                    "case {case} (seed {seed}): decoder {:?} but oracle {:?} for {:?}",
                    ours.map(|o| o.map(|(b, _, u)| (b.len(), u))),
                    theirs.map(|o| o.map(|(b, u)| (b.len(), u))),
                    String::from_utf8_lossy(&input)
                ),
            }
        }
    }
}
