-- Pushes one message onto a channel's list (src/layers/redis/queues.ts).
-- KEYS[1]: the list. ARGV: now (ms), capacity, list ttl (ms), the item
-- ("<expires-at ms> <json>"). Drops expired items from the head first, then pushes
-- unless the list is full. Returns 1 when pushed, 0 when full.
local now = tonumber(ARGV[1])
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local stamp = tonumber(string.match(head, '^%d+'))
  if stamp and stamp > now then break end
  redis.call('LPOP', KEYS[1])
end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
