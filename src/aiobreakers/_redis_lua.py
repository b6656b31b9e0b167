"""
The Lua scripts behind :mod:`aiobreakers.redis`: every change of a shared circuit.

Each script runs atomically on the server and reads the time from the
server's clock (``TIME``), so open deadlines mean the same in every process
whatever their clocks say. A circuit is one hash (``KEYS[1]``):

- ``e``: the epoch, raised by every change of state to at least the server's
  time in milliseconds, so that it keeps rising even across the loss of the
  hash. A change proposed on another epoch is refused (fencing): a late
  write never undoes a newer state.
- ``s``: ``closed`` or ``open``; an open circuit past its deadline is
  half-open (nothing needs to write that down).
- ``u``, ``l``: an open spell's deadline and length, in server milliseconds.
- ``f``: re-opens by failed probes since it last closed; ``k``: successful
  probes in this half-open spell.

``KEYS[2]`` holds the probe permits (a sorted set scored by expiry), and
``KEYS[3]`` a time window's counts (a hash); both belong to one epoch, so a
change deletes them. A missing circuit is closed: every key can vanish
(``FLUSHALL``, eviction, a restart without persistence) and the processes
that still know better write their state back.

Every script takes ``ARGV[1..3]``: the channel to publish changes on, the
breaker's name, and how long the circuit's hash is kept (ms). Each returns
``{code, epoch, state, left_ms, length_ms, failed_probes}``; a change is
published as those figures, space-separated, after the name, with a reason.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CLAIM", "PROBE", "PROPOSE", "READ", "RESTORE", "WINDOW"]

_PRELUDE: Final = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function load()
  local v = redis.call('HMGET', KEYS[1], 'e', 's', 'u', 'l', 'f', 'k')
  if not v[1] then return nil end
  return {e = tonumber(v[1]), s = v[2], u = tonumber(v[3]) or 0,
          l = tonumber(v[4]) or 0, f = tonumber(v[5]) or 0,
          k = tonumber(v[6]) or 0}
end

local function shown(st, now)
  if st.s == 'open' and now >= st.u then return 'half_open' end
  return st.s
end

local function reply(code, st, now)
  if st == nil then return {code, 0, 'closed', 0, 0, 0} end
  local left = 0
  if st.s == 'open' and st.u > now then left = st.u - now end
  return {code, st.e, shown(st, now), left, st.l, st.f}
end

local function save(st, now, reason)
  redis.call('HSET', KEYS[1], 'e', string.format('%.0f', st.e), 's', st.s,
             'u', string.format('%.0f', st.u), 'l', string.format('%.0f', st.l),
             'f', string.format('%.0f', st.f), 'k', string.format('%.0f', st.k))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('DEL', KEYS[2], KEYS[3])
  local r = reply(1, st, now)
  redis.call('PUBLISH', ARGV[1], string.format('%s %.0f %s %.0f %.0f %.0f %s',
             ARGV[2], r[2], r[3], r[4], r[5], r[6], reason))
  return r
end

local function advance(st, now)
  st.e = math.max(st.e + 1, now)
end

local function open(st, now, length)
  advance(st, now)
  st.s = 'open'
  st.l = math.floor(length)
  st.u = now + st.l
  st.k = 0
end

local function close(st, now)
  advance(st, now)
  st.s = 'closed'
  st.u, st.l, st.f, st.k = 0, 0, 0, 0
end
"""

PROPOSE: Final = (
    _PRELUDE
    + """
-- A process changed its circuit: ARGV[4] the epoch it decided on, ARGV[5]
-- '1' when forced (trip, reset), ARGV[6] 'open' or 'closed', ARGV[7] the
-- open length (ms), ARGV[8] failed probes, ARGV[9] the reason.
local now = clock()
local st = load()
if st == nil then
  st = {e = tonumber(ARGV[4]), s = 'closed', u = 0, l = 0, f = 0, k = 0}
elseif ARGV[5] ~= '1' and st.e ~= tonumber(ARGV[4]) then
  return reply(0, st, now)
end
if ARGV[6] == 'closed' then
  -- Closed already: only a reset changes anything (it forgets the window).
  if st.s == 'closed' and ARGV[5] ~= '1' then return reply(0, st, now) end
  close(st, now)
else
  open(st, now, tonumber(ARGV[7]))
  st.f = tonumber(ARGV[8])
end
return save(st, now, ARGV[9])
"""
)

CLAIM: Final = (
    _PRELUDE
    + """
-- A half-open call asks for a probe permit: ARGV[4] its id, ARGV[5] the
-- most permits at once, ARGV[6] how long one lasts (ms). Code 1: granted;
-- 0: refused (all permits taken: left_ms is then until the first expires);
-- 2: the fleet's circuit is closed, so no permit is needed.
local now = clock()
local st = load()
if st == nil then return reply(2, nil, now) end
local state = shown(st, now)
if state == 'closed' then return reply(2, st, now) end
if state == 'open' then return reply(0, st, now) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  local r = reply(0, st, now)
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  r[4] = tonumber(first[2]) - now
  return r
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return reply(1, st, now)
"""
)

