-- Count feedback events in an offer's outcome counters for one day, each event once.
-- KEYS[1]: ib:out:{out:<offer>:<day>} (HASH field -> count); KEYS[2]: ib:outseen:{out:<offer>:<day>}
-- (HASH event digest -> 1), one slot. ARGV[1]: ms KEYS[1] must live (retention), ARGV[2]: ms KEYS[2]
-- must live (the dedupe window past the day's end); then pairs ARGV[2 + 2i - 1], ARGV[2 + 2i]: the digest
-- of event i (profile, event id) and the field it counts in.
-- This runs in its own slot (not the profile's), so it dedupes by itself: an event counted here once is
-- never counted again, whatever record_events.lua answered for it (a retry after a partial failure counts it).
-- Returns, per event, 1 (counted) or 0 (counted before).
local result = {}
local counted = false
for i = 3, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], '1') == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[i + 1], 1)
    result[#result + 1] = 1
    counted = true
  else
    result[#result + 1] = 0
  end
end
if counted then
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
end
return result
