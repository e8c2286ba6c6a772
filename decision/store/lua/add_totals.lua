-- Add to total counters: events counted on impressions, clicks... (positive), or a
-- reservation given back (negative).
-- KEYS[i]: ib:total:{offer:<offer>}:<counted>:<bucket>, all of one offer (one slot).
-- ARGV[i]: the change of KEYS[i]; ARGV[#KEYS + i]: how long KEYS[i] must live at least (ms; 0: forever).
-- A give-back never creates a key nor takes a count below 0. Returns the new counts.
local counts = {}
for i, key in ipairs(KEYS) do
  local delta = tonumber(ARGV[i])
  local raw = redis.call('GET', key)
  local current = tonumber(raw or '0')
  if delta < 0 and not raw then
    counts[i] = 0
  else
    if current + delta < 0 then delta = -current end
    counts[i] = redis.call('INCRBY', key, delta)
    local ttl = tonumber(ARGV[#KEYS + i])
    if ttl > 0 and redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end
return counts