PROBE: Final = (
    _PRELUDE
    + """
-- A permitted probe ended: ARGV[4] the epoch of its permit, ARGV[5] the
-- permit, ARGV[6] '1' if it failed, ARGV[7] the success threshold, ARGV[8]
-- the recovery timeout (ms), ARGV[9] its multiplier, ARGV[10] its cap (ms,
-- negative for none). Code 1: counted; 0: too late to count, or counted.
local now = clock()
-- Counted only once, and only while the permit is held: an outcome sent
-- again (its reply was lost) or after the permit expired counts for nothing.
local held = redis.call('ZREM', KEYS[2], ARGV[5])
local st = load()
if held == 0 or st == nil or st.e ~= tonumber(ARGV[4])
    or shown(st, now) ~= 'half_open' then
  return reply(0, st, now)
end
if ARGV[6] == '1' then
  st.f = st.f + 1
  local length = tonumber(ARGV[8])
  local cap = tonumber(ARGV[10])
  if cap >= 0 then length = math.min(cap, length * tonumber(ARGV[9]) ^ st.f) end
  open(st, now, length)
  return save(st, now, 'probe_failed')
end
st.k = st.k + 1
if st.k < tonumber(ARGV[7]) then
  redis.call('HSET', KEYS[1], 'k', string.format('%.0f', st.k))
  return reply(1, st, now)
end
close(st, now)
return save(st, now, 'probes_succeeded')
"""
)

READ: Final = (
    _PRELUDE
    + """
-- The circuit as it is now. Code 1: it exists; 3: it is missing.
local now = clock()
local st = load()
if st == nil then return reply(3, nil, now) end
return reply(1, st, now)
"""
)

RESTORE: Final = (
    _PRELUDE
    + """
-- Write back an open circuit whose hash vanished, unless another process
-- has: ARGV[4] the epoch it had, ARGV[5] the time left (ms), ARGV[6] the
-- length (ms), ARGV[7] failed probes. Code 1: restored; 0: it exists.
local now = clock()
local st = load()
if st ~= nil then return reply(0, st, now) end
st = {e = tonumber(ARGV[4]), s = 'closed', u = 0, l = 0,
      f = tonumber(ARGV[7]), k = 0}
open(st, now, tonumber(ARGV[5]))
st.l = tonumber(ARGV[6])
return save(st, now, 'restore')
"""
)

WINDOW: Final = (
    _PRELUDE
    + """
-- One process's calls since its last report, into a time window shared by
-- the fleet: ARGV[4] the epoch they were counted in, ARGV[5] the process,
-- ARGV[6..8] calls, failures and slow calls, ARGV[9] a bucket's width (ms),
-- ARGV[10] buckets in the window, ARGV[11] minimum calls, ARGV[12] and
-- ARGV[13] the failure and slow-call rate thresholds (negative for none),
-- ARGV[14] the quorum, ARGV[15] the recovery timeout (ms). Opens the
-- circuit when the fleet's combined counts say so and at least a quorum of
-- processes reported failures or slow calls in the window. Code 1: opened.
local now = clock()
local st = load()
if st == nil then
  -- A missing circuit is closed, in whatever epoch its processes last saw.
  st = {e = tonumber(ARGV[4]), s = 'closed', u = 0, l = 0, f = 0, k = 0}
elseif st.e ~= tonumber(ARGV[4]) or st.s ~= 'closed' then
  return reply(0, st, now)
end
local w = KEYS[3]
local width = tonumber(ARGV[9])
local n = tonumber(ARGV[10])
local b = math.floor(now / width)
local at = string.format('%.0f', b)
redis.call('HINCRBY', w, 'c' .. at, ARGV[6])
redis.call('HINCRBY', w, 'f' .. at, ARGV[7])
redis.call('HINCRBY', w, 's' .. at, ARGV[8])
if tonumber(ARGV[7]) > 0 or tonumber(ARGV[8]) > 0 then
  local seen = redis.call('HGET', w, 'p' .. at) or ''
  if not string.find(' ' .. seen .. ' ', ' ' .. ARGV[5] .. ' ', 1, true) then
    redis.call('HSET', w, 'p' .. at, seen .. ' ' .. ARGV[5])
  end
end
for old = b - 2 * n, b - n do
  local o = string.format('%.0f', old)
  redis.call('HDEL', w, 'c' .. o, 'f' .. o, 's' .. o, 'p' .. o)
end
redis.call('PEXPIRE', w, string.format('%.0f', width * n * 2))
local calls, failures, slow, voters = 0, 0, 0, 0
local voted = {}
for i = b - n + 1, b do
  local o = string.format('%.0f', i)
  local v = redis.call('HMGET', w, 'c' .. o, 'f' .. o, 's' .. o, 'p' .. o)
  calls = calls + (tonumber(v[1]) or 0)
  failures = failures + (tonumber(v[2]) or 0)
  slow = slow + (tonumber(v[3]) or 0)
  if v[4] then
    for id in string.gmatch(v[4], '%S+') do
      if not voted[id] then voted[id] = true; voters = voters + 1 end
    end
  end
end
if calls < tonumber(ARGV[11]) or voters < tonumber(ARGV[14]) then
  return reply(0, st, now)
end
local reason = nil
local fr, sr = tonumber(ARGV[12]), tonumber(ARGV[13])
if fr >= 0 and failures / calls >= fr then
  reason = 'failure_rate'
elseif sr >= 0 and slow / calls >= sr then
  reason = 'slow_call_rate'
end
if reason == nil then return reply(0, st, now) end
st.f = 0
open(st, now, tonumber(ARGV[15]))
return save(st, now, reason)
"""
)
