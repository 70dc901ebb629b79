/* The policy plugin interface. A plugin is one static sl_plugin struct: its name, a config
 * parser, and the hooks it uses (NULL for the rest). The chain runner (gateway/chain.c) is
 * the only caller of the hooks; the core knows nothing of any plugin's insides.
 * Built-ins are listed in plugins/registry.c; others are shared objects exporting
 * `const sl_plugin *sl_plugin_entry(void)`. */
#ifndef SL_PLUGIN_H
#define SL_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "err.h"
#include "yaml_tree.h"

/* 3: a streamed event's tree is made on demand (sl_resp_event_json). Shared objects built for
 * version 2 still load: their hooks get the tree made first.
 * 4: sl_resp_event_summary; sl_resp_event grew at its end (version 3 objects still load).
 * 5: sl_ex_request_view (the request body without a tree), sl_ex_body_set, sl_ex_body_del;
 *    the tree behind sl_ex_body and sl_ex_body_view is made at the first ask (version 2-4
 *    objects still load). */
#define SL_PLUGIN_API_VERSION 5
#define SL_PLUGIN_API_VERSION_MIN 2

struct sl_config;
typedef struct sl_exchange sl_exchange;   /* one client request; opaque to plugins */

typedef enum sl_step {
    SL_STEP_CONTINUE,   /* go on with the next plugin */
    SL_STEP_RESPOND,    /* the plugin wrote the response (e.g. an error); stop the chain */
    SL_STEP_PENDING,    /* waiting (on the store); the plugin calls sl_ex_resume later */
} sl_step;

/* One event of the response on its way to the client: a streamed SSE event's JSON, or
 * the whole JSON body of a non-streamed response. A plugin reads it through its view
 * (sl_resp_event_view: no tree made) or its tree (sl_resp_event_json: made on the first ask,
 * then shared), and edits either: a string through the view, or the tree in place (or
 * replaced), then sl_resp_event_edit. An event nobody edited goes out as the upstream wrote
 * it, without being serialised again. */
struct sl_jview;
struct sl_resp_summary;
typedef struct sl_resp_event {
    json_t *json;       /* the tree, once made: a non-streamed answer's is made up front, a
                           streamed event's by sl_resp_event_json (API version 2 plugins get it
                           made before their hook). NULL for "data: [DONE]" or not JSON */
    bool stream;
    bool done;          /* the [DONE] marker */
    int status;         /* upstream HTTP status */
    bool edited;        /* the event no longer says what text says (read it; set it through
                           sl_resp_event_edit) */
    const char *text;   /* the event as the upstream wrote it (text_len bytes, not NUL-ended);
                           valid during the hook only */
    size_t text_len;
    char *out;          /* the edited text (a view edit, or json serialised since the last edit:
                           sl_resp_event_text); the gateway frees it */
    size_t out_len;
    bool compact;       /* text is byte for byte the serialised json as parsed (known once the
                           tree is made; sl_resp_event_set_string splices into it) */
    /* the gateway's */
    bool out_exact;     /* out is byte for byte json serialised */
    bool json_tried;    /* the tree was asked for (json NULL: the text is not JSON) */
    int view_state;     /* 0 not read since the last edit, 1 read, -1 not readable */
    struct sl_jview *view;  /* where the view is read (the worker's) */
    json_t **spare;     /* a tree the text may be read into (sl_json_reload) */
    struct sl_resp_summary *summary; /* where the summary is read (the worker's) */
    bool summary_read;  /* summary is of the view as it stands */
    bool view_again;    /* view holds the stream's last event (its text still readable), and
                           summary_kept says its summary too: this one is read against it */
    bool summary_kept;
    char *out_spare;    /* a buffer the next view edit may write the event into (the gateway's: */
    size_t out_spare_cap; /* the last event's), and out's size when a view edit made it */
    size_t out_cap;
} sl_resp_event;

/* One choice of a completion's event, as every reader looks at it: tokens of the event's view,
 * -1 where absent. */
typedef struct sl_resp_choice {
    int tok;                /* the choice */
    long long index;        /* its "index" where that is an integer, else its place */
    int finish_reason;
    int delta, message;     /* a chat chunk's, a chat answer's */
    int text;               /* a text completion's */
    int content, reasoning_content, tool_calls; /* members of delta, else of message */
} sl_resp_choice;

/* What the proxy and each plugin read of an event, looked up once an event. */
typedef struct sl_resp_summary {
    int choices, usage, error;  /* members of the top object; choices only when an array */
    size_t n;                   /* choices */
    sl_resp_choice *c;
    size_t cap;
} sl_resp_summary;

/* The event's tree, made now if not yet (from the text as it stands). NULL for [DONE] or
 * text that is not JSON. The event owns it. */
