// A test EHR for SMART App Launch 2.x, on 127.0.0.1, made of real parts: the npm package
// oidc-provider as the EHR's authorization server (issuer http://127.0.0.1:<port>, its
// routes at the root: /auth, /token, /jwks, /.well-known/openid-configuration), a small FHIR
// server at /fhir (and /fhir-plain, one whose smart-configuration offers plain PKCE), an EHR
// page that frames the app (/ehr), and control endpoints for the tests (/control).
// Usage: node smart_ehr.mjs CONFIG, CONFIG a JSON object (or the path of a file holding one),
// else the environment variable SMART_EHR_CONFIG. Its fields:
//   port                0 (the default) for a free one
//   clients             [{client_id, redirect_uris, token_endpoint_auth_method: "none"} (public)
//                        or {client_id, client_secret, redirect_uris, ...} (confidential)]
//   accounts            [{sub, fhirUser: "Practitioner/123", name}]
//   patients            {id: [{system, value}, ...]}: the Patient resources the FHIR server has
//   standalone_context  {patient, ...}: the context a standalone launch (scope launch/patient,
//                       no launch parameter) gets; POST /control/standalone changes it
//   id_token_ttl        seconds, default 3600
// The authorization server requires PKCE (S256, the only method oidc-provider 9 has) and an
// `aud` naming one of the FHIR bases; `launch` must name a launch made by POST /control/launch.
// Signing in goes through oidc-provider's own development forms: login (any password), consent.
// Control endpoints (JSON bodies):
//   POST /control/launch      {patient, encounter?, need_patient_banner?, smart_style_url?,
//                             appContext?} -> {"launch": id}; an authorization request with
//                             scope `launch` and that launch gets this context in its token
//                             response (need_patient_banner true unless given)
//   POST /control/standalone  {patient, ...} -> the standalone context from now on
//   POST /control/next-id-token  {claim: value, ..., exp_offset?, drop?, unpublished_key?}:
//                             the next token response's id_token is re-signed with those claims
//                             (exp_offset: exp = now + offset, iat before it; drop: true leaves
//                             the id_token out, a list of names deletes those claims;
//                             unpublished_key: signed by a key the JWKS does not hold, same kid)
//   POST /control/reset       forgets launches, codes and tampering; standalone back to config
// FHIR (base /fhir, or /fhir-plain): GET .well-known/smart-configuration, GET metadata, and
// GET Patient/ID (a Bearer access token of this provider, else 401; unknown id 404).
// EHR pages (no CSP, no X-Frame-Options):
//   GET /ehr?launch_url=URL&iss=ISS&launch=ID  a patient banner and URL?iss=ISS&launch=ID in
//                             <iframe title="Belong">; iss defaults to the /fhir base
//   GET /ehr/launch?patient=ID&app=URL (and iss, encounter, appContext, smart_style_url,
//                             need_patient_banner=false)  a new launch, then 302 to /ehr
// Prints one line when it listens: {"ready": true, "origin": ..., "issuer": ..., "port": ...}.
import { createPrivateKey, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

import Provider, { errors } from "oidc-provider";

const source = process.argv[2] ?? process.env.SMART_EHR_CONFIG;
if (!source) {
  console.error("usage: node smart_ehr.mjs CONFIG (JSON, or the path of a JSON file)");
  process.exit(2);
}
const config = JSON.parse(source.trim().startsWith("{") ? source : readFileSync(source, "utf8"));

const SCOPES = [
  "openid",
  "fhirUser",
  "launch",
  "launch/patient",
  "offline_access",
  "patient/Patient.rs",
];
const CAPABILITIES = [
  "launch-ehr",
  "launch-standalone",
  "client-public",
  "client-confidential-symmetric",
  "context-ehr-patient",
  "context-standalone-patient",
  "sso-openid-connect",
  "context-banner",
  "context-style",
  "permission-v2",
];
const CONTEXT_FIELDS = [
  "patient",
  "encounter",
  "need_patient_banner",
  "smart_style_url",
  "appContext",
];

function rsaSigningKey() {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = privateKey.export({ format: "jwk" });
  return { ...jwk, alg: "RS256", use: "sig", kid: `rs256-${randomBytes(6).toString("hex")}` };
}

const signingJwk = rsaSigningKey();
const unpublishedJwk = { ...rsaSigningKey(), kid: signingJwk.kid };
const accounts = new Map((config.accounts ?? []).map((account) => [account.sub, account]));
const patients = config.patients ?? {};

const server = createServer();
await new Promise((resolve) => server.listen(config.port ?? 0, "127.0.0.1", resolve));
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;
const issuer = origin;
const fhirBases = { [`${origin}/fhir`]: ["S256"], [`${origin}/fhir-plain`]: ["plain", "S256"] };

// What the tests set through /control, and what the provider remembers between requests.
const state = {
  launches: new Map(), // launch id -> context
  codeContexts: new Map(), // authorization code -> context
  standalone: config.standalone_context ?? null,
  nextIdToken: null,
};

const provider = new Provider(issuer, {
  clients: config.clients ?? [],
  jwks: { keys: [signingJwk] },
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    if (account === undefined) return undefined;
    return { accountId: sub, claims: async () => ({ ...account, sub }) };
  },
  scopes: SCOPES,
  claims: { openid: ["sub"], fhirUser: ["fhirUser"], profile: ["name"] },
  // The fhirUser scope's claim in the id_token, as SMART's sso-openid-connect has it.
  conformIdTokenClaims: false,
  extraParams: {
    launch(_ctx, value) {
      if (value !== undefined && !state.launches.has(value)) {
        throw new errors.InvalidRequest("launch is not a launch of this EHR");
      }
    },
    aud(_ctx, value) {
      if (!(value in fhirBases)) {
        throw new errors.InvalidRequest("aud must be the FHIR base URL of this EHR");
      }
    },
  },
  clientAuthMethods: ["none", "client_secret_basic", "client_secret_post"],
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
    RefreshToken: 3600,
  },
});

