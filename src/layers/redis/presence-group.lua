-- Shared functions of the presence group scripts (src/layers/redis/presence.ts), put
-- in front of each. KEYS: the group's sorted set (connection id -> last heartbeat),
-- info hash (connection id -> "<processId>|<userId>|<username>") and users hash
-- (user id -> connections in the group); one hash slot through the {G} tag.
local function uidOf(info) return string.match(info, '^[^|]*|([^|]*)|') end
local function nameOf(info) return string.match(info, '^[^|]*|[^|]*|(.*)$') end
-- A connection of the user came: publishes the enter event when it is the first.
local function added(info, channel, group)
  local uid = uidOf(info)
  if redis.call('HINCRBY', KEYS[3], uid, 1) == 1 then
    redis.call('PUBLISH', channel, 'j|' .. group .. '|' .. uid .. '|' .. nameOf(info))
    return 1
  end
  return 0
end
-- A connection of the user went: publishes the leave event when it was the last.
local function removed(info, channel, group)
  local uid = uidOf(info)
  if redis.call('HINCRBY', KEYS[3], uid, -1) <= 0 then
    redis.call('HDEL', KEYS[3], uid)
    redis.call('PUBLISH', channel, 'l|' .. group .. '|' .. uid .. '|' .. nameOf(info))
    return 1
  end
  return 0
end
-- Removes the connections whose last heartbeat is older than cutoff.
local function sweep(cutoff, channel, group)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)) do
    redis.call('ZREM', KEYS[1], id)
    local info = redis.call('HGET', KEYS[2], id)
    if info then
      redis.call('HDEL', KEYS[2], id)
      removed(info, channel, group)
    end
  end
end
