#!/usr/bin/env bash
# deploy/bench/ingress-load.sh — a short, bounded load test of the ingress.
#
# Builds the release ingress, starts it on loopback with a one-workspace
# registry and fresh topics on the local Kafka, fires signed 2 KB Kapso
# webhooks at it with wrk for DURATION, prints wrk's figures (requests/s,
# latency percentiles) and the ingress's own status counts, then stops it.
#
# Needs: the local Kafka (`deploy/local/services up`), wrk (apt-get install
# wrk), python3. Traffic goes to 127.0.0.1 only and stops by itself.
#
# Environment (defaults in brackets):
#   DURATION [10s]  THREADS [2]  CONNECTIONS [32]  BODY_BYTES [2048]
#   PORT [18080]  ADMIN_PORT [19090]  KAFKA_BROKERS [127.0.0.1:9092]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
BODY_BYTES=${BODY_BYTES:-2048}
PORT=${PORT:-18080}
ADMIN_PORT=${ADMIN_PORT:-19090}
KAFKA_BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
SECRET=bench-kapso-secret
PHONE=155500000000001

command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
SERVICES_STATUS=$("$ROOT/deploy/local/services" status 2>/dev/null || true)
grep -q "^kafka: running, ready" <<<"$SERVICES_STATUS" ||
  { echo "Kafka is not running: deploy/local/services up" >&2; exit 1; }

WORK=$(mktemp -d /tmp/inboxflow-bench.XXXXXX)
INGRESS_PID=
cleanup() {
  if [[ -n $INGRESS_PID ]] && kill -0 "$INGRESS_PID" 2>/dev/null; then
    kill -TERM "$INGRESS_PID" && wait "$INGRESS_PID" || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

SUFFIX=$(date +%s)
ROUTED=bench_routed_$SUFFIX UNROUTED=bench_unrouted_$SUFFIX DLQ=bench_dlq_$SUFFIX
"$ROOT/deploy/local/services" topic-create "$ROUTED" 3 >/dev/null
"$ROOT/deploy/local/services" topic-create "$UNROUTED" 1 >/dev/null
"$ROOT/deploy/local/services" topic-create "$DLQ" 1 >/dev/null

cat >"$WORK/registry.toml" <<TOML
[[workspace]]
id = "ws_bench"
phone_number_ids = ["$PHONE"]
TOML
cat >"$WORK/ingress.toml" <<TOML
listen_addr = "127.0.0.1:$PORT"
admin_addr = "127.0.0.1:$ADMIN_PORT"
registry_path = "$WORK/registry.toml"
kapso_secrets = ["$SECRET"]
meta_app_secrets = ["bench-meta-secret"]
meta_verify_token = "bench-token"
# One load generator is one client: let it use every connection slot.
max_connections_per_client = 1024
[kafka]
brokers = "$KAFKA_BROKERS"
webhook_topic = "$ROUTED"
unrouted_topic = "$UNROUTED"
dead_letter_topic = "$DLQ"
[telemetry]
log_format = "json"
log_level = "warn"
TOML

# A Kapso message body of exactly BODY_BYTES bytes, its signature, and the wrk script.
python3 - "$WORK" "$SECRET" "$PHONE" "$BODY_BYTES" <<'PY'
import hashlib, hmac, json, sys
work, secret, phone, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def body(pad):
    return json.dumps({
        "message": {"id": "wamid.bench", "timestamp": "1730092800", "type": "text",
                    "from": "15551234567", "text": {"body": "x" * pad},
                    "kapso": {"direction": "inbound", "status": "received"}},
        "conversation": {"id": "conv_bench", "phone_number": "+15551234567",
                         "phone_number_id": phone},
        "is_new_conversation": False, "phone_number_id": phone,
    }, separators=(",", ":")).encode()
raw = body(size - len(body(0)))
assert len(raw) == size, len(raw)
sig = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
lua = f"""wrk.method = "POST"
wrk.body = {json.dumps(raw.decode())}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Webhook-Signature"] = "{sig}"
wrk.headers["X-Webhook-Event"] = "whatsapp.message.received"
wrk.headers["X-Idempotency-Key"] = "bench-delivery"
"""
open(f"{work}/kapso.lua", "w").write(lua)
PY

echo "building the release ingress ..."
cargo build --release -q -p inboxflow-ingress --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ingress

"$BIN" --config "$WORK/ingress.toml" >"$WORK/ingress.log" 2>&1 &
INGRESS_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$INGRESS_PID" 2>/dev/null || { cat "$WORK/ingress.log"; exit 1; }
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null ||
  { echo "ingress not ready; log:" >&2; cat "$WORK/ingress.log" >&2; exit 1; }

echo "wrk: $THREADS threads, $CONNECTIONS connections, $DURATION, ${BODY_BYTES}-byte signed Kapso bodies"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/kapso.lua" \
  "http://127.0.0.1:$PORT/webhooks/kapso"

echo "ingress counts:"
curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" |
  grep -E '^inboxflow_ingress_(requests_total|records_written_total)' || true
