//! A seeded random source for the randomised parser tests: the seed is printed, and
//! `REIN_HTTP_SEED=<seed>` replays a run.

/// splitmix64: small, fast, and good enough to pick test inputs.
pub(crate) struct Rng {
    state: u64,
    seed: u64,
}

impl Rng {
    /// Seeded from `REIN_HTTP_SEED` if set, else from the clock; prints the seed for `what`.
    pub(crate) fn from_env(what: &str) -> Rng {
        let seed = match std::env::var("REIN_HTTP_SEED") {
            Ok(s) => s.trim().parse().expect("REIN_HTTP_SEED must be a u64"),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        };
        println!("{what}: seed {seed} (replay with REIN_HTTP_SEED={seed})");
        Rng { state: seed, seed }
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// One to three random edits: flip, insert (often a byte that matters to the grammar),
    /// delete, duplicate a run, or cut the tail.
    pub(crate) fn mutate(&mut self, input: &mut Vec<u8>) {
        const INTERESTING: &[u8] = b"\r\n\r\n;: \t0fF9-+,xX\x00\x7f\xff";
        for _ in 0..1 + self.below(3) {
            let at = self.below(input.len() as u64 + 1) as usize;
            match self.below(5) {
                0 if at < input.len() => input[at] ^= 1 << self.below(8),
                1 => {
                    let b = if self.below(2) == 0 {
                        INTERESTING[self.below(INTERESTING.len() as u64) as usize]
                    } else {
                        self.next() as u8
                    };
                    input.insert(at, b);
                }
                2 if at < input.len() => {
                    input.remove(at);
                }
                3 if at < input.len() => {
                    let end = (at + 1 + self.below(8) as usize).min(input.len());
                    let run = input[at..end].to_vec();
                    input.splice(at..at, run);
                }
                _ => input.truncate(at),
            }
        }
    }
}
