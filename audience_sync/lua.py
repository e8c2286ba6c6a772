"""The Lua scripts audience_sync runs in Redis (text only; audience_sync.store loads and calls them).

Each script touches keys of one hash tag only — a profile's (``{<profile>}``)
or the registry's (``{registry}``) — so it runs on Redis Cluster too, and is
atomic: a reader sees the state before or after it, never in between.
"""

from __future__ import annotations

from typing import Final

# What APPLY_CHANGES and APPLY_ATTRIBUTES answer per membership change or attribute value.
SAME: Final = 0  # already so: nothing visible changed (a later event time is recorded)
CHANGED: Final = 1  # a membership added or removed, an attribute value written
STALE: Final = 2  # older than what was applied: skipped

# The body of APPLY_CHANGES as a function (APPLY_PROFILE runs it too): m a profile's membership hash,
# t its event-time hash; args[first..last]: per change code, op ('+' member, '-' not), value, event
# time in ms ('' unknown), n, then n fields (the active generation's first, then those of snapshots
# being loaded).
# An event older than the last one applied to (profile, audience) is skipped; at equal times
# '-' wins over '+', so the result does not depend on delivery order. A change without a time
# always applies. Returns per change: 0 nothing changed, 1 membership added/removed, 2 stale.
_CHANGES_FUNCTION: Final = """
local function apply_changes(m, t, args, first, last)
  local out = {}
  local i = first
  while i <= last do
    local code, op, value, tm, n = args[i], args[i + 1], args[i + 2], args[i + 3], tonumber(args[i + 4])
    local apply = true
    if tm ~= '' then
      local stored = redis.call('HGET', t, code)
      if stored then
        local st, sop = string.sub(stored, 1, -2), string.sub(stored, -1)
        local a, b = tonumber(tm), tonumber(st)
        if a < b or (a == b and (sop == '-' or sop == op)) then apply = false end
      end
      if apply then redis.call('HSET', t, code, tm .. op) end
    end
    local result = 2
    if apply then
      result = 0
      for j = 1, n do
        local field = args[i + 4 + j]
        local r
        if op == '+' then r = redis.call('HSET', m, field, value) else r = redis.call('HDEL', m, field) end
        if j == 1 then result = r end
      end
    end
    out[#out + 1] = result
    i = i + 5 + n
  end
  return out
end
"""

# KEYS[1] a profile's membership hash, KEYS[2] its event-time hash. ARGV: its changes (_CHANGES_FUNCTION).
APPLY_CHANGES: Final = _CHANGES_FUNCTION + "return apply_changes(KEYS[1], KEYS[2], ARGV, 1, #ARGV)\n"

# KEYS audiences, next-code, generations, pending, version. ARGV audience id, now, stale-after (s), source,
# owner, the pending field of a dead loader to give up first ('' none), channel.
# Hands out the next generation of an audience (and a code for a new one) and records it as pending.
# The pending record announces the code: servers re-read the pending codes on the message published
# for a new code (and on their polls) without a version change, so a load that is not applied can
# leave the registry exactly as it found it (ABANDON_SNAPSHOT).
# Returns {'ok', code, gen, entry JSON or '', the audience's last generation before ('' none), next-code
# before ('-' an audience with a code already, '' none)} or {'busy', pending field, owner} when a live
# snapshot of the same audience is loading.
BEGIN_SNAPSHOT: Final = """
local audiences, next_code, generations, pending = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now, stale_after = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[6] ~= '' then redis.call('HDEL', pending, ARGV[6]) end
local all = redis.call('HGETALL', pending)
for i = 1, #all, 2 do
  local p = cjson.decode(all[i + 1])
  if p.audience == id and now - p.heartbeat < stale_after then
    return {'busy', all[i], tostring(p.owner)}
  end
end
local raw = redis.call('HGET', audiences, id)
local before_gen = redis.call('HGET', generations, id)
local last = tonumber(before_gen or '0')
local code
local before_code = '-'
if raw then
  local entry = cjson.decode(raw)
  code = entry.code
  if entry.gen > last then last = entry.gen end
else
  before_code = redis.call('GET', next_code) or ''
  code = redis.call('INCR', next_code)
end
local gen = last + 1
redis.call('HSET', generations, id, gen)
local record = {audience = id, code = code, gen = gen, started_at = now, heartbeat = now,
                source = ARGV[4], owner = ARGV[5], written = 0}
redis.call('HSET', pending, string.format('%d:%d', code, gen), cjson.encode(record))
if not raw then redis.call('PUBLISH', ARGV[7], redis.call('GET', KEYS[5]) or '0') end
return {'ok', string.format('%d', code), string.format('%d', gen), raw or '', before_gen or '', before_code}
"""

