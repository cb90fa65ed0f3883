// The token-issuance peer: npm oidc-provider (pinned in package.json) issuing
// RS256 JWT access tokens by OAuth client_credentials, as configured in its
// documentation (features.clientCredentials + resourceIndicators with a JWT
// resource server). One client: bench / bench-secret-0123456789 (Basic auth).
//   PORT=8091 node server.mjs        → POST /token grant_type=client_credentials
// The signing key is generated at start (RSA 2048); tokens are not stored
// (JWT access tokens are stateless in oidc-provider).
import Provider from "oidc-provider";
import { exportJWK, generateKeyPair } from "jose";

const port = Number(process.env.PORT || 8091);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: "RS256", use: "sig", kid: "bench" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "bench",
      client_secret: "bench-secret-0123456789",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [jwk] },
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "urn:identsphere:bench",
      getResourceServerInfo: () => ({
        scope: "api",
        audience: "urn:identsphere:bench",
        accessTokenTTL: 30 * 24 * 3600,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      }),
      useGrantedResource: () => true,
    },
    devInteractions: { enabled: false },
  },
});
provider.proxy = false;
provider.listen(port, "127.0.0.1", () => console.log(`oidc-provider listening on ${issuer}`));
