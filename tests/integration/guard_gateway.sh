#!/usr/bin/env bash
# The guard plugin through the real gateway in front of the mock upstream, with curl:
# request deny (400 content_filter or a refusal answer), masking seen by the upstream, a
# streamed reply whose denied word is split across chunks cut with content_filter + [DONE],
# a non-streamed reply replaced, audit lines that never carry the text, config errors.
# Prints TAP.
. "$(dirname "$0")/lib.sh"

sl_start_mock || sl_bail "mock upstream starts"
GW_PORT=$(sl_free_port)
WORDS=$SL_TMP/words.txt
printf '# one keyword a line\nforbidden fruit\n\xe5\x9d\x8f\xe4\xba\x8b\n' >"$WORDS"   # 坏事
for i in $(seq 1 3000); do printf 'filler%05d\n' "$i"; done >>"$WORDS"
SL_CONF_EXTRA="plugins:
  - guard:
      deny: [badword, Secret Plan]
      deny_file: $WORDS
      deny_regex: ['tok-[0-9]{6}\\b']
      mask: [email, phone, cn_mobile, cn_id, card, { regex: 'project-[a-z]+', replace: '[PROJECT]' }]"
sl_gw_up

chat() { # chat CONTENT-JSON [EXTRA JSON FIELDS]
    printf '{"model":"demo","messages":[{"role":"user","content":%s}]%s}' "$1" "${2:+,$2}"
}
is_error() { # is_error NAME STATUS TYPE CODE
    local got
    got="$HTTP_CODE $(sl_json 'd["error"]["type"]+" "+str(d["error"]["code"])' <<<"$HTTP_BODY")"
    sl_is "$1" "$got" "$2 $3 $4"
}
requests_seen() { sl_mock_stats | sl_json 'str(d["requests"])'; }

# ---- request stage: deny ------------------------------------------------------------------
before=$(requests_seen)
sl_http POST /v1/chat/completions "$(chat '"tell me about the BadWord here"')"
is_error "request deny: 400 invalid_request_error/content_filter" 400 invalid_request_error content_filter
sl_like "request deny: message names the rule, not the text" "$(sl_json 'd["error"]["message"]' <<<"$HTTP_BODY")" 'rule deny\[0\]'
sl_is "request deny: the upstream never saw it" "$(requests_seen)" "$before"

sl_http POST /v1/chat/completions "$(chat '"the \uff33\uff45\uff43\uff52\uff45\uff54 PLAN is"')"   # full-width Ｓｅｃｒｅｔ
is_error "request deny: full-width, mixed case" 400 invalid_request_error content_filter

sl_http POST /v1/chat/completions "$(chat '[{"type":"text","text":"fine"},{"type":"text","text":"\u8fd9\u662f\u574f\u4e8b"}]')"
is_error "request deny: text part, keyword from deny_file" 400 invalid_request_error content_filter
sl_like "request deny: deny_file rule named by its line" "$(sl_json 'd["error"]["message"]' <<<"$HTTP_BODY")" 'deny_file:3'

sl_http POST /v1/chat/completions "$(chat '"my token is tok-123456."')"
is_error "request deny: regex" 400 invalid_request_error content_filter
sl_http POST /v1/chat/completions "$(chat '"my token is tok-1234567"')"
sl_is "request: regex with a word boundary does not over-match" "$HTTP_CODE" 200

sl_http POST /v1/completions '{"model":"demo","prompt":["ok","a forbidden fruit"]}'
is_error "request deny: completions prompt" 400 invalid_request_error content_filter
sl_http POST /v1/embeddings '{"model":"demo","input":"badword"}'
is_error "request deny: embeddings input" 400 invalid_request_error content_filter

# ---- request stage: masking -----------------------------------------------------------------
sl_mock_clear
sl_http POST /v1/chat/completions "$(chat '"mail jane.doe@example.com, call 13812345678, card 4111 1111 1111 1111, id 11010519491231002X, bad card 4111 1111 1111 1112, see project-falcon"')"
sl_is "masking: request passes (200)" "$HTTP_CODE" 200
sl_is "masking: the upstream got the masked text" "$(sl_mock_last | sl_json 'd["body"]["messages"][0]["content"]')" \
    "mail [EMAIL], call [PHONE], card [CARD], id [ID], bad card 4111 1111 1111 1112, see [PROJECT]"
