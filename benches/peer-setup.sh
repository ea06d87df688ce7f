#!/usr/bin/env bash
# The setup command of benches/peer.sh: through the admin API, registers peerbench's token and
# makes its certificate the default one (wrk sends no usable SNI).
set -euo pipefail
token=$(tr -d '\n' < "$DCV_BENCH_DIR/state/admin.token")
admin="http://$DCV_BENCH_ADMIN"
auth="Authorization: Bearer $token"
jq -n --arg ka "$PEERBENCH_KEY_AUTH" '{key_authorization: $ka, ttl_seconds: 2592000}' |
  curl -fsS -X PUT -H "$auth" --data-binary @- "$admin/v1/acme/tokens/$PEERBENCH_TOKEN" >/dev/null
jq -n --rawfile c "$PEERBENCH_CERT" --rawfile k "$PEERBENCH_KEY" '{certificate: $c, private_key: $k}' |
  curl -fsS -X PUT -H "$auth" --data-binary @- "$admin/v1/certificates/default" >/dev/null
