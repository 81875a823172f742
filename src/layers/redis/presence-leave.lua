-- ARGV: id, events channel, group. Returns nil, or {1 when it was the last, info}.
redis.call('ZREM', KEYS[1], ARGV[1])
local info = redis.call('HGET', KEYS[2], ARGV[1])
if not info then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
return { removed(info, ARGV[2], ARGV[3]), info }