/** The launch context an authorization request earns: the EHR launch's, or standalone's. */
function launchContext(params) {
  const scopes = new Set((params.scope ?? "").split(" "));
  if (params.launch !== undefined && scopes.has("launch")) {
    return state.launches.get(params.launch);
  }
  if (params.launch === undefined && scopes.has("launch/patient") && state.standalone) {
    return state.standalone;
  }
  return undefined;
}

function withDefaults(context) {
  const picked = { need_patient_banner: true };
  for (const field of CONTEXT_FIELDS) {
    if (context[field] !== undefined) picked[field] = context[field];
  }
  return picked;
}

provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route;
  if ((route === "authorization" || route === "resume") && ctx.status >= 300 && ctx.status < 400) {
    const code = new URL(ctx.response.get("location"), origin).searchParams.get("code");
    const context = code && launchContext(ctx.oidc.params);
    if (context) state.codeContexts.set(code, withDefaults(context));
  } else if (route === "token" && ctx.status === 200 && ctx.body && typeof ctx.body === "object") {
    if (ctx.oidc.params.grant_type === "authorization_code") {
      const context = state.codeContexts.get(ctx.oidc.params.code);
      state.codeContexts.delete(ctx.oidc.params.code);
      if (context) Object.assign(ctx.body, context);
    }
    if (state.nextIdToken && ctx.body.id_token) {
      const tampering = state.nextIdToken;
      state.nextIdToken = null;
      if (tampering.drop === true) delete ctx.body.id_token;
      else ctx.body.id_token = tamperedIdToken(ctx.body.id_token, tampering);
    }
  }
});

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
const decoded = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));

/** The id_token with claims overridden, re-signed RS256 under the published kid. */
function tamperedIdToken(idToken, { exp_offset, drop, unpublished_key, ...claims }) {
  const [headerPart, payloadPart] = idToken.split(".");
  const header = { ...decoded(headerPart), alg: "RS256", kid: signingJwk.kid };
  const payload = { ...decoded(payloadPart), ...claims };
  if (exp_offset !== undefined) {
    const now = Math.floor(Date.now() / 1000);
    payload.exp = now + exp_offset;
    payload.iat = Math.min(now, payload.exp - 60);
    if (payload.auth_time !== undefined) {
      payload.auth_time = Math.min(payload.auth_time, payload.iat);
    }
  }
  for (const name of Array.isArray(drop) ? drop : []) delete payload[name];
  const signingInput = `${base64url(header)}.${base64url(payload)}`;
  const jwk = unpublished_key ? unpublishedJwk : signingJwk;
  const key = createPrivateKey({ key: jwk, format: "jwk" });
  return `${signingInput}.${sign("sha256", Buffer.from(signingInput), key).toString("base64url")}`;
}

