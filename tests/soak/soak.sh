#!/usr/bin/env bash
# tests/soak/soak.sh — mixed load on the full-chain gateway (streams, cache hits, fallbacks,
# quota refusals, guard blocks, clients leaving mid-stream, config reloads) for N minutes,
# sampling the gateway's RSS and open fds. After a warm-up (a fifth of the run, at least
# 10 s), RSS and fds measured with the load paused must stay flat: final RSS ≤ warm-up RSS
# × 1.2 + 8 MiB, final fds ≤ warm-up fds + 16. Not timed: the load is as fast as it goes.
# Prints TAP and a samples table (# lines).
#
# usage: tests/soak/soak.sh [MINUTES]        (default 10)    SOAK_SECONDS=60 overrides (CI)
# env:   SL_BUILD_ROOT (default build/), SOAK_THREADS=4
. "$(dirname "$0")/../integration/lib.sh"
. "$SL_SOURCE_ROOT/tests/soak/soak_config.sh"

SECS=${SOAK_SECONDS:-$(( ${1:-10} * 60 ))}
WARM=$((SECS / 5 < 10 ? 10 : SECS / 5))
export ADMIN_TOKEN=soak-admin-token
sl_start_mock "${soak_mock_args[@]}" || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port); ADMIN_PORT=$(sl_free_port)
CONF=$SL_TMP/soak.yaml
soak_config >"$CONF"
sl_start_gateway "$CONF" || sl_bail "gateway starts"
KEY=$("$SLUICE" key -c "$CONF" issue --consumer acme 2>/dev/null)
POOR=$("$SLUICE" key -c "$CONF" issue --consumer poor 2>/dev/null)

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
sample() { printf '%s %s %s\n' "$(date +%s)" "$(sl_rss_kib "$GW_PID")" "$(fds "$GW_PID")"; }
# load SECONDS: mixed load, with a reload every 10 s; prints the driver's JSON summary
load() {
    "$SL_PY" "$SL_SOURCE_ROOT/tests/soak/mixed_load.py" "$GW_URL" --key "$KEY" --poor-key "$POOR" \
        --threads "${SOAK_THREADS:-4}" --seconds "$1" >"$SL_TMP/load.json" &
    local pid=$! t0=$SECONDS
    # (in $(...): this subshell is not the children's parent, so kill -0 rather than sl_is_ours)
    while kill -0 "$pid" 2>/dev/null; do
        sample >>"$SL_TMP/samples"
        sleep 2
        if ((SECONDS - t0 >= 10)); then kill -0 "$GW_PID" 2>/dev/null && kill -HUP "$GW_PID"; t0=$SECONDS; fi
    done
    wait "$pid"
    cat "$SL_TMP/load.json"
}
quiet_sample() { sleep 2; sample; }   # after the load, with idle keep-alive connections closed

: >"$SL_TMP/samples"
warm=$(load "$WARM")
read -r _ rss_w fd_w < <(quiet_sample)
main=$(load $((SECS - WARM)))
read -r _ rss_f fd_f < <(quiet_sample)
n=$(( $(printf '%s' "$warm" | sl_json 'd["requests"]') + $(printf '%s' "$main" | sl_json 'd["requests"]') ))
errs=$(( $(printf '%s' "$warm" | sl_json 'd["errors"]') + $(printf '%s' "$main" | sl_json 'd["errors"]') ))
rss_max=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$SL_TMP/samples")
fd_max=$(awk 'BEGIN { m = 0 } $3 > m { m = $3 } END { print m }' "$SL_TMP/samples")
sl_diag "soak ${SECS}s ($WARM s warm-up): $n requests, $errs unexpected answers
RSS KiB: after warm-up $rss_w, final $rss_f, max under load $rss_max
fds:     after warm-up $fd_w, final $fd_f, max under load $fd_max
$(printf '%s' "$main" | sl_json 'd["by_kind"]')
samples under load (s, RSS KiB, fds):
$(awk 'NR == 1 { t = $1 } { printf "%d %d %d\n", $1 - t, $2, $3 }' "$SL_TMP/samples" | awk -v n="$(wc -l <"$SL_TMP/samples")" 'n <= 12 || NR % int(n / 12 + 1) == 1')"
sl_is "every answer as expected for its kind ($n requests)" "$errs" 0
sl_check "RSS flat: $rss_f KiB ≤ $rss_w × 1.2 + 8 MiB" [ "$rss_f" -le $((rss_w * 12 / 10 + 8192)) ]
sl_check "fds flat: $fd_f ≤ $fd_w + 16" [ "$fd_f" -le $((fd_w + 16)) ]
sl_gw_alive "gateway still running"
sl_done
