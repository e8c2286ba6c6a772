-- Record a batch of one profile's feedback events: each counts once (dedupe by event id).
-- KEYS[1]: ib:c:{<profile>} (HASH of counters); KEYS[1 + i]: ib:e:{<profile>}:<event id> of event i.
-- ARGV[1]: JSON {seen_ttl: ms, ttl: ms, keep: {field: n}, events: [[at_ms, [field, ...]], ...],
--                sticky: {field: variant} (optional), sticky_ttl: ms}
-- An event whose key is new gets it (SET NX, expiring after seen_ttl: the dedupe window) and
-- adds its time to its fields; an event whose key exists is a duplicate and changes nothing.
-- Returns, per event, 1 (recorded) or 0 (duplicate).
local batch = cjson.decode(ARGV[1])
local result = {}
for i, event in ipairs(batch.events) do
  if redis.call('SET', KEYS[i + 1], '1', 'NX', 'PX', batch.seen_ttl) then
    for _, field in ipairs(event[2]) do add_time(field, event[1]) end
    result[i] = 1
  else
    result[i] = 0
  end
end
save(batch.keep, batch.ttl)
-- The variants of ``allocation: auto`` experiments the profile saw: the first one seen stays.
if batch.sticky and next(batch.sticky) then
  for field, variant in pairs(batch.sticky) do redis.call('HSETNX', KEYS[1], field, variant) end
  if redis.call('PTTL', KEYS[1]) < batch.sticky_ttl then redis.call('PEXPIRE', KEYS[1], batch.sticky_ttl) end
end
return result
