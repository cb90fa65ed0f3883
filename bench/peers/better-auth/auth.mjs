// Shared better-auth configuration for the benchmark peer (server.mjs and migrate.mjs).
//
// Environment:
//   PEER_DB          sqlite:/path/file.db | sqlite:///abs/path.db | postgres://user@host:port/db
//                    (default sqlite:./peer.db)
//   PEER_PORT        port the server listens on and that baseURL uses (default 3000)
//   PEER_HOST        interface to bind (default 127.0.0.1)
//   PEER_PG_POOL_MAX pg Pool size (default 10, node-postgres' own default)
//   PEER_SQLITE_WAL  1 = journal_mode=WAL + synchronous=NORMAL (what IdentSphere's SQLite store
//                    uses); default 0 = better-auth's documented setup, a plain
//                    `new Database(file)` (rollback journal, synchronous=FULL)
//   PEER_LOG_LEVEL   better-auth logger level: debug|info|warn|error (default warn)
//
// Everything else is better-auth's default, notably password hashing (node:crypto scrypt,
// N=16384 r=16 p=1 dkLen=64) and the session settings (DB-backed session, 7-day expiry,
// no cookie cache, so every get-session reads the database).
import { betterAuth } from "better-auth";

export const port = Number(process.env.PEER_PORT || 3000);
export const host = process.env.PEER_HOST || "127.0.0.1";
export const dbUrl = process.env.PEER_DB || "sqlite:./peer.db";
export const baseURL = `http://localhost:${port}`;

async function openDatabase(url) {
  if (url.startsWith("postgres://") || url.startsWith("postgresql://")) {
    const { default: pg } = await import("pg");
    const pool = new pg.Pool({
      connectionString: url,
      max: Number(process.env.PEER_PG_POOL_MAX || 10),
    });
    return { kind: "postgres", database: pool, close: () => pool.end() };
  }
  if (url.startsWith("sqlite:")) {
    let file = url.slice("sqlite:".length);
    if (file.startsWith("//")) file = file.slice(2); // sqlite:///abs/path.db -> /abs/path.db
    if (!file) throw new Error(`PEER_DB has no file path: ${url}`);
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(file);
    if (process.env.PEER_SQLITE_WAL === "1") {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
    }
    return { kind: "sqlite", database: db, close: () => db.close(), file };
  }
  throw new Error(`PEER_DB must start with sqlite: or postgres://, got: ${url}`);
}

export async function createAuth() {
  const db = await openDatabase(dbUrl);
  const options = {
    appName: "identsphere-bench-peer",
    // Fixed secret and baseURL so it starts non-interactively and cookies are stable.
    secret: "identsphere-bench-peer-secret-0123456789abcdef0123456789abcdef",
    baseURL,
    basePath: "/api/auth",
    database: db.database,
    emailAndPassword: {
      enabled: true,
      requireEmailVerification: false,
    },
    // IdentSphere's limits are off in load runs, so better-auth's are off too.
    rateLimit: { enabled: false },
    // baseURL's origin is trusted anyway; also trust the 127.0.0.1 spelling of the same port
    // so a load generator can send either as Origin.
    trustedOrigins: [baseURL, `http://127.0.0.1:${port}`],
    telemetry: { enabled: false },
    logger: { level: process.env.PEER_LOG_LEVEL || "warn" },
  };
  const auth = betterAuth(options);
  return { auth, options, db };
}
