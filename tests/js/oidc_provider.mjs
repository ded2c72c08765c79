// A real OpenID provider (the npm package oidc-provider) for the sign-in tests, on 127.0.0.1.
// Usage: node oidc_provider.mjs CONFIG, CONFIG a JSON object (or the path of a file holding
// one), else the environment variable OIDC_PROVIDER_CONFIG. Its fields:
//   port                 0 (the default) for a free one
//   issuer               default http://127.0.0.1:<port>
//   clients              [{client_id, client_secret, redirect_uris, ...client metadata}]
//   accounts             [{sub, claims: {name, email, belong_role, ...}}]
//   claims               scope -> claim names; openid's land in every id_token
//   client_auth_methods  default client_secret_basic and client_secret_post
//   id_token_ttl         seconds, default 3600
// Signs id_tokens with an RS256 and an ES256 key made at start (a client picks ES256 with
// id_token_signed_response_alg). PKCE is required of every client. Signing in goes through
// oidc-provider's own development forms: login (any password) then consent.
// Prints one line when it listens: {"ready": true, "issuer": ..., "port": ...}.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

import Provider from "oidc-provider";

const source = process.argv[2] ?? process.env.OIDC_PROVIDER_CONFIG;
if (!source) {
  console.error("usage: node oidc_provider.mjs CONFIG (JSON, or the path of a JSON file)");
  process.exit(2);
}
const config = JSON.parse(source.trim().startsWith("{") ? source : readFileSync(source, "utf8"));

function signingKey(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  const jwk = privateKey.export({ format: "jwk" });
  return { ...jwk, alg, use: "sig", kid: `${alg.toLowerCase()}-${randomBytes(6).toString("hex")}` };
}

const accounts = new Map((config.accounts ?? []).map((account) => [account.sub, account]));

const server = createServer();
await new Promise((resolve) => server.listen(config.port ?? 0, "127.0.0.1", resolve));
const { port } = server.address();
const issuer = config.issuer ?? `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: config.clients ?? [],
  jwks: {
    keys: [
      signingKey("rsa", { modulusLength: 2048 }, "RS256"),
      signingKey("ec", { namedCurve: "P-256" }, "ES256"),
    ],
  },
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    if (account === undefined) return undefined;
    return { accountId: sub, claims: async () => ({ ...account.claims, sub }) };
  },
  claims: config.claims ?? {
    openid: ["sub", "belong_role", "roles"],
    profile: ["name"],
    email: ["email", "email_verified"],
  },
  // The scopes' claims in the id_token too, as Keycloak's and Entra ID's role claims are.
  conformIdTokenClaims: false,
  clientAuthMethods: config.client_auth_methods ?? ["client_secret_basic", "client_secret_post"],
  responseTypes: ["code"],
  pkce: { required: () => true },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  features: { devInteractions: { enabled: true } },
  ttl: {
    IdToken: config.id_token_ttl ?? 3600,
    AccessToken: 600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
});
server.on("request", provider.callback());

console.log(JSON.stringify({ ready: true, issuer, port }));
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
