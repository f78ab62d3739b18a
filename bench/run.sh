#!/usr/bin/env bash
# userauth benchmark: builds the release binary, serves a temp database on loopback, drives it with
# oha and prints one key=value summary line plus a table. Bounded: every load runs BENCH_SECONDS
# (default 10) and everything started here is stopped on exit.
#
#   bench/run.sh                 # everything, SQLite and (if installed) PostgreSQL
#   BENCH_SECONDS=5 bench/run.sh # shorter
#   BENCH_SKIP_LIST=1 bench/run.sh  # skip the 1,000,000-user listing
#   BENCH_SKIP_FLOOD=1 BENCH_SKIP_OPS=1 bench/run.sh  # skip the flood/slow-client and metrics on/off phases
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_SECONDS:-10}
CONC=${BENCH_CONNECTIONS:-50}
COST=${BENCH_BCRYPT_COST:-12}
WORK=$(mktemp -d /tmp/userauth-bench.XXXXXX)
chmod 755 "$WORK" # the PostgreSQL server runs as its own user and must reach its directory
PIDS=()
PG_DATA=""

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$PG_DATA" ]; then runas_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# Everything the binary writes beside it (the server key file) stays with this run.
cd "$WORK"

log() { echo "[bench] $*" >&2; }

log "building the release binary"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin userauth --example bcrypt_cost --example flood
BIN="$ROOT/target/release/userauth"
HASHBIN="$ROOT/target/release/examples/bcrypt_cost"
FLOODBIN="$ROOT/target/release/examples/flood"
if ! command -v oha >/dev/null; then
  log "installing oha (cargo install oha --locked, a few minutes)"
  cargo install oha --locked --quiet
fi
export PATH="$HOME/.cargo/bin:$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server URL -> sets PORT and SERVER_PID. The throughput phases measure raw capacity from one
# address, so the per-client limit is off unless RATE is set (the flood phase keeps the default).
start_server() {
  PORT=$(free_port)
  ROCKET_CLIENT_RATE_PER_MINUTE=${RATE:-0} ROCKET_BCRYPT_COST=$COST DATABASE_URL="$1" \
    "$BIN" serve --address 127.0.0.1 --port "$PORT" >>"$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$WORK/serve.log" >&2; exit 1
}

stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

# oha_json NAME ARGS... -> writes $WORK/NAME.json
oha_json() {
  local name=$1; shift
  oha --no-tui --output-format json "$@" >"$WORK/$name.json" 2>/dev/null
}

# field FILE PY_EXPR (j = parsed JSON)
field() { python3 -c "import json,sys; j=json.load(open('$1')); print($2)"; }
rps() { field "$WORK/$1.json" "round(j['summary']['requestsPerSec'], 1)"; }
p99() { field "$WORK/$1.json" "round(j['latencyPercentiles']['p99']*1000, 2)"; }
ok_share() { field "$WORK/$1.json" "round(j['summary']['successRate'], 4)"; }

seed_session() {  # registers and logs in one user; prints the session cookie value
  local email="bench$RANDOM@example.com"
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/v1/register" -d "email=$email" -d 'password=benchmark password'
  curl -fsS -o /dev/null -c "$WORK/cookies" "http://127.0.0.1:$PORT/api/v1/session" -d "email=$email" -d 'password=benchmark password'
  awk '$6 == "session_id" {print $7}' "$WORK/cookies"
  echo "$email" >"$WORK/email"
}

# measure_api PREFIX: profile and login figures against the running server
measure_api() {
  local prefix=$1 cookie email
  cookie=$(seed_session); email=$(cat "$WORK/email")
  oha_json "${prefix}profile" -z "${DUR}s" -c "$CONC" -H "Cookie: session_id=$cookie" "http://127.0.0.1:$PORT/api/v1/profile"
  # Forward auth (api.md §12), measured exactly as profile: same session, connections and duration.
  oha_json "${prefix}auth" -z "${DUR}s" -c "$CONC" -H "Cookie: session_id=$cookie" "http://127.0.0.1:$PORT/api/v1/auth"
  oha_json "${prefix}login" -z "${DUR}s" -c $((HASH_THREADS * 4)) -m POST -T application/x-www-form-urlencoded \
    -d "email=$email&password=benchmark%20password" "http://127.0.0.1:$PORT/api/v1/session"
}