# KEYS pending, generations, next-code. ARGV per snapshot of one load 6 values: pending field, audience id,
# generation, the audience's last generation before it ('' none), code, next-code before ('-' not a new
# code, '' none) - as BEGIN_SNAPSHOT answered.
# A load that is not applied, once it has removed every field it wrote, drops its pending records and
# gives back what BEGIN_SNAPSHOT took, so that the registry is as it was: the audience's last
# generation and, for a new audience, its code — each only if nothing took a later one meanwhile, and
# only if no delta wrote to the generation (``deltas`` in its record, MARK_PENDING: such fields, in
# profiles the load never wrote, are left to gc, and the generation is never reused). Snapshots are
# taken in reverse order (codes are given back from the last one). Returns per snapshot, in ARGV
# order: 0 record gone (not ours any more), 1 record dropped, 3 and the generation given back, 7 and
# the code too.
ABANDON_SNAPSHOT: Final = """
local out = {}
local groups = #ARGV / 6
for g = groups, 1, -1 do
  local i = (g - 1) * 6 + 1
  local field, id, gen, before_gen, code, before_code = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4], ARGV[i + 5]
  local raw = redis.call('HGET', KEYS[1], field)
  local result = 0
  if raw then
    redis.call('HDEL', KEYS[1], field)
    result = 1
    if not cjson.decode(raw).deltas and redis.call('HGET', KEYS[2], id) == gen then
      if before_gen == '' then redis.call('HDEL', KEYS[2], id) else redis.call('HSET', KEYS[2], id, before_gen) end
      result = 3
      if before_code ~= '-' and redis.call('GET', KEYS[3]) == code then
        if before_code == '' then redis.call('DEL', KEYS[3]) else redis.call('SET', KEYS[3], before_code) end
        result = 7
      end
    end
  end
  out[g] = result
end
return out
"""

# KEYS pending. ARGV the pending fields a delta is about to write to (snapshots loading).
# Marks each record still there as written to by deltas (its generation is then never given back);
# returns per field 1 marked (write to it), 0 gone (the load ended: do not write to it).
MARK_PENDING: Final = """
local out = {}
for i = 1, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  out[i] = 0
  if raw then
    local p = cjson.decode(raw)
    if not p.deltas then
      p.deltas = true
      redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(p))
    end
    out[i] = 1
  end
end
return out
"""

# KEYS pending. ARGV now, written, then the pending fields of one load.
# Refreshes their heartbeat; returns how many are still registered (fewer: gc gave them up).
HEARTBEAT: Final = """
local alive = 0
for i = 3, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw then
    local p = cjson.decode(raw)
    p.heartbeat = tonumber(ARGV[1])
    p.written = tonumber(ARGV[2])
    redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(p))
    alive = alive + 1
  end
end
return alive
"""

# KEYS audiences, version, pending. ARGV now, channel, n, then per audience 5 values:
# id, code, gen, members, source; then one JSON object merged into every entry's "extra".
# Switches every audience to its new generation in one step, or none of them: returns
# {'ok', version} or {reason, audience id, detail}.
# Guarded (``audience-sync watch``): KEYS also a watcher's lease and ledger; ARGV then the lease value the
# watcher holds, then pairs (object path, ledger record JSON). Refused ('fenced') unless the lease still
# holds that value; on success the records are written (with the new registry version) in the same step,
# so a file is switched in and recorded as applied together, or neither.
CUTOVER: Final = """
local audiences, version_key, pending = KEYS[1], KEYS[2], KEYS[3]
local now, n = tonumber(ARGV[1]), tonumber(ARGV[3])
local extra_in = cjson.decode(ARGV[4 + n * 5])
local updates = {}
for i = 0, n - 1 do
  local b = 4 + i * 5
  local id, code, gen = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local raw = redis.call('HGET', audiences, id)
  local entry = {code = code}
  if raw then
    entry = cjson.decode(raw)
    if entry.code ~= code then return {'conflict', id, 'registered meanwhile under another code'} end
    if entry.gen >= gen then return {'superseded', id, string.format('%d', entry.gen)} end
  end
  if redis.call('HEXISTS', pending, string.format('%d:%d', code, gen)) == 0 then
    return {'lost', id, 'its pending generation was given up (stale heartbeat)'}
  end
  updates[#updates + 1] = {id, entry, gen, tonumber(ARGV[b + 3]), ARGV[b + 4]}
end
local guard = 5 + n * 5
if #KEYS > 3 and redis.call('GET', KEYS[4]) ~= ARGV[guard] then
  return {'fenced', ARGV[4], 'the watcher applying it no longer holds its lease'}
end
for _, u in ipairs(updates) do
  local entry = u[2]
  local extra = entry.extra
  if type(extra) ~= 'table' then extra = {} end
  extra.previous_gen = entry.gen
  extra.cutover_at = now
  for k, v in pairs(extra_in) do extra[k] = v end
  entry.gen = u[3]
  entry.members = u[4]
  entry.synced_at = now
  entry.source = u[5]
  entry.extra = extra
  redis.call('HSET', audiences, u[1], cjson.encode(entry))
  redis.call('HDEL', pending, string.format('%d:%d', entry.code, u[3]))
end
local version = redis.call('INCR', version_key)
if #KEYS > 3 then
  for i = guard + 1, #ARGV, 2 do
    local record = cjson.decode(ARGV[i + 1])
    record.registry_version = version
    redis.call('HSET', KEYS[5], ARGV[i], cjson.encode(record))
  end
end
redis.call('PUBLISH', ARGV[2], version)
return {'ok', string.format('%d', version)}
"""

