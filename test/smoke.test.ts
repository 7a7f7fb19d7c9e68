import t from 'tap'
import Fastify from 'fastify'
import sse from '../index.js'

t.test('streams a generator', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  app.get('/', (_req, reply) => reply.sse([{ data: 'x' }]))
  const res = await app.inject('/')
  // Every stream opens with its advertised heartbeat interval (15000 ms by default).
  t.equal(res.body, ': heartbeat=15000\ndata: x\n\n')
})