HASH_THREADS=$(nproc)
log "bcrypt at cost $COST"
HASH_MS=$("$HASHBIN" "$COST")

# ---------------------------------------------------------------- SQLite
start_server "sqlite://$WORK/bench.db?mode=rwc"
log "static route (GET /)"
oha_json static -z "${DUR}s" -c "$CONC" "http://127.0.0.1:$PORT/"
log "profile and login on SQLite"
measure_api ""
log "mixed: profile at a fixed 200 req/s while logins saturate hashing"
cookie=$(seed_session); email=$(cat "$WORK/email")
oha --no-tui -z "$((DUR + 4))s" -c $((HASH_THREADS * 4)) -m POST -T application/x-www-form-urlencoded \
  -d "email=$email&password=benchmark%20password" "http://127.0.0.1:$PORT/api/v1/session" >/dev/null 2>&1 &
BG=$!; PIDS+=("$BG")
sleep 2
oha_json mixed -z "${DUR}s" -q 200 --latency-correction -c 8 -H "Cookie: session_id=$cookie" \
  "http://127.0.0.1:$PORT/api/v1/profile"
wait "$BG" 2>/dev/null || true
RSS_PEAK_MB=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$SERVER_PID/status")
stop_server

# ---------------------------------------------------------------- flood (api.md §6), default limits
FLOOD=""; SLOW=""
if [ -z "${BENCH_SKIP_FLOOD:-}" ]; then
log "flood: 64 connections from 127.0.0.2 post wrong logins while 127.0.0.1 logs in 20 times"
RATE=30 start_server "sqlite://$WORK/flood.db?mode=rwc"
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/v1/register" -d "email=legit@example.com" -d 'password=benchmark password'
FLOOD=$("$FLOODBIN" "$PORT" legit@example.com 'benchmark password' 120)
log "$FLOOD"
log "slow clients: 1,000 connections that send half a request line and stall"
SLOW=$(python3 "$ROOT/bench/slow_clients.py" "$PORT" 1000 10)
log "$SLOW"
stop_server
fi

# ---------------------------------------------------------------- what metrics and the audit log cost
# Off and on alternately (off, on, off, on, …), so that drift on this shared machine hits both alike.
# One round's ratio moves by ±5 % here: BENCH_OPS_ROUNDS (default 4) rounds are averaged.
log "metrics and audit log: off vs on"
OPS_DUR=${BENCH_OPS_SECONDS:-5}
OPS_ROUNDS=${BENCH_OPS_ROUNDS:-4}
[ -n "${BENCH_SKIP_OPS:-}" ] && OPS_ROUNDS=0
for round in $(seq 1 "$OPS_ROUNDS"); do
  for mode in off on; do
    if [ "$mode" = off ]; then flag=false; else flag=true; fi
    ROCKET_METRICS=$flag ROCKET_AUDIT=$flag start_server "sqlite://$WORK/ops-$mode-$round.db?mode=rwc"
    cookie=$(seed_session); email=$(cat "$WORK/email")
    oha_json "ops_profile_${mode}_$round" -z "${OPS_DUR}s" -c "$CONC" -H "Cookie: session_id=$cookie" "http://127.0.0.1:$PORT/api/v1/profile"
    oha_json "ops_login_${mode}_$round" -z "$((OPS_DUR * 2))s" -c "$HASH_THREADS" -m POST -T application/x-www-form-urlencoded \
      -d "email=$email&password=benchmark%20password" "http://127.0.0.1:$PORT/api/v1/session"
    stop_server
  done
done

# ---------------------------------------------------------------- user list over 1,000,000 users
LIST_S=skipped; LIST_RSS=skipped
if [ -z "${BENCH_SKIP_LIST:-}" ]; then
  log "seeding 1,000,000 users"
  LISTDB="$WORK/list.db"
  "$BIN" --database-url "sqlite://$LISTDB?mode=rwc" db-setup >/dev/null
  python3 - "$LISTDB" <<'PY'
