//! The clients: spammers that send large payloads as fast as they can, and a well-behaved peer
//! that sends small requests at a steady rate and measures each round trip. Plain blocking
//! sockets on threads: the point is what the server does with them.

use crate::{ClientArgs, KIND_PAYLOAD, KIND_REQUEST, REPLY_LEN, REQUEST_LEN};
use rein_examples::fail;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a blocked write or read waits before looking at the clock again.
const POLL: Duration = Duration::from_millis(100);

pub fn run(args: ClientArgs) {
    if args.spammers == 0 && !args.legit {
        fail("nothing to do: give --spammers N and/or --legit");
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let start = Instant::now();
    let until = args.secs.map(|s| start + Duration::from_secs_f64(s));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let spammers: Vec<_> = (0..args.spammers)
        .map(|_| {
            let (stop, sent) = (stop.clone(), sent.clone());
            let payload = args.payload as usize;
            std::thread::spawn(move || spam(addr, payload, until, &stop, &sent))
        })
        .collect();
    let legit = args.legit.then(|| {
        let stop = stop.clone();
        let rate = args.rate;
        std::thread::spawn(move || legit(addr, rate, until, &stop))
    });
    for spammer in spammers {
        if let Err(e) = spammer.join().unwrap_or_else(|_| Err("panicked".into())) {
            eprintln!("spammer: {e}");
        }
    }
    if args.spammers > 0 {
        let secs = start.elapsed().as_secs_f64();
        let mib = sent.load(Relaxed) as f64 / (1 << 20) as f64;
        println!(
            "ok: {} spammers sent {mib:.0} MiB in {secs:.1} s ({:.1} MiB/s)",
            args.spammers,
            mib / secs
        );
    }
    if let Some(legit) = legit {
        match legit.join() {
            Ok(Ok(report)) => println!("ok: legit {report}"),
            Ok(Err(e)) => fail(format_args!("legit: {e}")),
            Err(_) => fail("legit: panicked"),
        }
    }
}

fn done(until: Option<Instant>, stop: &AtomicBool) -> bool {
    stop.load(Relaxed) || until.is_some_and(|u| Instant::now() >= u)
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(POLL))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Writes all of `buf`, giving up (with `Ok(false)`) once it is time to stop.
fn write_until(
    stream: &mut TcpStream,
    mut buf: &[u8],
    until: Option<Instant>,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<bool, String> {
    while !buf.is_empty() {
        match stream.write(buf) {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => {
                sent.fetch_add(n as u64, Relaxed);
                buf = &buf[n..];
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
        if !buf.is_empty() && done(until, stop) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Sends `payload`-byte payloads back to back until told to stop.
fn spam(
    addr: SocketAddr,
    payload: usize,
    until: Option<Instant>,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<(), String> {
    let mut stream = connect(addr)?;
    let chunk = vec![0xA5u8; payload.clamp(1, 1 << 20)];
    let mut head = vec![KIND_PAYLOAD];
    head.extend_from_slice(&(payload as u32).to_be_bytes());
    let ignore = AtomicU64::new(0);
    while !done(until, stop) {
        if !write_until(&mut stream, &head, until, stop, &ignore)? {
            break;
        }
        let mut left = payload;
        while left > 0 {
            let n = left.min(chunk.len());
            if !write_until(&mut stream, &chunk[..n], until, stop, sent)? {
                return Ok(());
            }
            left -= n;
        }
    }
    Ok(())
}

/// Wall-clock microseconds (since the Unix epoch): both ends of a request read the same
/// clock on one machine, so the server can tell how long a request took to reach it.
pub fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Sends `rate` requests a second and measures each round trip; returns a summary line.
fn legit(
    addr: SocketAddr,
    rate: f64,
    until: Option<Instant>,
    stop: &AtomicBool,
) -> Result<String, String> {
    let mut stream = connect(addr)?;
    let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
    reader
        .set_read_timeout(Some(POLL))
        .map_err(|e| e.to_string())?;
    let rtts: Arc<Mutex<Vec<u64>>> = Arc::default();
    let last_rtt = Arc::new(AtomicU64::new(0));
    let sending = Arc::new(AtomicBool::new(true));
    let answers = {
        let (rtts, last_rtt, sending) = (rtts.clone(), last_rtt.clone(), sending.clone());
        std::thread::spawn(move || {
            let mut reply = [0u8; REPLY_LEN];
            let mut got = 0;
            let mut quiet_since = None;
            loop {
                match reader.read(&mut reply[got..]) {
                    Ok(0) => return,
                    Ok(n) => {
                        got += n;
                        quiet_since = None;
                        if got == REPLY_LEN {
                            got = 0;
                            let sent = u64::from_be_bytes(reply[8..16].try_into().unwrap());
                            let rtt = wall_micros().saturating_sub(sent);
                            last_rtt.store(rtt, Relaxed);
                            rtts.lock().unwrap().push(rtt);
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        // Once sending is over, wait a little for the last answers.
                        if !sending.load(Relaxed) {
                            let since = *quiet_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_secs(2) {
                                return;
                            }
                        }
                    }
                    Err(_) => return,
                }
            }
        })
    };
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let ignore = AtomicU64::new(0);
    let mut seq: u64 = 0;
    let mut ended = String::new();
    let start = Instant::now();
    while !done(until, stop) {
        let next = start + period.mul_f64(seq as f64);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut request = vec![KIND_REQUEST];
        request.extend_from_slice(&(REQUEST_LEN as u32).to_be_bytes());
        request.extend_from_slice(&seq.to_be_bytes());
        request.extend_from_slice(&wall_micros().to_be_bytes());
        request.extend_from_slice(&last_rtt.load(Relaxed).to_be_bytes());
        match write_until(&mut stream, &request, until, stop, &ignore) {
            Ok(true) => seq += 1,
            Ok(false) => break,
            Err(e) => {
                ended = format!(" (then the server went away: {e})");
                break;
            }
        }
    }
    sending.store(false, Relaxed);
    let _ = answers.join();
    let mut rtts = std::mem::take(&mut *rtts.lock().unwrap());
    if rtts.is_empty() {
        return Err(format!("{seq} requests sent, none answered"));
    }
    rtts.sort_unstable();
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    Ok(format!(
        "{seq} requests, {} answered: round trip p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms{ended}",
        rtts.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    ))
}
