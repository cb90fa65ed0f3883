// Sanity check of a running peer under concurrent load (no dependencies; not the benchmark).
//   node check.mjs [BASE=http://127.0.0.1:3000] [CONNECTIONS=16] [SECONDS=10] [SIGNIN_CONNECTIONS=4]
// Signs in once, then CONNECTIONS keep-alive workers loop GET /api/auth/get-session for SECONDS,
// counting a request as OK only if it is 200 AND the body names the bench user (an invalid or
// missing cookie also answers 200, with the body `null`). Then SIGNIN_CONNECTIONS workers loop
// POST /api/auth/sign-in/email for SECONDS. Exits 1 if any request failed.
import http from "node:http";

const base = process.argv[2] || "http://127.0.0.1:3000";
const conns = Number(process.argv[3] || 16);
const secs = Number(process.argv[4] || 10);
const signinConns = Number(process.argv[5] || 4);
const EMAIL = "bench@example.com";
const body = JSON.stringify({ email: EMAIL, password: "correct horse battery staple" });
const origin = base;

function request(agent, method, path, headers, payload) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), { method, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    if (payload) req.end(payload);
    else req.end();
  });
}

const signInHeaders = { "content-type": "application/json", origin, "content-length": Buffer.byteLength(body) };

async function loop(n, step) {
  const lat = [];
  let ok = 0, bad = 0;
  const firstErrors = [];
  const deadline = Date.now() + secs * 1000;
  await Promise.all(
    Array.from({ length: n }, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      while (Date.now() < deadline) {
        const t = process.hrtime.bigint();
        try {
          const err = await step(agent);
          if (err) { bad++; if (firstErrors.length < 3) firstErrors.push(err); }
          else ok++;
        } catch (e) {
          bad++;
          if (firstErrors.length < 3) firstErrors.push(String(e));
        }
        lat.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      agent.destroy();
    }),
  );
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1) : "-");
  return { ok, bad, rps: (ok / secs).toFixed(1), p50: q(0.5), p99: q(0.99), firstErrors };
}

const first = await request(undefined, "POST", "/api/auth/sign-in/email", signInHeaders, body);
const setCookie = [].concat(first.headers["set-cookie"] || []);
const cookie = setCookie.map((c) => c.split(";")[0]).join("; ");
if (first.status !== 200 || !cookie.startsWith("better-auth.session_token=")) {
  console.error("sign-in failed:", first.status, first.body, setCookie);
  process.exit(1);
}
console.log(`sign-in: 200, cookie ${cookie.slice(0, 40)}...`);

const s = await loop(conns, async (agent) => {
  const r = await request(agent, "GET", "/api/auth/get-session", { cookie });
  if (r.status !== 200) return `status ${r.status}: ${r.body.slice(0, 200)}`;
  const j = JSON.parse(r.body);
  if (!j || j.user?.email !== EMAIL) return `200 but no user: ${r.body.slice(0, 200)}`;
});
console.log(`get-session x${conns} conns, ${secs}s: ok=${s.ok} bad=${s.bad} rps=${s.rps} p50=${s.p50}ms p99=${s.p99}ms`, s.firstErrors);

const l = await loop(signinConns, async (agent) => {
  const r = await request(agent, "POST", "/api/auth/sign-in/email", signInHeaders, body);
  if (r.status !== 200) return `status ${r.status}: ${r.body.slice(0, 200)}`;
  if (!String(r.headers["set-cookie"] || "").includes("better-auth.session_token=")) return "200 but no session cookie";
});
console.log(`sign-in x${signinConns} conns, ${secs}s: ok=${l.ok} bad=${l.bad} rps=${l.rps} p50=${l.p50}ms p99=${l.p99}ms`, l.firstErrors);

process.exit(s.bad || l.bad ? 1 : 0);
