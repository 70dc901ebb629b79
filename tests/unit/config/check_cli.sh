#!/usr/bin/env bash
# `sluice check -c FILE`: a good file says "FILE: ok" and exits 0; a bad one prints every
# mistake as FILE:LINE:COL: message and exits 1. Usage: check_cli.sh SLUICE SOURCE_ROOT
set -u
SLUICE=$1
cd "$2" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
check() {   # check NAME CONDITION...
    local name=$1; shift
    n=$((n + 1))
    if "$@"; then echo "ok $n - $name"; else echo "not ok $n - $name"; fi
}
echo "1..4"

out=$("$SLUICE" check -c conf/sluice.yaml 2>"$tmp/err"); rc=$?
check "conf/sluice.yaml passes check" test "$rc:$out" = "0:conf/sluice.yaml: ok"

cat >"$tmp/bad.yaml" <<'YAML'
server:
  idle_timeout: forever
upstreams:
  up1: { type: openai, base_url: http://127.0.0.1:9/v1, pool_sise: 4 }
models:
  m1: { upstream: nowhere }
YAML
"$SLUICE" check -c "$tmp/bad.yaml" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "a bad file exits 1" test "$rc" = 1
cat >"$tmp/want" <<WANT
$tmp/bad.yaml:2:17: server.idle_timeout: expected a duration like 500ms, 10s, 2m (got "forever")
$tmp/bad.yaml:4:57: upstreams.up1: unknown key 'pool_sise' (did you mean 'pool_size'?)
$tmp/bad.yaml:6:19: models.m1.upstream: no upstream named 'nowhere' (known: up1)
WANT
grep -v ': warning: ' "$tmp/err" >"$tmp/got"
check "every mistake is printed as FILE:LINE:COL: message" cmp -s "$tmp/want" "$tmp/got" \
    || { echo "# got:"; sed 's/^/#   /' "$tmp/err"; }

"$SLUICE" check -c "$tmp/none.yaml" >/dev/null 2>"$tmp/err"; rc=$?
check "a missing file exits 1 and says why" \
    test "$rc:$(cat "$tmp/err")" = "1:$tmp/none.yaml: cannot open: No such file or directory"
