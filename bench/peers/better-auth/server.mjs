// Minimal better-auth HTTP server (Node's http module + better-auth/node's toNodeHandler).
// Routes: everything under /api/auth/* (sign-in: POST /api/auth/sign-in/email,
// session: GET /api/auth/get-session, liveness: GET /api/auth/ok). Anything else is 404.
// Env: see auth.mjs (PEER_DB, PEER_PORT, PEER_HOST, ...). Run setup.sh first (schema + user).
import http from "node:http";
import { toNodeHandler } from "better-auth/node";
import { createAuth, port, host, dbUrl, baseURL } from "./auth.mjs";

const { auth, db } = await createAuth();
const handler = toNodeHandler(auth);

const server = http.createServer((req, res) => {
  if (req.url && req.url.startsWith("/api/auth")) return handler(req, res);
  res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
});
server.keepAliveTimeout = 65_000;

server.listen(port, host, () => {
  const redacted = dbUrl.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@");
  console.log(
    `better-auth peer listening on http://${host}:${port} (baseURL ${baseURL}, ${db.kind} ${redacted}, pid ${process.pid})`,
  );
});

let stopping = false;
function stop(sig) {
  if (stopping) return;
  stopping = true;
  console.log(`received ${sig}, shutting down`);
  server.close(async () => {
    try {
      await db.close();
    } finally {
      process.exit(0);
    }
  });
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
