-- Choose a decision's items on the profile's counters and count them, atomically.
-- The Lua twin of decision.core.planning.fill (tests/decision/store/test_select_script.py holds them to the same answers).
-- KEYS[1]: ib:c:{<profile>} (HASH of counters).
-- ARGV[1]: JSON {now: ms, ttl: ms, dup: bool, keep: {field: n}, release: [field, ...],
--   slots: [{limit: n, checks: [[field, limit, since_ms], ...], fields: [field, ...],
--            cands: [[key, checks, fields, exempt], ...]}, ...]}
--   release: one time `now` to take back per listed field (this decision's earlier attempt).
--   A candidate is taken, in rank order, while its slot has room, when its key was not taken
--   yet (unless dup), and when each of its checks, and unless exempt its slot's checks,
--   leaves room for one more; taking it adds `now` to its fields (and the slot's).
-- Returns, per slot, the 0-based indexes of the candidates taken.
local plan = cjson.decode(ARGV[1])
local now = plan.now

for _, field in ipairs(plan.release) do remove_time(field, now) end

local function fits(checks)
  for _, check in ipairs(checks) do
    if count_since(check[1], check[3]) + 1 > check[2] then return false end
  end
  return true
end

local used = {}
local result = {}
for s, slot in ipairs(plan.slots) do
  local taken = {}
  for i, cand in ipairs(slot.cands) do
    if #taken >= slot.limit then break end
    local key, exempt = cand[1], cand[4]
    if (plan.dup or not used[key]) and fits(cand[2]) and (exempt or fits(slot.checks)) then
      for _, field in ipairs(cand[3]) do add_time(field, now) end
      if not exempt then
        for _, field in ipairs(slot.fields) do add_time(field, now) end
      end
      taken[#taken + 1] = i - 1
      used[key] = true
    end
  end
  result[s] = taken
end

save(plan.keep, plan.ttl)
return result
