#!/usr/bin/env bash
# The peer-abuse benchmark of docs/benchmarks.md ("Peer abuse: ingress disciplines"):
# a no-spammer baseline for the well-behaved peer, then one run per ingress discipline with
# 4 spammers x 16 MiB payloads and one well-behaved peer at 100 requests/s. Each run lasts
# SECS seconds (default 30); the server samples its RSS every 250 ms into OUT/<qdisc>.csv, and
# the plot of the four goes to docs/abuse-rss.svg.
#
#   benches/abuse.sh [SECS] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
out=${2:-target/abuse-bench}
cap=1024
mkdir -p "$out"
cargo build --release -q -p rein-examples --bin abuse
abuse=${CARGO_TARGET_DIR:-target}/release/abuse
port=7780
dash=7781

# run NAME QDISC SPAMMERS: one server, the legit peer, and SPAMMERS spammers, for $secs.
run() {
  local name=$1 qdisc=$2 spammers=$3
  "$abuse" server --port $port --dashboard-port $dash --qdisc "$qdisc" --max-rss $cap \
    --secs $((secs + 2)) --rss-log "$out/$name.csv" >"$out/$name.server" 2>&1 &
  local server=$!
  sleep 1
  "$abuse" client --port $port --legit --rate 100 --secs "$secs" >"$out/$name.legit" 2>&1 &
  local legit=$!
  if [ "$spammers" -gt 0 ]; then
    "$abuse" client --port $port --spammers "$spammers" --payload 16MiB --secs "$secs" \
      >"$out/$name.spam" 2>&1 || true
  fi
  wait $legit || true
  local status=0
  wait $server || status=$?
  echo "== $name (server exit $status)"
  grep -h -e '^ok' -e 'max-rss' -e 'error' "$out/$name.server" "$out/$name.legit" \
    "$out/$name".spam 2>/dev/null || true
  sleep 1
}

run baseline fair 0
for qdisc in unbounded bounded fair rate; do
  run "$qdisc" "$qdisc" 4
done
"$abuse" plot --out docs/abuse-rss.svg --cap $cap \
  --title "Server RSS: 4 spammers x 16 MiB payloads + one peer at 100 req/s (${secs} s runs)" \
  unbounded="$out/unbounded.csv" bounded="$out/bounded.csv" fair="$out/fair.csv" \
  rate="$out/rate.csv"
# Per run: the peak sampled RSS, and the medians (over the samples from 5 s on) of the rolling
# 2-second p99s the server saw: round trip as the peer reported it, client to consumer, and
# waiting in the ingress.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
for name in baseline unbounded bounded fair rate; do
  f="$out/$name.csv"
  peak=$(awk -F, 'NR > 1 && $2 > max { max = $2 } END { print max }' "$f")
  rtt=$(awk -F, 'NR > 1 && $1 >= 5 && $6 > 0 { print $6 }' "$f" | median)
  inbound=$(awk -F, 'NR > 1 && $1 >= 5 && $7 > 0 { print $7 }' "$f" | median)
  wait=$(awk -F, 'NR > 1 && $1 >= 5 && $8 > 0 { print $8 }' "$f" | median)
  echo "$name: peak sampled RSS $peak MiB; median 2-s p99s (ms): round trip $rtt, client to consumer $inbound, in the ingress $wait"
done
