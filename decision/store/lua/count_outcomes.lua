-- Count feedback events in an offer's outcome counters for one day (their decision's), each event once and each
-- tracking token's event type once.
-- KEYS[1]: ib:out:{out:<offer>:<day>} (HASH field -> count); KEYS[2]: ib:outseen:{out:<offer>:<day>}
-- (HASH digest -> 1), one slot. ARGV[1]: ms KEYS[1] must live (retention), ARGV[2]: ms KEYS[2] must live (the
-- token lifetime past the day's end); then five per event: the digest of the event (profile, event id), the
-- digest of its token's type (profile, decision, placement, type), the field it counts in, and for a click or a
-- dismissal the digest and field of its token's impression ("" and "" for other events).
-- This runs in its own slot (not the profile's), so it dedupes by itself, as record_events.lua does: an event
-- counts when both its digests are new (both are set either way); a counted click or dismissal whose token's
-- impression was not counted counts it too. Whatever record_events.lua answered for an event, it is counted here
-- at most once (a retry after a partial failure counts it), and so is each token's type: a token's events all
-- land in this one hash (the day of its decision), so its click is never counted without its impression.
-- Returns, per event, 2 (counted with its implied impression), 1 (counted) or 0 (counted before).
local result = {}
for i = 3, #ARGV, 5 do
  local fresh_event = redis.call('HSETNX', KEYS[2], ARGV[i], '1') == 1
  local fresh_token = redis.call('HSETNX', KEYS[2], ARGV[i + 1], '1') == 1
  local n = 0
  if fresh_event and fresh_token then
    redis.call('HINCRBY', KEYS[1], ARGV[i + 2], 1)
    n = 1
    if ARGV[i + 3] ~= '' and redis.call('HSETNX', KEYS[2], ARGV[i + 3], '1') == 1 then
      redis.call('HINCRBY', KEYS[1], ARGV[i + 4], 1)
      n = 2
    end
  end
  result[#result + 1] = n
end
if #result > 0 then  -- digests were set even when nothing was counted: the dedupe hash needs its TTL
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
end
return result
