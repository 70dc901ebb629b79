#!/usr/bin/env bash
# The gateway serves the built console (gateway/static_files.c): the chat page on the client
# listener, the admin page on the admin listener, from memory, with content types, caching
# headers, a strict Content-Security-Policy, HEAD, and no way out of the folder.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/console_lib.sh"

sl_console_build || sl_bail "the console builds (vite)"
# what must never be served from the folder: links out of it, hidden files
ln -s /etc/passwd "$CONSOLE_DIR/passwd.txt"
ln -s / "$CONSOLE_DIR/root"
echo secret >"$CONSOLE_DIR/.env"
sl_console_gateway || sl_bail "gateway with the console starts"

# get URL [CURL ARGS...]: sets HTTP_CODE, HTTP_BODY, HTTP_HEADERS like sl_http
get() {
    local url=$1; shift
    rm -f "$SL_TMP/h" "$SL_TMP/b"
    HTTP_CODE=$(curl -sS -D "$SL_TMP/h" -o "$SL_TMP/b" -w '%{http_code}' --max-time 10 "$@" "$url" 2>"$SL_TMP/curl.err")
    HTTP_BODY=$(cat "$SL_TMP/b" 2>/dev/null)
    HTTP_HEADERS=$(tr -d '\r' <"$SL_TMP/h" | sed 's/^[^:]*:/\L&/')
}

# the chat page on the client listener
get "$GW_URL/console/"
sl_is "GET /console/ on the client listener: 200" "$HTTP_CODE" 200
sl_is "index.html: text/html" "$(sl_header content-type)" "text/html; charset=utf-8"
sl_is "index.html: revalidated on every use" "$(sl_header cache-control)" "no-cache"
sl_like "index.html: an ETag" "$(sl_header etag)" '^"[0-9a-f]{16}"$'
csp=$(sl_header content-security-policy)
sl_like "a strict Content-Security-Policy" "$csp" "^default-src 'self'; script-src 'self'; style-src 'self';"
sl_check "no unsafe-inline or unsafe-eval in the policy" test -n "${csp##*unsafe*}"
sl_is "X-Content-Type-Options: nosniff" "$(sl_header x-content-type-options)" nosniff
sl_like "the page loads its script from /console/assets/" "$HTTP_BODY" '<script type="module" crossorigin src="/console/assets/index-[A-Za-z0-9_-]+\.js"></script>'
inline=$(grep -o '<script[^>]*>' <<<"$HTTP_BODY" | grep -vc ' src=')
sl_is "no inline script in the page" "$inline" 0
page_len=$(wc -c <"$SL_TMP/b")

# HEAD: GET's head (same Content-Length), no body: a GET after it on the same connection
# reads exactly its own answer
head_then_get() { # URL-BASE PATH -> "HEAD-STATUS HEAD-LENGTH GET-STATUS GET-BODY-LENGTH"
    "$SL_PY" - "$1" "$2" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); path = sys.argv[2]
s = socket.create_connection((u.hostname, u.port), timeout=5)
f = s.makefile("rb")
def answer(method):
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status = int(f.readline().split()[1]); length = 0
    while (line := f.readline().strip()):
        k, _, v = line.decode().partition(":")
        if k.lower() == "content-length": length = int(v)
    body = b"" if method == "HEAD" else f.read(length)
    return status, length, len(body)
hs, hl, _ = answer("HEAD"); gs, gl, gb = answer("GET")
print(hs, hl, gs, gb)
PY
}
sl_is "HEAD /console/: 200 with GET's length, no body (the next GET on the connection is whole)" \
    "$(head_then_get "$GW_URL" /console/)" "200 $page_len 200 $page_len"
