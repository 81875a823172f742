-- ARGV: cutoff, events channel, group. Returns the info of every live connection.
sweep(ARGV[1], ARGV[2], ARGV[3])
return redis.call('HVALS', KEYS[2])
