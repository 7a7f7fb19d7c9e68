import { createHash } from 'node:crypto'

/** A Lua script and its SHA1, for EVALSHA (with EVAL when the server does not know it yet). */
export interface Script {
  readonly source: string
  readonly sha: string
}

function script (source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

// Lua numbers are doubles: `%.0f` prints a ms time or an offset whole (tostring would not).
// A topic's head {o, t}: from its meta hash, or from its stream's newest entry when the meta was
// evicted or expired (no false reset), or 0-0.
const HEAD = `
local function head (s, m)
  local o = redis.call('HGET', m, 'o')
  if o then return tonumber(redis.call('HGET', m, 't')), tonumber(o) end
  local last = redis.call('XREVRANGE', s, '+', '-', 'COUNT', 1)[1]
  if not last then return 0, 0 end
  local dash = string.find(last[1], '-', 1, true)
  return tonumber(string.sub(last[1], 1, dash - 1)), tonumber(string.sub(last[1], dash + 1))
end
`

/**
 * Publish: one round trip. KEYS: stream, meta[, idempotency]. ARGV: body, event JSON ('' for none),
 * end ('1' or '0'), MAXLEN, max age in ms (0: none), stream ttl, meta ttl, idempotency ttl.
 * Assigns o = head o + 1 and t = max(server time, head t), appends with the id t-o, trims by count
 * and by age, and returns the id (a retry with a known idempotency key returns the first one's).
 */
export const PUBLISH = script(HEAD + `
local s, m, r = KEYS[1], KEYS[2], KEYS[3]
if r then
  local prior = redis.call('GET', r)
  if prior then return prior end
end
local t, o = head(s, m)
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if ms > t then t = ms end
o = o + 1
local id = string.format('%.0f-%.0f', t, o)
local fields = { 'd', ARGV[1] }
if ARGV[2] ~= '' then
  fields[#fields + 1] = 'e'
  fields[#fields + 1] = ARGV[2]
end
if ARGV[3] == '1' then
  fields[#fields + 1] = 'x'
  fields[#fields + 1] = '1'
end
redis.call('XADD', s, 'MAXLEN', '~', ARGV[4], id, unpack(fields))
local age = tonumber(ARGV[5])
if age > 0 then redis.call('XTRIM', s, 'MINID', '~', string.format('%.0f', t - age)) end
redis.call('HSET', m, 'o', string.format('%.0f', o), 't', string.format('%.0f', t))
redis.call('PEXPIRE', s, ARGV[6])
redis.call('PEXPIRE', m, ARGV[7])
if r then redis.call('SET', r, id, 'PX', ARGV[8]) end
return id
`)

/**
 * After the reader reconnects: per topic (KEYS: stream and meta of each; ARGV: the last id read),
 * its head and whether the last entry read is still there. {t, o, 1|0} each.
 */
export const PROBE = script(HEAD + `
local out = {}
for i = 1, #ARGV do
  local s, m = KEYS[2 * i - 1], KEYS[2 * i]
  local t, o = head(s, m)
  local here = redis.call('XRANGE', s, ARGV[i], ARGV[i], 'COUNT', 1)[1] and 1 or 0
  out[i] = { string.format('%.0f', t), string.format('%.0f', o), here }
end
return out
`)

/**
 * Claim a topic's producer: KEYS: stream, claim. ARGV: this process's id, the claim's ttl in ms.
 * 1 when the claim is this process's (taken now, or already, as when a claim's answer was lost and
 * the call is repeated); 0 when another process holds it, or when the stream holds events (the
 * topic was produced, or is being produced: a producer never runs twice into one history).
 */
export const CLAIM = script(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[2]) == ARGV[1] then return 1 end
return 0
`)
