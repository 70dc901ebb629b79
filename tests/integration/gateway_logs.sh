#!/usr/bin/env bash
# The gateway's three logs, as an operator configures them in YAML: the operational log in
# log.file at log.level, the JSON access log, and JSON audit events (key issued and
# revoked, config reloaded and refused, guard blocks) that never carry a key or a text.
# SIGUSR1 reopens every file: after the files are moved away (as logrotate does), new
# lines land in new files at the configured paths. Prints TAP.
. "$(dirname "$0")/lib.sh"

export ADMIN_TOKEN=logs-admin-token
sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
ADMIN_PORT=$(sl_free_port)
ADMIN_URL=http://127.0.0.1:$ADMIN_PORT
LOGDIR=$SL_TMP/logs
mkdir -p "$LOGDIR"
CONF=$SL_TMP/gw.yaml
write_config() { # LEVEL
    SL_CONF_LOG="{ level: $1, file: $LOGDIR/sluice.log, access_log: $LOGDIR/access.log, audit_log: $LOGDIR/audit.log }"
    SL_CONF_EXTRA="admin: { listen: 127.0.0.1:$ADMIN_PORT, token_env: ADMIN_TOKEN }
consumers:
  acme: {}
plugins:
  - auth
  - guard: { deny: [ forbiddenword ], apply_to: both }
  - route"
    sl_gateway_config >"$CONF.new" && mv "$CONF.new" "$CONF"
}
write_config info
sl_start_gateway "$CONF" || sl_bail "gateway starts"

# audit.log lines whose "audit" field is $1, as a JSON list
events() { "$SL_PY" -c '
import json, sys
out = []
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d.get("audit") == sys.argv[2]:
        out.append(d)
print(json.dumps(out))' "${2:-$LOGDIR/audit.log}" "$1"; }
sl_check "the operational log goes to log.file" grep -q 'listening on http://' "$LOGDIR/sluice.log"
sl_check "... not to stderr" bash -c "! grep -q 'listening on' '$GW_LOG'"

# ---- audit: keys ----
KEY=$("$SLUICE" key -c "$CONF" issue --consumer acme --name ci 2>"$SL_TMP/issue.err")
[[ $KEY == sk-sluice-* ]] || sl_bail "a key for acme" "$(cat "$SL_TMP/issue.err")"
ev=$(events key_issued)
sl_is "audit key_issued: consumer, name, id" "$(sl_json '[len(d), d[0]["consumer"], d[0]["name"], d[0]["key_id"] != ""]' <<<"$ev")" \
    '[1, "acme", "ci", true]'
sl_like "audit key_issued: who asked (the admin client's address)" "$(sl_json 'd[0]["admin_client"]' <<<"$ev")" '^127\.0\.0\.1'
sl_check "audit never holds the key itself" bash -c "! grep -qF '$KEY' '$LOGDIR/audit.log'"
KEY_ID=$(sl_json 'd[0]["key_id"]' <<<"$ev")
sl_like "every audit line has a UTC timestamp" "$(head -n1 "$LOGDIR/audit.log")" '"ts": ?"20[0-9-]+T[0-9:.]+Z"'

# ---- access log and a guard block ----
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"hello there"}]}' \
    -H "Authorization: Bearer $KEY"
sl_is "a request is served" "$HTTP_CODE" 200
RID=$(sl_header x-sluice-request-id)
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"say forbiddenword please"}]}' \
    -H "Authorization: Bearer $KEY"
sl_is "the guard blocks a request" "$HTTP_CODE" 400
BLOCKED=$(sl_header x-sluice-request-id)
sl_wait_for 5 grep -q "$BLOCKED" "$LOGDIR/access.log"
sl_check "the access log has a JSON line per request" grep -q "\"request_id\": *\"$RID\"" "$LOGDIR/access.log"
line_of() { grep -h "\"request_id\": *\"$1\"" "$LOGDIR/access.log"; }
sl_is "the served request's line: its upstream's time, within its duration" \
    "$(line_of "$RID" | sl_json '[d["upstream_ms"] > 0, d["upstream_ms"] <= d["duration_ms"]]')" '[true, true]'
sl_is "the blocked request's line: no upstream time (none was asked)" \
    "$(line_of "$BLOCKED" | sl_json '"upstream_ms" in d')" false
ev=$(events guard_block)
sl_is "audit guard_block: consumer, rule, stage, model, request id" \
    "$(sl_json '[len(d), d[0]["consumer"], d[0]["rule"], d[0]["stage"], d[0]["model"], d[0]["request_id"]]' <<<"$ev")" \
    "[1, \"acme\", \"deny[0]\", \"request\", \"demo\", \"$BLOCKED\"]"
