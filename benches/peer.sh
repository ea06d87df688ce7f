#!/usr/bin/env bash
# peer.sh [peerbench run options…]: build the release binary and measure dcv-proxy side by side
# with nginx, HAProxy and Caddy on the same job with the shared peerbench script.
#
#   PEERBENCH=path/to/peerbench.py   (default: ../shared/bench/peerbench.py, beside the checkout)
#
# Example: benches/peer.sh --rounds 3 --json /tmp/peer.json
#          benches/peer.sh --extra --rounds 3     (HTTP/2 and 1 MiB body scenarios, benches/extra.py)
# The target runs with one worker thread (server.threads = 1); peerbench pins it to CPU 0.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
peerbench=${PEERBENCH:-$root/../shared/bench/peerbench.py}
[ -f "$peerbench" ] || { echo "peer.sh: peerbench not found at $peerbench; set PEERBENCH" >&2; exit 64; }
scripts/install-deps bench
cargo build --release --locked
export DCV_BENCH_DIR=${DCV_BENCH_DIR:-$(mktemp -d)}
http=127.0.0.1:18090 https=127.0.0.1:18453 admin=127.0.0.1:18190
export DCV_BENCH_HTTP=$http DCV_BENCH_HTTPS=$https DCV_BENCH_ADMIN=$admin DCV_BENCH_BIN=$root/target/release/dcv-proxy
runner=("$peerbench" run)
if [ "${1:-}" = "--extra" ]; then
  shift
  runner=("$root/benches/extra.py")
  export PEERBENCH=$peerbench
fi
exec python3 "${runner[@]}" \
  --target-cmd "$root/benches/peer-target.sh" \
  --target-http "$http" --target-https "$https" \
  --setup-cmd "$root/benches/peer-setup.sh" \
  "$@"