# ``audience-sync watch``'s lease: one watcher of a name applies files; each acquisition takes a new token
# (the fence), so a watcher that lost its lease cannot write with it again.
# KEYS lease, fence. ARGV owner, TTL in ms. Returns {1, '<token> <owner>'} (taken) or {0, the holder's value}.
WATCH_ACQUIRE: Final = """
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
local value = string.format('%d', redis.call('INCR', KEYS[2])) .. ' ' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value}
"""

# KEYS lease. ARGV the value held, TTL in ms. Extends the lease if still held: 1, else 0.
WATCH_RENEW: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS lease. ARGV the value held. Gives the lease up if still held (another watcher takes over at once).
WATCH_RELEASE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

# KEYS lease, ledger. ARGV the value held, then pairs (object path, record JSON).
# Writes the records only while the lease holds that value (fenced): 1, else 0.
WATCH_RECORD: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS audiences, next-code, version. ARGV audience id, now, source, channel.
# The entry of an audience, created (code from next-code, generation 1) if it is new.
ENSURE_AUDIENCE: Final = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then return raw end
local code = redis.call('INCR', KEYS[2])
local entry = cjson.encode({code = code, gen = 1, synced_at = tonumber(ARGV[2]), source = ARGV[3], members = 0})
redis.call('HSET', KEYS[1], ARGV[1], entry)
local version = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[4], version)
return entry
"""

# KEYS audiences. ARGV now, source, then pairs (audience id, change in member count).
# Bookkeeping after deltas: members and synced_at. Readers do not use them: no version change.
TOUCH: Final = """
for i = 3, #ARGV, 2 do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw then
    local entry = cjson.decode(raw)
    local members = (tonumber(entry.members) or 0) + tonumber(ARGV[i + 1])
    if members < 0 then members = 0 end
    entry.members = members
    entry.synced_at = tonumber(ARGV[1])
    entry.source = ARGV[2]
    redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(entry))
  end
end
return 1
"""

# KEYS audiences, version, next-code, generations, pending: the registry as one consistent read.
REGISTRY_STATE: Final = """
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '0', redis.call('GET', KEYS[3]) or '0',
        redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[5])}
"""

# KEYS pending. ARGV field, the record as read. Drops a pending record if nobody refreshed it since.
DROP_PENDING_IF_UNCHANGED: Final = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

# The body of APPLY_ATTRIBUTES as a function (APPLY_PROFILE runs it too): m a profile's membership
# hash (its attributes live there too); args[first..last]: pairs of attribute field, value
# ``<tag><event time ms>|<payload>`` (inbound_common.codecs; tag '-' a removal).
# A value older than the stored one is skipped. At equal times the later arrival wins: Redis runs a
# profile's scripts one at a time (its keys share one slot, on a Cluster too), and the pairs of one
# call in order, so the value this call brings is the latest arrival there is. Never the values'
# order. Returns per pair (as APPLY_CHANGES): 0 unchanged (the same type and payload as stored, or a
# removal of an absent attribute; the later time is kept), 1 written, 2 stale.
_ATTRIBUTES_FUNCTION: Final = """
local function split(v)
  local bar = string.find(v, '|', 1, true)
  if not bar then return nil, nil end
  return tonumber(string.sub(v, 2, bar - 1)), string.sub(v, 1, 1) .. string.sub(v, bar + 1)
end
local function apply_attributes(m, args, first, last)
  local out = {}
  for i = first, last, 2 do
    local field, value = args[i], args[i + 1]
    local stored = redis.call('HGET', m, field)
    local at, content = split(value)
    local result = 1
    if stored then
      local was_at, was = split(stored)
      if was_at and at < was_at then result = 2 elseif was == content then result = 0 end
    elseif content == '-' then
      result = 0
    end
    if result ~= 2 and value ~= stored then redis.call('HSET', m, field, value) end
    out[#out + 1] = result
  end
  return out
end
"""

# KEYS[1] a profile's membership hash. ARGV: its attribute pairs (_ATTRIBUTES_FUNCTION).
APPLY_ATTRIBUTES: Final = _ATTRIBUTES_FUNCTION + "return apply_attributes(KEYS[1], ARGV, 1, #ARGV)\n"

# KEYS[1] a profile's membership hash, KEYS[2] its event-time hash. ARGV: k, then k arguments of
# membership changes (as APPLY_CHANGES), then attribute pairs (as APPLY_ATTRIBUTES).
# A profile's memberships and attributes of one push in one script, so one atomic write: a reader
# sees both or neither. Returns {per change 0/1/2, per pair 0/1/2}.
APPLY_PROFILE: Final = (
    _CHANGES_FUNCTION
    + _ATTRIBUTES_FUNCTION
    + """
local k = tonumber(ARGV[1])
return {apply_changes(KEYS[1], KEYS[2], ARGV, 2, k + 1), apply_attributes(KEYS[1], ARGV, k + 2, #ARGV)}
"""
)
