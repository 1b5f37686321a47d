"""The Lua scripts behind ``RedisCounters``: one script call (one round trip) per op.

Per counter two keys: a hash ``K`` (``u`` used, ``h`` held for fixed counters; ``t``
window sum for sliding ones; ``r:<rid>`` each reservation's amount) and a sorted set
``K:x`` (fixed: rid scored by hold expiry; sliding: rid scored by admission time).
Numbers cross into ``redis.call`` through ``%d`` so large values never turn into
``1e+14``-style strings.
"""

from __future__ import annotations

_COMMON = """
local function s(x) return string.format('%d', x) end

local function purge_fixed(h, z, now)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', s(now))
  if #gone == 0 then return end
  local sum = 0
  for _, m in ipairs(gone) do
    local a = redis.call('HGET', h, 'r:' .. m)
    if a then
      sum = sum + tonumber(a)
      redis.call('HDEL', h, 'r:' .. m)
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', s(now))
  if sum ~= 0 then redis.call('HINCRBY', h, 'h', s(-sum)) end
end

local function purge_sliding(h, z, now, win)
  local cutoff = s(now - win)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)
  if #gone == 0 then return end
  local sum = 0
  for _, m in ipairs(gone) do
    local a = redis.call('HGET', h, 'r:' .. m)
    if a then
      sum = sum + tonumber(a)
      redis.call('HDEL', h, 'r:' .. m)
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
  if sum ~= 0 then redis.call('HINCRBY', h, 't', s(-sum)) end
end

local function num(h, f)
  return tonumber(redis.call('HGET', h, f) or '0')
end
"""

# KEYS: per charge (hash, zset).  ARGV: now, hold_ms, rid, then per charge
# (amount, limit, window_ms, expire_at_ms or 0).
# Returns {1, level_1..level_n, reset_1..reset_n} or {0, index, level, retry}
# (retry: ms, -1 never, -2 unknown/window end).
RESERVE = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local rid = ARGV[3]
local n = #KEYS / 2

-- A retried call (the first attempt ran but its answer was lost) must not charge twice.
if redis.call('HEXISTS', KEYS[1], 'r:' .. rid) == 1 then
  local out = {1}
  for i = 1, n do
    local h = KEYS[2 * i - 1]
    if tonumber(ARGV[3 + (i - 1) * 4 + 3]) > 0 then
      out[i + 1] = num(h, 't')
    else
      out[i + 1] = num(h, 'u') + num(h, 'h')
    end
    out[n + i + 1] = 0
  end
  return out
end

local levels = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 3 + (i - 1) * 4
  local amount, limit, win = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local level
  if win > 0 then
    purge_sliding(h, z, now, win)
    level = num(h, 't')
  else
    purge_fixed(h, z, now)
    level = num(h, 'u') + num(h, 'h')
  end
  if level + amount > limit then
    local retry = -2
    if amount > limit then
      retry = -1
    elseif win > 0 then
      retry = 1
      local excess = level + amount - limit
      local freed = 0
      local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
      for j = 1, #entries, 2 do
        freed = freed + num(h, 'r:' .. entries[j])
        if freed >= excess then
          retry = math.min(win, math.max(1, tonumber(entries[j + 1]) + win - now))
          break
        end
      end
    end
    return {0, i - 1, level, retry}
  end
  levels[i] = level
end

local out = {1}
local resets = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 3 + (i - 1) * 4
  local amount, win, exp = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  redis.call('HSET', h, 'r:' .. rid, s(amount))
  if win > 0 then
    redis.call('ZADD', z, s(now), rid)
    out[i + 1] = redis.call('HINCRBY', h, 't', s(amount))
    local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    resets[i] = tonumber(oldest[2]) + win - now
    redis.call('PEXPIRE', h, s(2 * win))
    redis.call('PEXPIRE', z, s(2 * win))
  else
    redis.call('ZADD', z, s(now + hold), rid)
    out[i + 1] = levels[i] + amount
    redis.call('HINCRBY', h, 'h', s(amount))
    resets[i] = 0
    if exp > 0 then
      local at = math.max(exp, now + hold)
      redis.call('PEXPIREAT', h, s(at))
      redis.call('PEXPIREAT', z, s(at))
    end
  end
end
for i = 1, n do out[n + i + 1] = resets[i] end
return out
"""
)

# KEYS as RESERVE.  ARGV: now, rid, then per charge (actual, window_ms, expire_at_ms or 0).
# Returns each counter's used (fixed) or window sum (sliding) after settling.
SETTLE = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local n = #KEYS / 2
local out = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 2 + (i - 1) * 3
  local actual, win, exp = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  if win > 0 then
    purge_sliding(h, z, now, win)
    local old = redis.call('HGET', h, 'r:' .. rid)
    if old then
      redis.call('HSET', h, 'r:' .. rid, s(actual))
      out[i] = redis.call('HINCRBY', h, 't', s(actual - tonumber(old)))
    else
      out[i] = num(h, 't')
    end
  else
    purge_fixed(h, z, now)
    local held = redis.call('HGET', h, 'r:' .. rid)
    if held then
      redis.call('HDEL', h, 'r:' .. rid)
      redis.call('ZREM', z, rid)
      redis.call('HINCRBY', h, 'h', s(-tonumber(held)))
    end
    out[i] = redis.call('HINCRBY', h, 'u', s(actual))
    if exp > 0 then
      local ttl = redis.call('PTTL', h)
      if ttl < 0 or now + ttl < exp then
        redis.call('PEXPIREAT', h, s(exp))
        redis.call('PEXPIREAT', z, s(exp))
      end
    end
  end
end
return out
"""
)

# KEYS as RESERVE.  ARGV: now, then per charge window_ms.  Returns {used, held} pairs.
LEVELS = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local n = #KEYS / 2
local out = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local win = tonumber(ARGV[i + 1])
  if win > 0 then
    purge_sliding(h, z, now, win)
    out[2 * i - 1] = num(h, 't')
    out[2 * i] = 0
  else
    purge_fixed(h, z, now)
    out[2 * i - 1] = num(h, 'u')
    out[2 * i] = num(h, 'h')
  end
end
return out
"""
)

# KEYS: hash, zset.  ARGV: used, expire_at_ms or 0.  Returns 1 if seeded.
SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'u', ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 1
"""