json_t *sl_resp_event_json(sl_resp_event *ev);
/* The event's view of its text as it stands (json_view.h), or NULL where it cannot be read
 * (then read the tree). Valid until the next edit other than through the view (the two
 * below), whose tokens move with the text. */
const struct sl_jview *sl_resp_event_view(sl_resp_event *ev);
/* The view's string token tok holds s (len bytes) instead: the text is edited in place (no
 * tree made or serialised; a tree made before is dropped) and the view follows. 0, or -1
 * (nothing changed: out of memory, s not UTF-8, tok not a string of the current view). */
int sl_resp_event_view_set_string(sl_resp_event *ev, int tok, const char *s, size_t len);
/* The view's summary (read now where not since the view was), or NULL where the event has
 * no view or its top is not an object. Valid as the view is, and until a member is added. */
const sl_resp_summary *sl_resp_event_summary(sl_resp_event *ev);
/* For a chunk a plugin makes up in a stream: the members id, object, created, model and
 * system_fingerprint of one of the stream's events (text, len bytes), as a new object; NULL
 * where the text is not a JSON object. */
json_t *sl_resp_chunk_like(const char *text, size_t len);
/* Object token obj of the view gets the member key: s (len bytes) last, the same way (the
 * tokens after it move by two: ask for the summary again). 0, or -1 as above. */
int sl_resp_event_view_add_string(sl_resp_event *ev, int obj, const char *key, const char *s, size_t len);
/* A plugin changed ev->json in place. */
void sl_resp_event_edit(sl_resp_event *ev);
/* The event's tree is json (taken) instead, and the edit made. */
void sl_resp_event_replace(sl_resp_event *ev, json_t *json);
/* The event's JSON text as it stands: the upstream's while unedited, else the edited text,
 * or json serialised once and kept until the next edit (so plugins and the gateway share
 * one). NULL when there is no tree to serialise or it cannot be serialised. */
const char *sl_resp_event_text(sl_resp_event *ev, size_t *len);
/* holder[key] = the string s (len bytes), and the edit made: holder is an object inside
 * ev->json. Where the key held a string already and the event's text is known to be its
 * serialised json, the new text is that text with the one string replaced, not the whole
 * json serialised again. */
void sl_resp_event_set_string(sl_resp_event *ev, json_t *holder, const char *key, const char *s, size_t len);

typedef enum sl_event_action {
    SL_EVENT_PASS,      /* send it (re-serialised if ev->edited) */
    SL_EVENT_DROP,      /* do not send this event */
    SL_EVENT_STOP,      /* send it, then end the response (stream: then [DONE]) */
} sl_event_action;

typedef struct sl_plugin_ctx {
    struct sl_config *config;   /* the config being built (for references) */
    sl_diag *diag;
} sl_plugin_ctx;

typedef struct sl_plugin {
    const char *name;
    int api_version;            /* SL_PLUGIN_API_VERSION */
    /* node: the plugin's options, NULL when listed by name alone. Report mistakes with
     * sl_diag_add(ctx->diag, node, ...) and return -1. *conf is passed to every hook. */
    int (*config_parse)(const sl_ynode *node, sl_plugin_ctx *ctx, void **conf);
    void (*config_free)(void *conf);
    /* Runs when the request is read and its JSON parsed. */
    sl_step (*on_request)(sl_exchange *ex, void *conf);
    /* Set when the plugin needs to see response events (costs a JSON parse per event). */
    bool wants_events;
    sl_event_action (*on_response_event)(sl_exchange *ex, void *conf, sl_resp_event *ev);
    /* Runs once when the exchange ends, however it ends (done, error, client gone). */
    void (*on_complete)(sl_exchange *ex, void *conf);
} sl_plugin;

/* Registry */
const sl_plugin *sl_plugin_find(const char *name);   /* built-ins, then loaded .so */
const sl_plugin *sl_plugin_load_so(const char *path, sl_err *err);
/* Add a plugin to the registry (loaded .so files and tests use this). 0 or -1 when full. */
int sl_plugin_register(const sl_plugin *p);

/* ---- The exchange API plugins may use (implemented in gateway/exchange.c) ---- */

typedef enum sl_endpoint {
    SL_EP_CHAT, SL_EP_COMPLETIONS, SL_EP_EMBEDDINGS, SL_EP_MODELS, SL_EP_OTHER
} sl_endpoint;

sl_endpoint sl_ex_endpoint(const sl_exchange *ex);
const char *sl_ex_request_id(const sl_exchange *ex);
const struct sl_config *sl_ex_config(const sl_exchange *ex);
struct event_base *sl_ex_base(const sl_exchange *ex);
/* Request header value (case-insensitive name) or NULL. */
const char *sl_ex_header(const sl_exchange *ex, const char *name);
/* The parsed request body; plugins may change it (it is re-serialised before sending). */
json_t *sl_ex_body(sl_exchange *ex);
/* The same, to read only: a plugin that does not change the body takes it this way, so the
 * gateway knows the request's own text still says it (and sends it on without a rewrite). */
