-- Shared by select.lua and record_events.lua (concatenated before them by decision/store/scripts.py).
-- A counter field holds the latest event times of one thing counted: epoch milliseconds,
-- comma-separated, ascending, at most keep[field] of them (the newest).
local counters_key = KEYS[1]
local loaded = {}   -- field -> array of times (numbers), read on first use
local dirty = {}    -- fields to write back

local function times(field)
  local list = loaded[field]
  if list == nil then
    list = {}
    local raw = redis.call('HGET', counters_key, field)
    if raw then
      for part in string.gmatch(raw, '[^,]+') do list[#list + 1] = tonumber(part) end
    end
    loaded[field] = list
  end
  return list
end

local function count_since(field, since)
  local list = times(field)
  local n = 0
  for i = #list, 1, -1 do
    if list[i] < since then break end
    n = n + 1
  end
  return n
end

local function add_time(field, at)
  local list = times(field)
  local i = #list
  while i >= 1 and list[i] > at do i = i - 1 end  -- usually appends: events arrive in order
  table.insert(list, i + 1, at)
  dirty[field] = true
end

local function remove_time(field, at)
  local list = times(field)
  for i = #list, 1, -1 do
    if list[i] == at then
      table.remove(list, i)
      dirty[field] = true
      return
    end
  end
end

-- Write changed fields back, each trimmed to its newest keep[field] times, and make the
-- hash live at least ttl ms more.
local function save(keep, ttl)
  local changed = false
  for field in pairs(dirty) do
    local list = loaded[field]
    local first = math.max(1, #list - (keep[field] or #list) + 1)
    local parts = {}
    for i = first, #list do parts[#parts + 1] = string.format('%d', list[i]) end
    if #parts == 0 then
      redis.call('HDEL', counters_key, field)
    else
      redis.call('HSET', counters_key, field, table.concat(parts, ','))
    end
    changed = true
  end
  if changed and redis.call('PTTL', counters_key) < ttl then
    redis.call('PEXPIRE', counters_key, ttl)
  end
end
