-- Reserve `amount` more of every total cap of one offer, all or nothing.
-- KEYS[i]: ib:total:{offer:<offer>}:<counted>:<bucket> (STRING integer), one per total cap;
--   one hash tag: one offer's totals share a slot.
-- ARGV[1]: amount; ARGV[1 + i]: the limit of KEYS[i]; ARGV[1 + #KEYS + i]: how long KEYS[i]
--   must live at least (ms; 0: forever, a lifetime total); ARGV[2 + 2 * #KEYS] (optional): "check"
--   for a dry run: the same verdict, nothing written.
-- Returns {1, counts...} after adding, or {0, counts...} (nothing added) when one cap
-- would go over its limit; with "check", {granted, counts as read...}.
local amount = tonumber(ARGV[1])
local check_only = ARGV[2 + 2 * #KEYS] == 'check'
local counts = {}
local granted = 1
for i, key in ipairs(KEYS) do
  counts[i] = tonumber(redis.call('GET', key) or '0')
  if counts[i] + amount > tonumber(ARGV[1 + i]) then granted = 0 end
end
if granted == 1 and not check_only then
  for i, key in ipairs(KEYS) do
    counts[i] = redis.call('INCRBY', key, amount)
    local ttl = tonumber(ARGV[1 + #KEYS + i])
    if ttl > 0 and redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end
return {granted, unpack(counts)}