sl_like "HEAD /healthz on the admin listener: 200, no body" "$(head_then_get "$ADMIN_URL" /healthz)" '^200 [0-9]+ 200 [0-9]+$'
# console files on the client listener get access-log lines too (flushed every 100 ms)
console_line() { grep '"console":true' "$SL_TMP/access.log" 2>/dev/null | grep '"path":"/console/"' | grep -m1 '"method":"HEAD"'; }
sl_wait_for 5 console_line >/dev/null
sl_like "access log: a line for HEAD /console/ with its status and bytes" "$(console_line)" "\"status\":200,\"duration_ms\":[0-9.]+,\"bytes\":$page_len,\"console\":true"
etag=$(sl_header etag)
js=$(grep -o '/console/assets/index-[A-Za-z0-9_-]*\.js' <<<"$HTTP_BODY" | head -n1)
css=$(grep -o '/console/assets/[A-Za-z0-9_-]*\.css' <<<"$HTTP_BODY" | head -n1)

get "$GW_URL/console/" -H "If-None-Match: $etag"
sl_is "If-None-Match with the ETag: 304" "$HTTP_CODE" 304
sl_is "304 has no body" "${#HTTP_BODY}" 0
sl_is "304 repeats the ETag" "$(sl_header etag)" "$etag"

codes=$(curl -sS -o /dev/null -o /dev/null -o /dev/null -w '%{http_code}:%{num_connects} ' -H "If-None-Match: $etag" --max-time 10 \
    "$GW_URL/console/" "$GW_URL$js" "$GW_URL/console/")
sl_is "keep-alive: a 304 then the next requests on the same connection" "$codes" "304:1 200:0 304:0 "

