-- Record a batch of one profile's feedback events: each counts once by its event id (a retry) and each
-- tracking token counts each event type once (a replay with a new event id is a duplicate).
-- KEYS[1]: ib:c:{<profile>} (HASH of counters); KEYS[1 + i]: ib:e:{<profile>}:<event id> of event i (n events);
-- KEYS[1 + n + j]: ib:tok:{<profile>}:<decision id> of the j-th decision the events are about.
-- ARGV[1]: JSON {seen_ttl: ms, ttl: ms, keep: {field: n},
--                events: [[at_ms, [field, ...], j, token field, implied token field or "", [field, ...]], ...],
--                token_ttls: [ms, per decision j], sticky: {field: variant} (optional), sticky_ttl: ms}
-- An event counts when its event key is new (SET NX, expiring after seen_ttl: the dedupe window) AND its token's
-- field for its type is new (HSETNX in the decision's key, which lives as long as the token is accepted); both
-- are set either way, so a retry of an event counted by a server that only knew event ids marks its token too.
-- A counted event adds its time to its fields; a click or dismissal whose token's impression was not counted
-- counts that impression too (an item clicked was shown): the implied field, then its counter fields.
-- Returns, per event, 2 (recorded with its implied impression), 1 (recorded) or 0 (duplicate).
local batch = cjson.decode(ARGV[1])
local events = #batch.events
local result = {}
local touched = {}
for i, event in ipairs(batch.events) do
  local token_key = KEYS[1 + events + event[3]]
  local fresh_event = redis.call('SET', KEYS[i + 1], '1', 'NX', 'PX', batch.seen_ttl)
  local fresh_token = redis.call('HSETNX', token_key, event[4], '1') == 1
  touched[event[3]] = true
  result[i] = 0
  if fresh_event and fresh_token then
    for _, field in ipairs(event[2]) do add_time(field, event[1]) end
    result[i] = 1
    if event[5] ~= '' and redis.call('HSETNX', token_key, event[5], '1') == 1 then
      for _, field in ipairs(event[6]) do add_time(field, event[1]) end
      result[i] = 2
    end
  end
end
for j in pairs(touched) do
  local key = KEYS[1 + events + j]
  if redis.call('PTTL', key) < batch.token_ttls[j] then redis.call('PEXPIRE', key, batch.token_ttls[j]) end
end
save(batch.keep, batch.ttl)
-- The variants of ``allocation: auto`` experiments the profile saw: the first one seen stays.
if batch.sticky and next(batch.sticky) then
  for field, variant in pairs(batch.sticky) do redis.call('HSETNX', KEYS[1], field, variant) end
  if redis.call('PTTL', KEYS[1]) < batch.sticky_ttl then redis.call('PEXPIRE', KEYS[1], batch.sticky_ttl) end
end
return result
