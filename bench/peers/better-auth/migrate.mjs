// Offline schema migration + seed for the benchmark peer (no @better-auth/cli, no downloads).
// Uses better-auth's own programmatic migrator (getMigrations from "better-auth/db/migration",
// the same code the CLI's `migrate` runs for the built-in Kysely adapter), then creates the
// bench user through the sign-up API in-process, so the password hash is better-auth's default.
// Idempotent: already-present tables/columns and an existing user are left alone.
// Env: PEER_DB (see auth.mjs).
import { getMigrations } from "better-auth/db/migration";
import { createAuth, dbUrl } from "./auth.mjs";

const EMAIL = "bench@example.com";
const PASSWORD = "correct horse battery staple";
const NAME = "Bench User";

const { auth, options, db } = await createAuth();
try {
  const { toBeCreated, toBeAdded, runMigrations } = await getMigrations(options);
  if (toBeCreated.length || toBeAdded.length) {
    console.log(
      `migrate: creating tables [${toBeCreated.map((t) => t.table).join(", ")}]` +
        (toBeAdded.length ? `, adding columns to [${toBeAdded.map((t) => t.table).join(", ")}]` : ""),
    );
    await runMigrations();
  } else {
    console.log("migrate: schema already up to date");
  }

  const ctx = await auth.$context;
  const existing = await ctx.internalAdapter.findUserByEmail(EMAIL);
  if (existing) {
    console.log(`seed: ${EMAIL} already exists (id ${existing.user.id})`);
  } else {
    const res = await auth.api.signUpEmail({ body: { email: EMAIL, password: PASSWORD, name: NAME } });
    console.log(`seed: created ${EMAIL} (id ${res.user.id})`);
  }
  console.log(`ok: ${dbUrl.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@")}`);
} finally {
  await db.close();
}
