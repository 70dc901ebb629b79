#include "store_redis_scripts.h"

/* Reservations: q = hash {used, reserved, requests, seq}; qz = zset of "id:amount" by
 * deadline (ms on the Redis clock), the id made by the gateway before it sends the reserve
 * (so it can take back a reserve whose reply it never got). Expired ones are reclaimed
 * first. Few calls per script: each redis.call costs about a microsecond inside Redis. */
#define RECLAIM \
    "local t = redis.call('TIME')\n" \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
    "local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)\n" \
    "if #gone > 0 then\n" \
    "  local sum = 0\n" \
    "  for _, m in ipairs(gone) do sum = sum + tonumber(string.match(m, ':(%d+)$') or '0') end\n" \
    "  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n" \
    "  redis.call('HINCRBY', KEYS[1], 'reserved', -sum)\n" \
    "end\n" \
    "local v = redis.call('HMGET', KEYS[1], 'used', 'reserved', 'requests')\n" \
    "local used = tonumber(v[1] or '0')\n" \
    "local resv = tonumber(v[2] or '0')\n" \
    "local reqs = tonumber(v[3] or '0')\n"

const char *const sl_redis_scripts[SL_LUA_COUNT] = {
    [SL_LUA_KEY_ISSUE] =
        "redis.call('HSET', KEYS[1], 'id', ARGV[1], 'hash', ARGV[2], 'prefix', ARGV[3],\n"
        "  'consumer', ARGV[4], 'name', ARGV[5], 'created', ARGV[6], 'expires', ARGV[7], 'revoked', '0')\n"
        "redis.call('SET', KEYS[2], ARGV[2])\n"
        "redis.call('SADD', KEYS[3], ARGV[1])\n"
        "redis.call('SADD', KEYS[4], ARGV[1])\n"
        "return 1\n",

    [SL_LUA_KEY_REVOKE] =
        "local h = redis.call('GET', KEYS[1])\n"
        "if not h then return false end\n"
        "local k = ARGV[1] .. h\n"
        "if redis.call('EXISTS', k) == 0 then return false end\n"
        "if tonumber(redis.call('HGET', k, 'revoked') or '0') == 0 then\n"
        "  local t = redis.call('TIME')\n"
        "  redis.call('HSET', k, 'revoked', t[1])\n"
        "end\n"
        "return redis.call('HGETALL', k)\n",

    [SL_LUA_KEY_LIST] =
        "local out = {}\n"
        "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
        "  local h = redis.call('GET', ARGV[2] .. id)\n"
        "  if h then\n"
        "    local r = redis.call('HGETALL', ARGV[1] .. h)\n"
        "    if #r > 0 then out[#out + 1] = r end\n"
        "  end\n"
        "end\n"
        "return out\n",

    [SL_LUA_RESERVE] =
        RECLAIM
        "local limit, mn, mx = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
        "local left = limit - used - resv\n"
        "if left <= 0 or left < mn then return {0, 0, 0, used, resv, reqs} end\n"
        "local take = mx\n"
        "if left < take then take = left end\n"
        "local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)\n"
        "redis.call('HINCRBY', KEYS[1], 'reserved', take)\n"
        "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), string.format('%s:%d', ARGV[6], take))\n"
        "local ex = tonumber(ARGV[5])\n"
        "if ex > 0 then\n"
        "  redis.call('EXPIRE', KEYS[2], ex)\n"
        "  if seq == 1 then redis.call('EXPIRE', KEYS[1], ex) end\n"
        "end\n"
        "return {1, seq, take, used, resv + take, reqs}\n",

    /* ARGV[5] = '1': a replay that may already have been applied; it charges only while
     * its reservation is still open. A settle whose window key is gone (settled long after the window) recreates it:
     * its first request sets the expiry again. */
    [SL_LUA_SETTLE] =
        "local found = redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. ARGV[2])\n"
        "local used, resv, reqs\n"
        "if found == 1 then resv = redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[2])) end\n"
        "local charge = tonumber(ARGV[3])\n"
        "if found == 0 and ARGV[5] == '1' then charge = -1 end\n"
        "if charge >= 0 then\n"
        "  used = redis.call('HINCRBY', KEYS[1], 'used', charge)\n"
        "  reqs = redis.call('HINCRBY', KEYS[1], 'requests', 1)\n"
        "  if reqs == 1 and tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end\n"
        "end\n"
        "if not resv or not used then\n"
        "  local v = redis.call('HMGET', KEYS[1], 'used', 'reserved', 'requests')\n"
        "  used, resv, reqs = tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0')\n"
        "end\n"
        "return {found, used, resv, reqs}\n",

    [SL_LUA_USAGE] =
        RECLAIM
        "return {used, resv, reqs}\n",

    /* A reserve whose reply was lost: drop its reservation if Redis made it (the amount is
     * not known, so the member is found by its id; a window holds few open ones). */
    [SL_LUA_FORGET] =
        "local p = ARGV[1] .. ':'\n"
        "for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
        "  if string.sub(m, 1, #p) == p then\n"
        "    redis.call('ZREM', KEYS[2], m)\n"
        "    redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(string.sub(m, #p + 1)))\n"
        "    return 1\n"
        "  end\n"
        "end\n"
        "return 0\n",

    /* A leaky bucket per key: l = level (units), t = last update (us, Redis clock). Same
     * arithmetic as sl_bucket() in store.c. */
    [SL_LUA_RATE] =
        "local limit, cost, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]\n"
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
        "local v = redis.call('HMGET', KEYS[1], 'l', 't')\n"
        "local level, last = tonumber(v[1] or '0'), tonumber(v[2] or '0')\n"
        "local rate = limit / 60000000\n"
        "local lv = level - (now - last) * rate\n"
        "if now < last then lv = level elseif lv < 0 then lv = 0 end\n"
        "local fits = lv + cost <= limit + 1e-6\n"
        "if mode == 'add' or (mode == 'check' and fits) then lv = lv + cost end\n"
        "if mode ~= 'peek' then\n"
        "  redis.call('HSET', KEYS[1], 'l', string.format('%.6f', lv), 't', string.format('%d', now))\n"
        "  redis.call('PEXPIRE', KEYS[1], math.ceil(lv / rate / 1000) + 1000)\n"
        "end\n"
        "local allowed = 0\n"
        "if mode == 'add' or fits then allowed = 1 end\n"
        "local rem = math.floor(limit - lv + 1e-6)\n"
        "if rem < 0 then rem = 0 end\n"
        "local retry = 0\n"
        "if allowed == 0 then retry = math.ceil((lv + cost - limit) / rate / 1000) end\n"
        "return {allowed, rem, math.ceil(lv / rate / 1000), retry}\n",
};
