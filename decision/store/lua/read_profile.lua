-- A profile's memberships and attributes (one hash) and its cap/contact-policy counters, in one round trip.
-- KEYS[1]: ib:m:{<profile>} (HASH), KEYS[2]: ib:c:{<profile>} (HASH): one hash tag, one slot.
-- Returns {membership fields and values, counter fields and values} (HGETALL replies).
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
