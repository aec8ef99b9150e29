-- Trims one stream (KEYS[1]) of the entries that none of its consumer groups needs any more.
--
-- A group still needs its pending entries (given to a consumer, not acknowledged) and every
-- entry after its last-delivered-id (not read yet). The oldest entry any group needs is the
-- smaller of its oldest pending entry and its last-delivered-id; the stream keeps everything
-- from the oldest such entry over all groups (the last-delivered entry itself is kept: one
-- entry, and no arithmetic on ids). A stream without groups is left alone: whoever subscribes
-- first will read it from the start.
--
-- The script runs atomically: no delivery, acknowledgement or new group comes between the
-- reading of the groups and the trimming, whichever placers run it at the same time.
-- Returns {entries trimmed, entries left, the oldest entry kept ('' when left alone)}.

local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then
  return {0, 0, ''}
end

local function older(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

local oldest_needed = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local fields = {}
  for i = 1, #group, 2 do
    fields[group[i]] = group[i + 1]
  end
  local needed = fields['last-delivered-id']
  if fields['pending'] > 0 then
    local oldest_pending = redis.call('XPENDING', stream, fields['name'])[2]
    if older(oldest_pending, needed) then
      needed = oldest_pending
    end
  end
  if oldest_needed == nil or older(needed, oldest_needed) then
    oldest_needed = needed
  end
end

if oldest_needed == nil then
  return {0, redis.call('XLEN', stream), ''}
end
local trimmed = redis.call('XTRIM', stream, 'MINID', oldest_needed)
return {trimmed, redis.call('XLEN', stream), oldest_needed}