// The FHIR servers, the EHR page and the control endpoints; everything else is the provider's.

function send(res, status, body, headers = {}) {
  const json = typeof body !== "string";
  res.writeHead(status, {
    "content-type": json ? "application/json" : "text/html; charset=utf-8",
    "cache-control": "no-store",
    ...headers,
  });
  res.end(json ? JSON.stringify(body) : body);
}

const fhirHeaders = {
  "content-type": "application/fhir+json",
  "access-control-allow-origin": "*",
  "access-control-allow-headers": "authorization, accept",
};

function sendFhir(res, status, resource, headers = {}) {
  send(res, status, resource, { ...fhirHeaders, ...headers });
}

function outcome(code, diagnostics) {
  return {
    resourceType: "OperationOutcome",
    issue: [{ severity: "error", code, diagnostics }],
  };
}

async function jsonBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString("utf8");
  const body = text ? JSON.parse(text) : {};
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new SyntaxError("the body must be a JSON object");
  }
  return body;
}

let discovery;
async function providerDiscovery() {
  discovery ??= await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  return discovery;
}

async function smartConfiguration(base) {
  const found = await providerDiscovery();
  return {
    issuer: found.issuer,
    jwks_uri: found.jwks_uri,
    authorization_endpoint: found.authorization_endpoint,
    token_endpoint: found.token_endpoint,
    userinfo_endpoint: found.userinfo_endpoint,
    grant_types_supported: found.grant_types_supported,
    code_challenge_methods_supported: fhirBases[base],
    token_endpoint_auth_methods_supported: found.token_endpoint_auth_methods_supported,
    scopes_supported: found.scopes_supported,
    response_types_supported: ["code"],
    capabilities: CAPABILITIES,
  };
}

function capabilityStatement(base) {
  return {
    resourceType: "CapabilityStatement",
    status: "active",
    date: "2024-01-01",
    kind: "instance",
    fhirVersion: "4.0.1",
    format: ["json"],
    implementation: { description: "Belong's test EHR", url: base },
    rest: [
      {
        mode: "server",
        security: {
          service: [
            {
              coding: [
                {
                  system: "http://terminology.hl7.org/CodeSystem/restful-security-service",
                  code: "SMART-on-FHIR",
                },
              ],
            },
          ],
        },
        resource: [{ type: "Patient", interaction: [{ code: "read" }] }],
      },
    ],
  };
}

async function handleFhir(req, res, base, path) {
  if (req.method === "OPTIONS") return send(res, 204, "", fhirHeaders);
  if (req.method !== "GET") return sendFhir(res, 405, outcome("not-supported", "only GET"));
  if (path === "/.well-known/smart-configuration") {
    return send(res, 200, await smartConfiguration(base), { "access-control-allow-origin": "*" });
  }
  if (path === "/metadata") return sendFhir(res, 200, capabilityStatement(base));
  const read = /^\/Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(path);
  if (!read) return sendFhir(res, 404, outcome("not-found", "no such endpoint"));
  const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "");
  const token = bearer && (await provider.AccessToken.find(bearer[1]));
  if (!token) {
    return sendFhir(res, 401, outcome("login", "a valid Bearer access token is required"), {
      "www-authenticate": 'Bearer error="invalid_token"',
    });
  }
  const [, id] = read;
  if (!Object.hasOwn(patients, id)) {
    return sendFhir(res, 404, outcome("not-found", "no such Patient"));
  }
  return sendFhir(res, 200, { resourceType: "Patient", id, identifier: patients[id] });
}

const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

/** The app's launch URL, if value is an http(s) URL; else null. */
function appUrl(value) {
  let app;
  try {
    app = new URL(value ?? "");
  } catch {
    return null;
  }
  return app.protocol === "http:" || app.protocol === "https:" ? app : null;
}