import sqlite3, sys, uuid
db = sqlite3.connect(sys.argv[1])
ts = "2026-11-26T00:00:00.000001+00:00"
h = "$2b$04$abcdefghijklmnopqrstuu5QvXjUb1OQBKp9hwa3gqRqtTVw1RwqG"
rows = ((uuid.uuid4().bytes, f"user{i:07d}@example.com", h, ts, ts) for i in range(1_000_000))
db.executemany("INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?,?,?,?,?)", rows)
db.commit()
PY
  log "userauth user list --json over 1,000,000 users"
  read -r LIST_S LIST_RSS < <(python3 - "$BIN" "$LISTDB" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run([sys.argv[1], "--database-url", f"sqlite://{sys.argv[2]}", "user", "list", "--json"],
               stdout=subprocess.DEVNULL, check=True)
wall = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{wall:.2f} {rss:.1f}")
PY
)
fi

# ---------------------------------------------------------------- PostgreSQL, when installed
PG_PROFILE_RPS=skipped; PG_PROFILE_P99=skipped; PG_LOGIN_RPS=skipped; PG_AUTH_RPS=skipped
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
runas_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ]; then
  log "PostgreSQL: throwaway cluster"
  mkdir -p "$WORK/pg"; [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
  PG_DATA="$WORK/pg/data"; PG_PORT=$(free_port)
  runas_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust --no-sync >/dev/null
  runas_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/log" -w \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
  psql -q "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c "CREATE DATABASE bench"
  start_server "postgres://postgres@127.0.0.1:$PG_PORT/bench"
  log "profile and login on PostgreSQL"
  measure_api "pg_"
  PG_PROFILE_RPS=$(rps pg_profile); PG_PROFILE_P99=$(p99 pg_profile); PG_LOGIN_RPS=$(rps pg_login)
  # Forward authentication (api.md §12), the same session read as profile: skipped on a binary
  # without the route (404).
  cookie=$(seed_session)
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: session_id=$cookie" "http://127.0.0.1:$PORT/api/v1/auth")
  if [ "$status" = 200 ]; then
    log "forward auth (GET /api/v1/auth) on PostgreSQL"
    oha_json pg_auth -z "${DUR}s" -c "$CONC" -H "Cookie: session_id=$cookie" "http://127.0.0.1:$PORT/api/v1/auth"
    PG_AUTH_RPS=$(rps pg_auth)
  elif [ "$status" != 404 ]; then
    log "warning: GET /api/v1/auth answered $status with a session cookie; pg_auth_rps skipped"
  fi
  stop_server
fi

# ---------------------------------------------------------------- report
python3 - "$WORK" <<PY
import json, sys
w = sys.argv[1]
def j(n): return json.load(open(f"{w}/{n}.json"))
static, prof, login, mixed = j("static"), j("profile"), j("login"), j("mixed")
hash_ms = float("$HASH_MS"); threads = $HASH_THREADS
bound = threads / hash_ms * 1000
v = {
  "static_rps": round(static["summary"]["requestsPerSec"], 1),
  "profile_rps": round(prof["summary"]["requestsPerSec"], 1),
  "profile_p99_ms": round(prof["latencyPercentiles"]["p99"] * 1000, 2),
  "login_rps": round(login["summary"]["requestsPerSec"], 2),
  "hash_ms": hash_ms, "hash_threads": threads, "login_bound": round(bound, 2),
  "mixed_profile_p99_ms": round(mixed["latencyPercentiles"]["p99"] * 1000, 2),
  "rss_peak_mb": float("$RSS_PEAK_MB"),
  "list_1m_s": "$LIST_S", "list_1m_rss_mb": "$LIST_RSS",
  "pg_profile_rps": "$PG_PROFILE_RPS", "pg_profile_p99_ms": "$PG_PROFILE_P99", "pg_login_rps": "$PG_LOGIN_RPS",
  "pg_auth_rps": "$PG_AUTH_RPS",
}
v["login_ratio"] = round(v["login_rps"] / bound, 3)
auth = j("auth")
v["auth_rps"] = round(auth["summary"]["requestsPerSec"], 1)
v["auth_p99_ms"] = round(auth["latencyPercentiles"]["p99"] * 1000, 2)
v["auth_profile_ratio"] = round(v["auth_rps"] / v["profile_rps"], 3)
def mean_rps(prefix, mode):
    rounds = range(1, $OPS_ROUNDS + 1)
    return sum(j(f"{prefix}_{mode}_{r}")["summary"]["requestsPerSec"] for r in rounds) / len(rounds)
for kind in ("profile", "login") if $OPS_ROUNDS else ():
    off, on = mean_rps(f"ops_{kind}", "off"), mean_rps(f"ops_{kind}", "on")
    v[f"ops_{kind}_rps_off"], v[f"ops_{kind}_rps_on"] = round(off, 1), round(on, 2)
    v[f"ops_{kind}_on_off_ratio"] = round(on / off, 3)
v["profile_static_ratio"] = round(v["profile_rps"] / v["static_rps"], 3)
if v["pg_login_rps"] != "skipped":
    v["pg_login_ratio"] = round(float(v["pg_login_rps"]) / bound, 3)
# PostgreSQL's session read against SQLite's, both from this run (target >= 0.5).
v["pg_profile_sqlite_ratio"] = (round(float(v["pg_profile_rps"]) / v["profile_rps"], 3)
                                if v["pg_profile_rps"] != "skipped" else "skipped")
for name, d in [("static", static), ("profile", prof), ("auth", auth), ("login", login), ("mixed", mixed)]:
    rate = d["summary"]["successRate"]
    if rate < 0.999:
        print(f"warning: {name}: success rate {rate:.4f}", file=sys.stderr)
for part in ("$FLOOD $SLOW").split():
    k, _, x = part.partition("=")
    v[k] = x
print(" ".join(f"{k}={x}" for k, x in v.items()))
print()
rows = [
  ("static_rps", "GET / (no database)", "", ""),
  ("profile_rps", "GET /api/v1/profile", "profile/static >= 0.6", v["profile_static_ratio"]),
  ("profile_p99_ms", "profile p99 (ms)", "", ""),
  ("auth_rps", "GET /api/v1/auth (forward auth)", "auth/profile >= 0.9", v["auth_profile_ratio"]),
  ("login_rps", "POST /api/v1/session", f"login_ratio >= 0.9 (bound {v['login_bound']}/s)", v["login_ratio"]),
  ("mixed_profile_p99_ms", "profile p99 at 200/s during login load", "<= 20", ""),
  ("rss_peak_mb", "server peak RSS (MB)", "<= 40", ""),
  ("list_1m_s", "user list --json, 1M users (s)", "<= 10", ""),
  ("list_1m_rss_mb", "its peak RSS (MB)", "<= 50", ""),
  ("pg_profile_rps", "profile on PostgreSQL", "pg/SQLite profile >= 0.5", v["pg_profile_sqlite_ratio"]),
  ("pg_auth_rps", "GET /api/v1/auth on PostgreSQL", "", ""),
  ("pg_login_rps", "login on PostgreSQL", "", v.get("pg_login_ratio", "")),
  ("flood_login_ok", "legit logins during a flood (of 20)", "20", ""),
  ("flood_login_p99_ms", "their p99 (ms)", "<= 1000", ""),
  ("flood_health_p99_ms", "/health p99 during the flood (ms)", "<= 20", ""),
  ("slow_health_p99_ms", "/health p99, 1,000 stalled conns (ms)", "", ""),
  ("ops_profile_on_off_ratio", "profile, metrics+audit on / off", ">= 0.95", ""),
  ("ops_login_on_off_ratio", "login, metrics+audit on / off", ">= 0.95", ""),
]
print(f"{'figure':<22} {'value':>10}  {'what':<40} {'target':<34} ratio")
for k, what, target, ratio in rows:
    if k not in v:
        continue
    print(f"{k:<22} {str(v[k]):>10}  {what:<40} {target:<34} {ratio}")
PY
