#!/usr/bin/env bash
# The whole test suite: the README's test command. `.ci/run` installs what it
# needs first (Rust toolchain, Node.js + npm, Debian's chromium, redis-server,
# python3-venv) and then runs this, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "Rust: unit, property, end-to-end, cluster (real redis-server) and binary tests; benches and examples built"
cargo test --workspace --all-targets

step "ScyllaDB backend on a real CQL node (Apache Cassandra 4.0): store conformance and cluster suites"
# The node lives beside the repository (../shared/cql-node) or at $CQL_NODE_DIR;
# it needs a Java runtime. A fresh data directory per run, stopped at the end,
# on failure too.
cql_dir=""
for d in "${CQL_NODE_DIR:-}" ../shared/cql-node /work/shared/cql-node; do
  if [ -n "$d" ] && [ -x "$d/start.sh" ]; then cql_dir=$(cd "$d" && pwd); break; fi
done
if [ -z "$cql_dir" ] || ! command -v java >/dev/null; then
  echo "SKIPPED: no CQL node (set CQL_NODE_DIR) or no Java runtime; the ScyllaDB suites did not run"
else
  # A free CQL port whose internode port (+10000) is free too.
  cql_port=$(python3 -c '
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randint(20000, 50000)
    if free(p) and free(p + 10000):
        print(p); break
')
  cql_data=$(mktemp -d)
  trap '"$cql_dir/stop.sh" "$cql_data" >/dev/null 2>&1 || true; rm -rf "$cql_data"' EXIT
  "$cql_dir/start.sh" "$cql_port" "$cql_data"
  CHAT_SCYLLA_NODES="127.0.0.1:$cql_port" cargo test -p chat-server --test store_conformance --test blob_conformance \
    --test cluster --test cluster_fanout --test cluster_events
  # chatd migrate + serve on the node, chatd and the node restarted (the node is up again after it).
  CHAT_SCYLLA_NODES="127.0.0.1:$cql_port" CQL_NODE_DIR="$cql_dir" CQL_NODE_DATA="$cql_data" \
    cargo test -p chat-server --test binary migrate_then_serve_on_the_cql_node
  # The load generator's in-process cluster on the node, a node lost mid-run:
  # nothing acked lost, duplicated or reordered (debug build, a small load).
  cargo build -p loadgen --bin loadgen
  target/debug/loadgen run cluster --store scylla --scylla-nodes "127.0.0.1:$cql_port" --users 200 --rate 100 \
    --duration 5s --check-correctness-only --disrupt node-loss --plot target/loadgen-cluster-scylla.svg
  "$cql_dir/stop.sh" "$cql_data" >/dev/null
  rm -rf "$cql_data"
  trap - EXIT
fi

step "deploy/: compose, Kubernetes, systemd and config files validate"
CHATD_BIN=target/debug/chatd scripts/check-deploy.sh

step "TypeScript SDK and web app: type check, generated code and built app fresh, unit tests"
(cd client-sdk/web && npm ci --no-audit --no-fund --loglevel=error && npm run check && npm test)

step "Browsers: headless Chromium against chatd serve (WebTransport and WebSocket)"
# The Rust SDK user of the browser tests (cargo test builds examples only under hashed names).
cargo build -p chat-client --features mls --example jsonl
(cd client-sdk/web && CHATD_BIN="$PWD/../../target/debug/chatd" npm run e2e)

step "Load generator smoke: correctness only (latency on a shared CI machine proves nothing)"
# The release chatd the loadgen starts; spec at 5,000 msg/s (well inside what a
# 2-core machine holds with the load generator beside it) and reconnect, 5 s each;
# crash (chatd killed with SIGKILL at 40% and restarted on its data after 1 s:
# nothing acked lost, every client caught up, every send made while it was
# down acked) for QUIC and WebTransport clients, 6 s each; attachments (4 users
# uploading 10 MiB files in a loop beside the chat: no upload refused).
cargo build --release -p chat-server -p loadgen --bin chatd --bin loadgen
target/release/loadgen run spec --duration 5s --rate 5000 --check-correctness-only --plot target/loadgen-spec.svg
target/release/loadgen run reconnect --duration 5s --check-correctness-only --plot target/loadgen-reconnect.svg
target/release/loadgen run spec --e2e --duration 5s --rate 1000 --check-correctness-only --plot target/loadgen-spec-e2e.svg
target/release/loadgen run crash --duration 6s --check-correctness-only --plot target/loadgen-crash.svg
target/release/loadgen run crash --duration 6s --check-correctness-only --transport webtransport \
  --plot target/loadgen-crash-webtransport.svg
target/release/loadgen run attachments --duration 5s --rate 500 --users 100 --conversations 40 --uploaders 4 --check-correctness-only \
  --plot target/loadgen-attachments.svg
# Three in-process nodes and a real redis-server: a node lost for good, then Redis restarted empty.
target/release/loadgen run cluster --rate 500 --duration 8s --check-correctness-only --disrupt node-loss \
  --plot target/loadgen-cluster-node-loss.svg
target/release/loadgen run cluster --rate 500 --duration 8s --check-correctness-only --disrupt redis-restart \
  --plot target/loadgen-cluster-redis-restart.svg

step "all tests passed"