sl_http POST /v1/completions '{"model":"demo","prompt":"write to \uff41\uff40x.io ok"}'
sl_is "masking: nothing to mask leaves the prompt alone" "$(sl_mock_last | sl_json 'd["body"]["prompt"]')" "write to ａ｀x.io ok"

# ---- log probabilities: each token's text beside the content, which the answer's scan does not
# hold back: not asked of the upstream while answers are scanned ---------------------------------
sl_http POST /v1/chat/completions "$(chat '"hi"' '"logprobs":true,"top_logprobs":2,"temperature":0.5')"
sl_is "logprobs: the request passes (200)" "$HTTP_CODE" 200
sl_is "logprobs: the upstream was not asked for them" \
    "$(sl_mock_last | sl_json '",".join(k for k in ("logprobs","top_logprobs","temperature") if k in d["body"])')" "temperature"
sl_is "logprobs: taken out of the client's text, the rest as it was" "$(sl_mock_last | sl_json 'd["text"]')" \
    '{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"temperature":0.5}'
sl_http POST /v1/completions '{"model":"demo","prompt":"hi","logprobs":3}'
sl_is "logprobs: nor for a completion" "$(sl_mock_last | sl_json 'str("logprobs" in d["body"])')" "False"
sl_http POST /v1/chat/completions "$(chat '"hi"' '"logprobs":false')"
sl_is "logprobs: false is left as it is" "$(sl_mock_last | sl_json 'str(d["body"].get("logprobs"))')" "False"
sl_check "logprobs: the access log says they were dropped" sl_wait_for 5 grep -qE '"guard_logprobs_dropped": ?true' "$SL_TMP/access.log"

# ---- response stage: streamed ---------------------------------------------------------------
sse=$SL_TMP/guard.sse
stream() { # stream MOCK-JSON
    curl -sSN -o "$sse" --max-time 20 -H 'content-type: application/json' \
        --data "$(chat '"hi"' "\"stream\":true,\"mock\":$1")" "$GW_URL/v1/chat/completions"
    sl_sse_summary "$sse"
}
sum=$(stream '{"texts":["Hello, ","this is a ba","dWo","rd and more"],"chunks":4,"chunk_delay_ms":10}')
sl_is "stream: text before the split word only" "$(sl_json 'd["text"]' <<<"$sum")" "Hello, this is a "
sl_is "stream: finish_reason content_filter, [DONE] last, valid JSON" \
    "$(sl_json '",".join(d["finish"])+" "+str(d["done_last"])+" "+str(d["bad_json"])' <<<"$sum")" "content_filter True 0"
sl_check "stream: no piece of the word after the cut" bash -c '! grep -qi "dwo\|rd and more" "$1"' _ "$sse"

sum=$(stream '{"texts":["\u574f","\u4e8b\u5f88\u591a"],"chunks":2}')
sl_is "stream: a CJK keyword split over two chunks is cut" "$(sl_json 'd["text"]+" "+",".join(d["finish"])' <<<"$sum")" " content_filter"

sum=$(stream '{"texts":["tok-12","34","56 end"],"chunks":3}')
sl_is "stream: a regex match split over chunks is cut" "$(sl_json 'd["text"]+"|"+",".join(d["finish"])' <<<"$sum")" "|content_filter"

sum=$(stream '{"texts":["All ","fine ","words ","here, ","nothing ","bad."],"chunks":6}')
sl_is "stream: clean text arrives whole (held text flushed)" "$(sl_json 'd["text"]' <<<"$sum")" "All fine words here, nothing bad."
sl_is "stream: clean text keeps finish stop and [DONE]" "$(sl_json '",".join(d["finish"])+" "+str(d["done_last"])' <<<"$sum")" "stop True"

# ---- response stage: not streamed -----------------------------------------------------------
sl_http POST /v1/chat/completions "$(chat '"hi"' '"mock":{"texts":["Sure: ","the Secret ","plan is x"],"chunks":3}')"
sl_is "body: 200" "$HTTP_CODE" 200
sl_is "body: content cut before the match, finish content_filter" \
    "$(sl_json 'd["choices"][0]["message"]["content"]+"|"+d["choices"][0]["finish_reason"]' <<<"$HTTP_BODY")" \
    "Sure: the |content_filter"