sl_check "audit never holds the request's text" bash -c "! grep -q 'forbiddenword\|hello there' '$LOGDIR/audit.log'"

# ---- audit: reloads, and log.level on reload ----
reloads() { events config_reloaded | sl_json 'len(d)'; }
write_config warn
kill -HUP "$GW_PID"
sl_wait_for 5 grep -q '"trigger": *"SIGHUP"' "$LOGDIR/audit.log"
ev=$(events config_reloaded)
sl_is "audit config_reloaded: trigger and path" \
    "$(sl_json '[[e["trigger"], e["path"]] for e in d if e["trigger"] == "SIGHUP"][0]' <<<"$ev")" "[\"SIGHUP\", \"$CONF\"]"
sleep 0.5 # the file watcher's own reload of the same file
blocks=$(grep -c 'guard block' "$LOGDIR/sluice.log")
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"forbiddenword again"}]}' \
    -H "Authorization: Bearer $KEY"
sl_wait_for 5 test "$(events guard_block | sl_json 'len(d)')" = 2
sl_is "log.level warn applies on reload: no more info lines" "$(grep -c 'guard block' "$LOGDIR/sluice.log")" "$blocks"
printf 'listen: [ { address: 127.0.0.1:%s } ]\nmodels:\n  demo: { targets: [ { upstream: nowhere } ] }\n' "$GW_PORT" >"$SL_TMP/bad.yaml"
cp "$CONF" "$SL_TMP/good.yaml"
cp "$SL_TMP/bad.yaml" "$CONF"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN_TOKEN" "$ADMIN_URL/admin/v1/reload")
sl_is "a broken file is refused" "$code" 400
ev=$(events config_refused)
sl_like "audit config_refused: trigger, and the errors at FILE:LINE:COL" \
    "$(sl_json '[[e["trigger"], e["errors"][0]] for e in d if e["trigger"] == "admin API"][0]' <<<"$ev")" \
    "^\[\"admin API\", \"$CONF:3:[0-9]+: "
n=$(reloads)
write_config info
sl_wait_for 5 test "$(reloads)" -gt "$n" # the file watcher sees the fix
sl_is "a good file again: reloaded by the watcher" "$(events config_reloaded | sl_json 'd[-1]["trigger"]')" "file changed"

# ---- SIGUSR1: reopen after the files were moved ----
for f in sluice access audit; do mv "$LOGDIR/$f.log" "$LOGDIR/$f.log.1"; done
kill -USR1 "$GW_PID"
sl_wait_for 5 test -s "$LOGDIR/sluice.log"
sl_check "SIGUSR1: a new operational log file, saying so" grep -q 'SIGUSR1: log files reopened' "$LOGDIR/sluice.log"
sl_http POST /v1/chat/completions '{"model":"demo","messages":[{"role":"user","content":"after rotation"}]}' \
    -H "Authorization: Bearer $KEY"
AFTER=$(sl_header x-sluice-request-id)
curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $ADMIN_TOKEN" "$ADMIN_URL/admin/v1/keys/$KEY_ID"
sl_wait_for 5 grep -q "$AFTER" "$LOGDIR/access.log"
sl_check "SIGUSR1: new requests land in the new access log" grep -q "$AFTER" "$LOGDIR/access.log"
sl_check "... and not in the moved one" bash -c "! grep -q '$AFTER' '$LOGDIR/access.log.1'"
ev=$(events key_revoked)
sl_is "SIGUSR1: audit key_revoked lands in the new audit log" "$(sl_json '[len(d), d[0]["key_id"], d[0]["consumer"]]' <<<"$ev")" \
    "[1, \"$KEY_ID\", \"acme\"]"
sl_is "... and not in the moved one" "$(events key_revoked "$LOGDIR/audit.log.1")" "[]"
sl_check "the moved files keep what was written before" grep -q "$RID" "$LOGDIR/access.log.1"

printf 'listen: [ { address: 127.0.0.1:1 } ]\nlog: { file: "off" }\n' >"$SL_TMP/off.yaml"
out=$("$SLUICE" check -c "$SL_TMP/off.yaml" 2>&1)
sl_like "log.file cannot be off (FILE:LINE:COL)" "$out" "$SL_TMP/off.yaml:2:[0-9]+: log.file"
sl_gw_alive "gateway still running"
sl_done
