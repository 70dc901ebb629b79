/* The Lua scripts of the redis store: one per operation, each atomic in Redis. Loaded
 * once per connection (SCRIPT LOAD), called by EVALSHA, EVAL on NOSCRIPT. */
#ifndef SL_STORE_REDIS_SCRIPTS_H
#define SL_STORE_REDIS_SCRIPTS_H

enum {
    SL_LUA_KEY_ISSUE,   /* KEYS key:H keyid:ID keys:C keys; ARGV id hash prefix consumer name created expires */
    SL_LUA_KEY_REVOKE,  /* KEYS keyid:ID; ARGV key-prefix -> HGETALL of the key or nil */
    SL_LUA_KEY_LIST,    /* KEYS keys[:C]; ARGV key: keyid: prefixes -> array of HGETALLs */
    SL_LUA_RESERVE,     /* KEYS q qz; ARGV limit min max ttl_ms expire_s id -> ok seq amount used reserved requests */
    SL_LUA_SETTLE,      /* KEYS q qz; ARGV id amount charge(-1 = release) expire_s [maybe-applied] -> found used reserved requests */
    SL_LUA_USAGE,       /* KEYS q qz -> used reserved requests */
    SL_LUA_FORGET,      /* KEYS q qz; ARGV id -> 1 when the reservation was open (and is dropped), else 0 */
    SL_LUA_RATE,        /* KEYS rl; ARGV limit cost mode(check|add|peek) -> allowed remaining reset_ms retry_ms */
    SL_LUA_COUNT
};

extern const char *const sl_redis_scripts[SL_LUA_COUNT];

#endif
