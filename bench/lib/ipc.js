// The command loop of a bench server process, driven by run.js over IPC.

/**
 * Answers each `{ id, cmd }` message with `handle(msg)`'s value (or its error), exits when the
 * parent goes away, and tells the parent the server is ready on `port`.
 */
export function serveCommands (handle, port) {
  process.on('message', (msg) => {
    handle(msg).then(
      (value) => process.send({ id: msg.id, value }),
      (err) => process.send({ id: msg.id, error: String(err?.stack ?? err) })
    )
  })
  // The parent going away must never leave this server behind.
  process.on('disconnect', () => process.exit(0))
  process.send({ ready: true, port })
}
