-- Forgets a dead process unless it heartbeat since the sweeper judged it dead.
-- KEYS: the process registry, the process's group set. ARGV: process id, cutoff.
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if seen and tonumber(seen) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
