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
 * end ('1' or '0'), MAXLEN, max age in ms (0: none), stream ttl, meta ttl, idempotency ttl, the
 * broker's node id, its publish sequence number, and '1' for the EVAL sent after a NOSCRIPT.
 * Assigns o = head o + 1 and t = max(server time, head t), appends with the id t-o, trims by count
 * and by age, and returns the id (a retry with a known idempotency key returns the first one's).
 *
 * A command re-sent by the client after a reconnect (its reply was lost) is recognised by its node
 * and sequence number: the meta field `n:<node>` holds "<seq> <id>" of the node's last publish
 * applied to the topic, and each entry its token "<node> <seq>" in field `p`. One connection's
 * commands run in order, so a node's sequence numbers applied to a topic only grow: one not above
 * the recorded one was applied already. The recorded one answers its id; an older one is looked
 * for among the topic's newest MAXLEN entries, and answers an error when it is not there; except for
 * an EVAL sent after NOSCRIPT: the EVALSHA did not run, and another process may have loaded the
 * script meanwhile, so that a later publish of this node ran first. Not found, it is a new event
 * (appended; the node's field keeps the later number). Found, it is a re-send whose first run
 * happened before a restart that flushed the scripts, and answers the first id.
 * A node's field is added on its first publish to the topic; then, with more than 16 nodes, the
 * fields of nodes that have not published to it for the idempotency ttl are dropped.
 */
export const PUBLISH = script(HEAD + `
local s, m, r = KEYS[1], KEYS[2], KEYS[3]
if r then
  local prior = redis.call('GET', r)
  if prior then return prior end
end
local nf, seq, token = 'n:' .. ARGV[9], tonumber(ARGV[10]), ARGV[9] .. ' ' .. ARGV[10]
local mine = redis.call('HGET', m, nf)
local keep
if mine then
  local space = string.find(mine, ' ', 1, true)
  local last = tonumber(string.sub(mine, 1, space - 1))
  if seq <= last then
    local lastId = string.sub(mine, space + 1)
    if seq == last then return lastId end
    for _, entry in ipairs(redis.call('XREVRANGE', s, '+', '-', 'COUNT', ARGV[4])) do
      local f = entry[2]
      if f[#f - 1] == 'p' and f[#f] == token then return entry[1] end
    end
    if ARGV[11] ~= '1' then return redis.error_reply('ERR fastify-sse-stream RESENT') end
    keep = mine
  end
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
fields[#fields + 1] = 'p'
fields[#fields + 1] = token
redis.call('XADD', s, 'MAXLEN', '~', ARGV[4], id, unpack(fields))
local age = tonumber(ARGV[5])
if age > 0 then redis.call('XTRIM', s, 'MINID', '~', string.format('%.0f', t - age)) end
if not mine and redis.call('HLEN', m) > 18 then
  local old, all = t - tonumber(ARGV[8]), redis.call('HGETALL', m)
  for i = 1, #all, 2 do
    local v = all[i + 1]
    if string.sub(all[i], 1, 2) == 'n:' then
      local space = string.find(v, ' ', 1, true)
      local dash = string.find(v, '-', space, true)
      if tonumber(string.sub(v, space + 1, dash - 1)) < old then redis.call('HDEL', m, all[i]) end
    end
  end
end
redis.call('HSET', m, 'o', string.format('%.0f', o), 't', string.format('%.0f', t), nf, keep or (ARGV[10] .. ' ' .. id))
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