const json_t *sl_ex_body_view(sl_exchange *ex);
/* Set the body's top-level member key to value (taken), as json_object_set_new on sl_ex_body's
 * tree would. While the body is still the client's text (no plugin took the tree), the text is
 * changed in place instead: the view below stays, and the text still goes on without a
 * rewrite. A tree taken with sl_ex_body_view before is not valid after. 0, or -1 (out of
 * memory). */
int sl_ex_body_set(sl_exchange *ex, const char *key, json_t *value);
/* The body's top-level member key taken out (nothing when it is not there), the same way. */
int sl_ex_body_del(sl_exchange *ex, const char *key);
/* The request's own text read into a view (gateway/json_view.h), for plugins that only read
 * a few members: no tree is made for them. NULL once a plugin has taken the body with
 * sl_ex_body (the view would no longer say what goes upstream), or where the view could not
 * read the text: then read sl_ex_body_view. */
struct sl_jview;
const struct sl_jview *sl_ex_request_view(const sl_exchange *ex);
bool sl_ex_stream(const sl_exchange *ex);
/* The client-facing model name the request asked for (after alias resolution: the name
 * whose config applies), or NULL. */
const char *sl_ex_model(const sl_exchange *ex);

/* This worker thread's handle on the store (gateway/store.h), for plugins that keep
 * state there (keys, quotas, rate limits, cache). */
struct sl_store_conn *sl_ex_store(const sl_exchange *ex);

/* Consumer found by auth (NULL = anonymous). */
const char *sl_ex_consumer(const sl_exchange *ex);
void sl_ex_set_consumer(sl_exchange *ex, const char *name);

/* Add a header to the response to the client. */
void sl_ex_add_response_header(sl_exchange *ex, const char *name, const char *value);
/* Answer with an OpenAI-shaped error; the plugin then returns SL_STEP_RESPOND. */
void sl_ex_respond_error(sl_exchange *ex, int status, const char *type, const char *code,
                         const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Answer with a complete JSON body (ownership of body passes to the exchange). */
void sl_ex_respond_json(sl_exchange *ex, int status, json_t *body);
/* Resume a chain that a plugin left PENDING with the step it now takes. */
void sl_ex_resume(sl_exchange *ex, sl_step step);

/* Per-exchange state of a plugin, freed by the plugin in on_complete. */
void *sl_ex_plugin_state(const sl_exchange *ex, const sl_plugin *p);
void sl_ex_set_plugin_state(sl_exchange *ex, const sl_plugin *p, void *state);

/* Streaming from a plugin (a cache hit replayed, text a guard held back):
 * sl_ex_stream_begin answers 200 text/event-stream; sl_ex_emit_event writes one
 * `data: <json>` event to the client (also from on_response_event, where it goes out
 * before the event being handled); sl_ex_stream_end writes `data: [DONE]` and ends the
 * exchange (the plugin then returns SL_STEP_RESPOND from on_request). */
void sl_ex_stream_begin(sl_exchange *ex);
void sl_ex_emit_event(sl_exchange *ex, const json_t *event);
void sl_ex_stream_end(sl_exchange *ex);

/* After the response: the status sent to the client (0 if none yet; 499 when the client
 * went away), and whether the response is complete and unaltered: the upstream finished
 * normally, nothing was cut or stopped by a plugin. */
int sl_ex_status(const sl_exchange *ex);
bool sl_ex_complete(const sl_exchange *ex);
/* A plugin that changed or stopped the response says so (cache then skips it). */
void sl_ex_mark_altered(sl_exchange *ex);

/* A field for the access-log line (ownership of value passes). */
void sl_ex_log_field(sl_exchange *ex, const char *key, json_t *value);
/* An audit event (gateway/audit.h) for this request, with its request_id and consumer
 * added: for refusals a security team must see. Never the request's text (ownership of
 * fields passes; NULL for none). */
void sl_ex_audit(sl_exchange *ex, const char *event, json_t *fields);
/* A field another plugin set with sl_ex_log_field (e.g. "cache": "hit"), or NULL; borrowed. */
const json_t *sl_ex_log_get(const sl_exchange *ex, const char *key);

/* The usage object the upstream reported (the body's or the last stream event's), or NULL;
 * borrowed, valid until the exchange ends. */
const json_t *sl_ex_usage(const sl_exchange *ex);
/* Whether the client itself asked for a usage chunk (stream_options.include_usage in the
 * request as it arrived, before any plugin changed it). */
bool sl_ex_client_wants_usage(const sl_exchange *ex);

#endif