sl_http POST /v1/completions '{"model":"demo","prompt":"x","mock":{"texts":["a forbidden ","fruit"],"chunks":2}}'
sl_is "body: completions text cut" \
    "$(sl_json 'd["choices"][0]["text"]+"|"+d["choices"][0]["finish_reason"]' <<<"$HTTP_BODY")" "a |content_filter"

# ---- audit ---------------------------------------------------------------------------------
sl_wait_for 5 grep -q 'guard block .*stage=response' "$GW_LOG"
sl_like "audit: a log line per block with consumer, rule, stage" \
    "$(grep -m1 'guard block' "$GW_LOG")" 'guard block consumer=- rule=deny\[0\] stage=request'
sl_check "audit: response blocks logged" grep -q 'guard block consumer=- rule=deny_regex\[0\] stage=response' "$GW_LOG"
# each worker writes its own lines (flushed every 100 ms): the file is not in request order
sl_wait_for 5 grep -Eq '"guard": ?\{[^}]*"rule": ?"deny\[0\]"' "$SL_TMP/access.log"
sl_like "audit: access-log field" "$(grep -E -m1 '"rule": ?"deny\[0\]"' "$SL_TMP/access.log")" \
    '"guard": ?\{[^}]*"rule": ?"deny\[0\]"'
sl_check "audit: access log counts masked items (5 in the masking request)" sl_wait_for 5 grep -qE '"guard_masked": ?5[,}]' "$SL_TMP/access.log"
sl_check "audit: logs never carry the denied text" \
    bash -c '! grep -qi "badword\|forbidden fruit\|secret plan" "$1" "$2"' _ "$GW_LOG" "$SL_TMP/access.log"

# ---- refuse mode, and config errors -----------------------------------------------------------
sl_stop "$GW_PID"
GW_PORT=$(sl_free_port)
SL_CONF_EXTRA="plugins:
  - guard: { deny: [badword], on_request_hit: refuse, refusal_message: 'Not with me.', apply_to: request }"
sl_gw_up "$SL_TMP/refuse.yaml"
sl_http POST /v1/chat/completions "$(chat '"say badword"')"
sl_is "refuse: 200 chat.completion with the refusal, finish content_filter" \
    "$HTTP_CODE $(sl_json 'd["object"]+"|"+d["choices"][0]["message"]["content"]+"|"+d["choices"][0]["finish_reason"]' <<<"$HTTP_BODY")" \
    "200 chat.completion|Not with me.|content_filter"
curl -sSN -o "$sse" --max-time 20 -H 'content-type: application/json' \
    --data "$(chat '"say badword"' '"stream":true')" "$GW_URL/v1/chat/completions"
sum=$(sl_sse_summary "$sse")
sl_is "refuse: streamed refusal, content_filter, [DONE]" \
    "$(sl_json 'd["text"]+"|"+",".join(d["finish"])+"|"+str(d["done_last"])' <<<"$sum")" "Not with me.|content_filter|True"
sum=$(stream '{"texts":["a bad","word"],"chunks":2}')
sl_is "apply_to request: the response is not filtered" "$(sl_json 'd["text"]' <<<"$sum")" "a badword"

bad=$SL_TMP/bad.yaml
GW_PORT=$(sl_free_port)
SL_CONF_EXTRA="plugins:
  - guard:
      deny_regex: ['ok', 'broken(']
      mask: [emial]"
sl_gateway_config >"$bad"
out=$("$SLUICE" check -c "$bad" 2>&1); rc=$?
sl_is "check: a bad config exits 1" "$rc" 1
sl_like "check: bad regex at FILE:LINE:COL with PCRE2's message" "$out" "$bad:[0-9]+:[0-9]+: plugins\[0\]\.guard\.deny_regex\[1\]: bad regex at offset 7: missing closing parenthesis"
sl_like "check: unknown mask named" "$out" "$bad:[0-9]+:[0-9]+: .*mask\[0\]: unknown mask 'emial'"

sl_done