function ehrPage(query) {
  const app = appUrl(query.get("launch_url"));
  if (app === null) return null;
  app.searchParams.set("iss", query.get("iss") ?? `${origin}/fhir`);
  const launch = query.get("launch");
  if (launch) app.searchParams.set("launch", launch);
  const patient = state.launches.get(launch)?.patient;
  const identifiers = (patients[patient] ?? []).map((i) => `${i.system}|${i.value}`).join(", ");
  const banner = patient
    ? `<strong>Patient</strong> <span class="patient-id">${escapeHtml(patient)}</span>` +
      (identifiers ? ` <span class="identifiers">${escapeHtml(identifiers)}</span>` : "")
    : "No patient in context";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Test EHR</title>
<style>
body { margin: 0; font-family: sans-serif; }
.patient-banner { padding: 0.5rem 1rem; background: #1d3557; color: #fff; }
iframe { display: block; width: 100%; height: calc(100vh - 3rem); border: 0; }
</style>
</head>
<body>
<header class="patient-banner" aria-label="EHR patient banner">${banner}</header>
<main>
<iframe title="Belong" src="${escapeHtml(app.href)}"></iframe>
</main>
</body>
</html>
`;
}

function newLaunch(context) {
  if (typeof context.patient !== "string" || !context.patient) {
    throw new SyntaxError("patient is required: the id of the Patient in context");
  }
  const launch = randomBytes(12).toString("base64url");
  state.launches.set(launch, context);
  return launch;
}

async function handleControl(req, res, path) {
  if (req.method !== "POST") return send(res, 405, { error: "POST only" });
  const body = await jsonBody(req);
  switch (path) {
    case "/control/launch":
      return send(res, 200, { launch: newLaunch(body) });
    case "/control/standalone":
      state.standalone = body;
      return send(res, 200, { standalone: body });
    case "/control/next-id-token":
      state.nextIdToken = body;
      return send(res, 200, { next_id_token: body });
    case "/control/reset":
      state.launches.clear();
      state.codeContexts.clear();
      state.nextIdToken = null;
      state.standalone = config.standalone_context ?? null;
      return send(res, 200, { reset: true });
    default:
      return send(res, 404, { error: "no such control endpoint" });
  }
}

function handleEhr(req, res, url) {
  if (url.pathname === "/ehr") {
    const page = ehrPage(url.searchParams);
    if (page === null) return send(res, 400, { error: "launch_url must be an http(s) URL" });
    return send(res, 200, page);
  }
  if (url.pathname === "/ehr/launch") {
    const q = url.searchParams;
    if (appUrl(q.get("app")) === null) {
      return send(res, 400, { error: "app must be an http(s) URL" });
    }
    const context = { patient: q.get("patient") };
    for (const field of ["encounter", "smart_style_url", "appContext"]) {
      if (q.has(field)) context[field] = q.get(field);
    }
    if (q.has("need_patient_banner")) {
      context.need_patient_banner = q.get("need_patient_banner") !== "false";
    }
    const launch = newLaunch(context);
    const page = new URL("/ehr", origin);
    page.searchParams.set("launch_url", q.get("app") ?? "");
    page.searchParams.set("iss", q.get("iss") ?? `${origin}/fhir`);
    page.searchParams.set("launch", launch);
    res.writeHead(302, { location: page.href, "cache-control": "no-store" });
    return res.end();
  }
  return send(res, 404, { error: "no such EHR page" });
}

const providerCallback = provider.callback();
server.on("request", async (req, res) => {
  const url = new URL(req.url, origin);
  const fhir = /^\/(fhir|fhir-plain)(\/.*)?$/.exec(url.pathname);
  try {
    if (fhir) return await handleFhir(req, res, `${origin}/${fhir[1]}`, fhir[2] ?? "/");
    if (url.pathname.startsWith("/control/")) return await handleControl(req, res, url.pathname);
    if (url.pathname === "/ehr" || url.pathname.startsWith("/ehr/")) {
      return handleEhr(req, res, url);
    }
  } catch (error) {
    if (error instanceof SyntaxError) return send(res, 400, { error: error.message });
    throw error;
  }
  return providerCallback(req, res);
});

console.log(JSON.stringify({ ready: true, origin, issuer, port }));
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