get "$GW_URL$js"
sl_is "hashed script: 200" "$HTTP_CODE" 200
sl_is "hashed script: text/javascript" "$(sl_header content-type)" "text/javascript; charset=utf-8"
sl_is "hashed script: cached for good" "$(sl_header cache-control)" "public, max-age=31536000, immutable"
sl_is "hashed script: exact bytes" "$(sha256sum <"$SL_TMP/b" | cut -c1-64)" "$(sha256sum <"$CONSOLE_DIR${js#/console}" | cut -c1-64)"
get "$GW_URL$css"
sl_is "stylesheet: text/css" "$(sl_header content-type)" "text/css; charset=utf-8"

get "$GW_URL/console"
sl_is "/console redirects" "$HTTP_CODE:$(sl_header location)" "302:/console/"
get "$GW_URL/console/admin"
sl_is "no admin page on the client listener" "$HTTP_CODE" 404
get "$GW_URL/console/admin.html"
sl_is "no admin.html on the client listener" "$HTTP_CODE" 404
get "$GW_URL/console/nothing-here.js"
sl_is "unknown file: 404" "$HTTP_CODE" 404
get "$GW_URL/console/" -X POST --data x
sl_is "POST: 405" "$HTTP_CODE:$(sl_header allow)" "405:GET, HEAD"

# no way out of the folder (the config file sits next to it in SL_TMP)
for p in /console/../sluice.yaml /console/assets/../../sluice.yaml /console/../../../../etc/passwd \
         /console/%2e%2e/sluice.yaml /console/assets/%2e%2e/index.html /console/..%2fsluice.yaml \
         '/console/assets\..\index.html' /console/.vite/manifest.json /console//etc/passwd; do
    get "$GW_URL$p" --path-as-is
    if [ "$HTTP_CODE" = 400 ] && [[ $HTTP_BODY != *listen* && $HTTP_BODY != *root:* ]]; then
        sl_ok "traversal refused: $p"
    else
        sl_not_ok "traversal refused: $p" "got $HTTP_CODE: ${HTTP_BODY:0:200}"
    fi
done

get "$GW_URL/console/passwd.txt"
sl_is "a symbolic link in the folder is not served" "$HTTP_CODE" 404
get "$GW_URL/console/root/etc/passwd"
sl_is "a linked folder is not followed" "$HTTP_CODE" 404
get "$GW_URL/console/.env"
sl_is "a hidden file is not served" "$HTTP_CODE" 400

# the API is still there on the same listener
sl_http GET /v1/models
sl_is "client API unchanged: /v1/models without a key is 401" "$HTTP_CODE" 401

# the admin page on the admin listener, without the token (the page asks for it)
get "$ADMIN_URL/console/admin"
sl_is "GET /console/admin on the admin listener: 200" "$HTTP_CODE" 200
sl_like "admin page: its own script" "$HTTP_BODY" 'src="/console/assets/admin-[A-Za-z0-9_-]+\.js"'
sl_like "admin page: the same policy" "$(sl_header content-security-policy)" "^default-src 'self';"
get "$ADMIN_URL/console/"
sl_is "/console/ on the admin listener goes to the admin page" "$HTTP_CODE:$(sl_header location)" "302:/console/admin"
get "$ADMIN_URL/console/index.html"
sl_is "no chat page on the admin listener" "$HTTP_CODE" 404
# console files on the admin listener get access-log lines too (the main thread's writer)
admin_line() { grep '"console":true' "$SL_TMP/access.log" 2>/dev/null | grep -m1 '"path":"/console/index.html"'; }
sl_wait_for 5 admin_line >/dev/null
sl_like "access log: a line for the admin listener's 404 of /console/index.html" "$(admin_line)" \
    '"method":"GET","path":"/console/index.html","status":404,"duration_ms":[0-9.]+,"bytes":[0-9]+,"console":true'
get "$ADMIN_URL$js"
sl_is "assets on the admin listener too" "$HTTP_CODE" 200
get "$ADMIN_URL/admin/v1/keys"
sl_is "admin API still needs the token" "$HTTP_CODE" 401
get "$ADMIN_URL/console/../admin/v1/keys" --path-as-is
sl_is "admin: traversal into the API refused" "$HTTP_CODE" 400

# files are read at start: gone from disk, still served; a reload reads the new build
rm -f "$CONSOLE_DIR${js#/console}"
get "$GW_URL$js"
sl_is "served from memory (file deleted on disk)" "$HTTP_CODE" 200
echo '<!-- rebuilt -->' >>"$CONSOLE_DIR/index.html"
get "$ADMIN_URL/admin/v1/reload" -X POST -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN"
sl_is "reload" "$HTTP_CODE" 200
sl_wait_for 5 bash -c "curl -s '$GW_URL/console/' | grep -q rebuilt"
get "$GW_URL/console/"
sl_like "after reload: the new index.html" "$HTTP_BODY" 'rebuilt'
sl_check "after reload: a new ETag" test "$(sl_header etag)" != "$etag"
get "$GW_URL$js"
sl_is "after reload: the deleted file is gone" "$HTTP_CODE" 404

# config: errors with file:line:col; an unbuilt console only warns
cat >"$SL_TMP/bad.yaml" <<YAML
listen:
  - address: 127.0.0.1:0
console:
  dir: $SL_TMP/sluice.yaml
  colour: blue
YAML
out=$("$SLUICE" check -c "$SL_TMP/bad.yaml" 2>&1); rc=$?
sl_is "check: a console.dir that is a file is an error" "$rc" 1
sl_like "check: console.dir error has file:line:col" "$out" "bad.yaml:4:[0-9]+: console.dir: .*is not a folder"
sl_like "check: an unknown console key is an error" "$out" "bad.yaml:5:[0-9]+: .*colour"
printf 'listen:\n  - address: 127.0.0.1:0\nconsole: { dir: %s/not-built }\n' "$SL_TMP" >"$SL_TMP/unbuilt.yaml"
out=$("$SLUICE" check -c "$SL_TMP/unbuilt.yaml" 2>&1); rc=$?
sl_is "check: a console not built yet only warns" "$rc" 0
sl_like "check: the warning says how to build it" "$out" "npm ci && npx vite build"

# console.client: false keeps the chat page off the client listener
sed -i "s|console: { dir: $CONSOLE_DIR }|console: { dir: $CONSOLE_DIR, client: false }|" "$CONF"
get "$ADMIN_URL/admin/v1/reload" -X POST -H "Authorization: Bearer $SLUICE_ADMIN_TOKEN"
sl_wait_for 5 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' '$GW_URL/console/') = 404 ]"
get "$GW_URL/console/"
sl_is "client: false: no chat page on the client listener" "$HTTP_CODE" 404
get "$ADMIN_URL/console/admin"
sl_is "client: false: the admin page stays" "$HTTP_CODE" 200

sl_gw_alive "gateway still running"
sl_done
