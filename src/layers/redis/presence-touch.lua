-- Join and heartbeat. ARGV: now, cutoff, key ttl, events channel, group, then
-- (id, info) pairs. Returns one 0/1 per pair: 1 when it was the user's first connection.
local now, channel, group = ARGV[1], ARGV[4], ARGV[5]
local firsts = {}
for i = 6, #ARGV - 1, 2 do
  local id, info = ARGV[i], ARGV[i + 1]
  local prev = redis.call('HGET', KEYS[2], id)
  local first = 0
  if prev ~= info then
    redis.call('HSET', KEYS[2], id, info)
    if not prev then
      first = added(info, channel, group)
    elseif uidOf(prev) ~= uidOf(info) then
      removed(prev, channel, group)
      first = added(info, channel, group)
    end
  end
  redis.call('ZADD', KEYS[1], now, id)
  firsts[#firsts + 1] = first
end
sweep(ARGV[2], channel, group)
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ARGV[3]) end
return firsts
