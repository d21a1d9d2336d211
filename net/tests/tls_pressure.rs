//! TLS under a peer that never reads: the connection throttles on plaintext queued, reads no
//! records while muted, and the process's memory stays bounded. Alone in its test binary, so
//! the RSS it reads is its own.

use rein_net::*;
use std::sync::mpsc::channel;
use std::time::Duration;

mod tls_common;
use tls_common::*;

#[test]
fn a_peer_that_never_reads_throttles_the_tls_connection_and_memory_stays_bounded() {
    // The server pumps 256 MiB at a TLS client that is muted: the client must read no
    // records (no plaintext piles up on its side), the kernel buffers fill, the server's write
    // queue reaches its high watermark and stays there (plaintext, counted in the units sent),
    // and the process does not grow by anything like what was offered.
    let (rt, auth, reactor) = setup();
    let pki = pki();
    let total = 256 << 20;
    let (tx, rx) = channel();
    let server_tx = tx.clone();
    let (listener, addr, _server) = listen(&reactor, &auth, pki.server(), move || {
        Pumper::new(server_tx.clone(), total, 64 * 1024)
    });
    let before = rss_bytes();
    let deaf = Deaf { events: tx, got: 0 };
    let client = connect(
        &reactor,
        &auth,
        "localhost",
        addr.port(),
        pki.client(),
        deaf,
    );
    let mut connected = 0;
    let mut throttled = Vec::new();
    // Both ends connected, then the server throttles; give it time to prove it stays so.
    expect(&rx, "throttled", |ev| match ev {
        Ev::Connected(_) => {
            connected += 1;
            None
        }
        Ev::Throttled(queued) => {
            throttled.push(queued);
            Some(())
        }
        Ev::Got(_) => panic!("a muted connection delivered data"),
        _ => None,
    });
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_bytes().saturating_sub(before);
    while let Ok(ev) = rx.try_recv() {
        match ev {
            Ev::Got(_) => panic!("a muted connection delivered data"),
            Ev::Throttled(q) => throttled.push(q),
            Ev::Done(..) => panic!("everything went out to a peer that reads nothing"),
            _ => {}
        }
    }
    let high = ConnectionOptions::default().high_watermark;
    assert!(
        throttled.iter().all(|&q| q >= high && q < high + 64 * 1024),
        "throttled at {throttled:?} plaintext bytes queued"
    );
    assert!(
        grown < 64 << 20,
        "RSS grew by {} MiB while 256 MiB were offered to a peer that does not read",
        grown >> 20
    );
    // Unmute: everything arrives, in order.
    client.send(()).unwrap();
    let mut got = 0;
    while got < total {
        got = expect(&rx, "the stream", |ev| match ev {
            Ev::Got(n) => Some(String::from_utf8(n).unwrap().parse::<usize>().unwrap()),
            _ => None,
        });
    }
    assert_eq!(got, total);
    client.close();
    eprintln!("RSS growth while throttled: {grown} B; throttled at {throttled:?}");
    drop(client);
    assert!(listener.close());
    finish(rt, &reactor);
}
