// An MCP server (Streamable HTTP, on the official TypeScript SDK) that
// accepts only access tokens Charter issued for it.
//
//   node server.mjs --issuer http://127.0.0.1:8080 [--port 8090]
//                   [--resource URL] [--scope SCOPE]
//
// or the environment variables CHARTER_ISSUER, PORT, MCP_RESOURCE,
// MCP_REQUIRED_SCOPE (flags win). Listens on 127.0.0.1 only; port 0 picks
// a free one. Once listening it prints one JSON line on stdout:
//   {"event":"listening","url":...,"resource":...,"resource_metadata":...,"issuer":...}
// and logs to stderr.
//
// What it does (see README.md):
// - RFC 9728: Protected Resource Metadata at
//   /.well-known/oauth-protected-resource/mcp (and at the root form), naming
//   Charter's issuer, byte for byte, as its one authorization server.
// - RFC 6750 / RFC 9728 §5.1: 401 with
//   WWW-Authenticate: Bearer resource_metadata="...", plus error="invalid_token"
//   when a token was presented and refused, or 403 insufficient_scope.
// - RFC 9068: the access token is a JWT with typ at+jwt, signed by a key in
//   Charter's JWK Set (jwks_uri from Charter's RFC 8414 metadata), whose iss
//   is the issuer exactly, whose aud contains this server's resource URL,
//   with exp (and the other RFC 9068 §2.2 claims).
// - RFC 9449 §7.1: a token bound to a key (cnf) is refused with the Bearer
//   scheme. This example does not verify DPoP proofs, so it accepts no
//   sender-constrained token at all.

import http from 'node:http';
import { parseArgs } from 'node:util';
import { createRemoteJWKSet, jwtVerify, errors as joseErrors } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import * as z from 'zod';

const MCP_PATH = '/mcp';
const PRM_PREFIX = '/.well-known/oauth-protected-resource';
/** Asymmetric algorithms only: never none, never HMAC (RFC 9068 §4). */
const ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'];
const METADATA_TIMEOUT_MS = 5000;

function usage(message) {
  process.stderr.write(
    `${message}\n` +
      'usage: node server.mjs --issuer URL [--port N] [--resource URL] [--scope SCOPE]\n' +
      '  --issuer    Charter\'s issuer, exactly as in its metadata (CHARTER_ISSUER)\n' +
      '  --port      port on 127.0.0.1, 0 for any free one (PORT, default 8090)\n' +
      '  --resource  this server\'s public MCP URL, when it is not\n' +
      '              http://127.0.0.1:PORT/mcp, e.g. behind a TLS proxy (MCP_RESOURCE)\n' +
      '  --scope     scope every token must carry; "" for none (MCP_REQUIRED_SCOPE,\n' +
      '              default mcp:tools)\n',
  );
  process.exit(2);
}

function configuration() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        issuer: { type: 'string' },
        port: { type: 'string' },
        resource: { type: 'string' },
        scope: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (e) {
    usage(e.message);
  }
  if (values.help) usage('An MCP server protected by Charter.');
  const issuer = values.issuer ?? process.env.CHARTER_ISSUER;
  if (!issuer) usage('missing --issuer (or CHARTER_ISSUER)');
  let issuerUrl;
  try {
    issuerUrl = new URL(issuer);
  } catch {
    usage(`--issuer ${JSON.stringify(issuer)} is not a URL`);
  }
  if (issuerUrl.search || issuerUrl.hash) usage('--issuer must have no query or fragment (RFC 8414 §2)');
  const portText = values.port ?? process.env.PORT ?? '8090';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`--port ${portText} is not a port`);
  const resource = values.resource ?? process.env.MCP_RESOURCE;
  if (resource !== undefined) {
    let url;
    try {
      url = new URL(resource);
    } catch {
      usage(`--resource ${JSON.stringify(resource)} is not a URL`);
    }
    // RFC 8707 §2 / RFC 9728 §1.2: absolute, no fragment (nor query here).
    if (url.hash || url.search || url.href !== resource) {
      usage(`--resource ${JSON.stringify(resource)} must be a normalized URL without query or fragment`);
    }
  }
  const scope = values.scope ?? process.env.MCP_REQUIRED_SCOPE ?? 'mcp:tools';
  return { issuer, port, resource, scope: scope === '' ? null : scope };
}

/** A refusal: the status and the WWW-Authenticate parameters to send. */
class Refusal extends Error {
  constructor(status, error, description) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

/**
 * Charter's RFC 8414 metadata (path-inserted well-known URL, §3.1), with its
 * issuer checked to be the configured one exactly (§3.3); then a JWK Set
 * fetcher for its jwks_uri, which caches the keys and fetches again (at
 * most every 30 s) when a token names a kid it does not have.
 */
function authorizationServer(issuer) {
  let pending = null;
  async function discover() {
    const url = new URL(issuer);
    const path = url.pathname === '/' ? '' : url.pathname;
    const metadataUrl = new URL(`/.well-known/oauth-authorization-server${path}`, url.origin);
    const response = await fetch(metadataUrl, {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(METADATA_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`${metadataUrl} answered ${response.status}`);
    const metadata = await response.json();
    if (metadata.issuer !== issuer) {
      throw new Error(`${metadataUrl} names issuer ${JSON.stringify(metadata.issuer)}, not ${JSON.stringify(issuer)}`);
    }
    if (typeof metadata.jwks_uri !== 'string') throw new Error(`${metadataUrl} has no jwks_uri`);
    log(`authorization server ${issuer}: keys at ${metadata.jwks_uri}`);
    return {
      metadata,
      keys: createRemoteJWKSet(new URL(metadata.jwks_uri), {
        timeoutDuration: METADATA_TIMEOUT_MS,
        cooldownDuration: 30_000,
        cacheMaxAge: 10 * 60_000,
      }),
    };
  }
  // Discovered on first use and kept; a failure is retried on the next request.
  return () => {
    pending ??= discover().catch((e) => {
      pending = null;
      throw e;
    });
    return pending;
  };
}

function log(message) {
  process.stderr.write(`[mcp-server] ${message}\n`);
}

/** The value of a WWW-Authenticate auth-param as a quoted-string. */
function quoted(value) {
  return `"${String(value).replace(/[\\"]/g, '\\$&')}"`;
}

/**
 * Verifies the access token of a request: returns the SDK's AuthInfo, or
 * throws a Refusal.
 */
async function verify(request, { issuer, resource, scope, server }) {
  const header = request.headers.authorization;
  if (header === undefined) throw new Refusal(401, null, 'no access token');
  const match = /^(\S+) +(\S+)$/.exec(header);
  const scheme = match?.[1].toLowerCase();
  if (scheme === 'dpop') {
    throw new Refusal(
      401,
      'invalid_token',
      'this server does not verify DPoP proofs; present a token that is not sender-constrained with the Bearer scheme',
    );
  }
  if (scheme !== 'bearer') throw new Refusal(400, 'invalid_request', 'use the Bearer scheme (RFC 6750 section 2.1)');
  const token = match[2];

  let as;
  try {
    as = await server();
  } catch (e) {
    log(`cannot reach the authorization server: ${e.message}`);
    throw new Refusal(503, null, 'the authorization server metadata is unavailable');
  }
  let payload;
  try {
    ({ payload } = await jwtVerify(token, as.keys, {
      issuer, // exact string comparison
      audience: resource, // aud (a string or an array) must contain it
      typ: 'at+jwt', // RFC 9068 §4; "application/at+jwt" is the same
      algorithms: ALGORITHMS,
      requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub', 'client_id', 'jti'],
    }));
  } catch (e) {
    if (e instanceof joseErrors.JOSEError) {
      const reason =
        e instanceof joseErrors.JWTExpired
          ? 'the token has expired'
          : e instanceof joseErrors.JWTClaimValidationFailed
            ? `the token's ${e.claim} claim is not acceptable: ${e.message}`
            : e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWSSignatureVerificationFailed
              ? 'the token is not signed by the authorization server'
              : `the token is not a valid access token: ${e.message}`;
      throw new Refusal(401, 'invalid_token', reason);
    }
    log(`cannot verify a token: ${e.message}`);
    throw new Refusal(503, null, 'the authorization server keys are unavailable');
  }
  // RFC 9449 §7.1: a DPoP-bound token must not be accepted as a bearer token.
  // (RFC 8705 certificate-bound tokens carry cnf too: the same holds.)
  if (payload.cnf !== undefined) {
    throw new Refusal(
      401,
      'invalid_token',
      'the token is sender-constrained (cnf); this server does not verify DPoP proofs and accepts bearer tokens only',
    );
  }
  const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
  if (scope && !scopes.includes(scope)) {
    throw new Refusal(403, 'insufficient_scope', `the token lacks the scope ${scope}`);
  }
  return {
    token,
    clientId: payload.client_id,
    scopes,
    expiresAt: payload.exp,
    resource: new URL(resource),
    extra: { sub: payload.sub, iss: payload.iss, aud: payload.aud, jti: payload.jti },
  };
}

/** The MCP server: a fresh one per request (stateless Streamable HTTP). */
function mcpServer() {
  const server = new McpServer({ name: 'charter-example-mcp-server', version: '1.0.0' });
  server.registerTool(
    'whoami',
    {
      title: 'Who am I',
      description: 'The subject, client and scope of the access token this request carried.',
      outputSchema: {
        sub: z.string(),
        client_id: z.string(),
        scope: z.string(),
        aud: z.union([z.string(), z.array(z.string())]),
        iss: z.string(),
        exp: z.number(),
      },
    },
    async (extra) => {
      const auth = extra.authInfo;
      const result = {
        sub: auth.extra.sub,
        client_id: auth.clientId,
        scope: auth.scopes.join(' '),
        aud: auth.extra.aud,
        iss: auth.extra.iss,
        exp: auth.expiresAt,
      };
      return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result };
    },
  );
  server.registerTool(
    'add',
    {
      title: 'Add',
      description: 'Adds two numbers.',
      inputSchema: { a: z.number(), b: z.number() },
      outputSchema: { sum: z.number() },
    },
    async ({ a, b }) => ({
      content: [{ type: 'text', text: String(a + b) }],
      structuredContent: { sum: a + b },
    }),
  );
  return server;
}

function sendJson(response, status, body, headers = {}) {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

async function main() {
  const config = configuration();
  const server = authorizationServer(config.issuer);
  const listener = http.createServer();
  // Fill in once the port is known.
  const state = {};

  listener.on('request', async (request, response) => {
    try {
      await handle(request, response);
    } catch (e) {
      log(`${request.method} ${request.url}: ${e.stack ?? e}`);
      if (!response.headersSent) sendJson(response, 500, { error: 'server_error' });
      else response.end();
    }
  });

  async function handle(request, response) {
    // DNS rebinding: answer only for the names this server is reached by.
    if (!state.hosts.includes(request.headers.host ?? '')) {
      return sendJson(response, 421, { error: 'misdirected_request' });
    }
    const origin = request.headers.origin;
    if (origin !== undefined && !state.origins.includes(origin)) {
      return sendJson(response, 403, { error: 'forbidden_origin' });
    }
    const path = new URL(request.url, 'http://localhost').pathname;

    if (state.metadataPaths.includes(path)) {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return sendJson(response, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
      }
      return sendJson(response, 200, state.metadata);
    }
    if (path !== MCP_PATH) return sendJson(response, 404, { error: 'not_found' });

    let auth;
    try {
      auth = await verify(request, { ...config, resource: state.resource, server });
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      const params = [];
      if (e.error) params.push(`error=${quoted(e.error)}`, `error_description=${quoted(e.message)}`);
      if (config.scope && (e.status === 401 || e.status === 403)) params.push(`scope=${quoted(config.scope)}`);
      params.push(`resource_metadata=${quoted(state.metadataUrl)}`);
      log(`${request.method} ${path}: ${e.status} ${e.error ?? ''} ${e.message}`);
      const headers = e.status === 503 ? { 'retry-after': '5' } : { 'www-authenticate': `Bearer ${params.join(', ')}` };
      return sendJson(response, e.status, { error: e.error ?? (e.status === 503 ? 'temporarily_unavailable' : 'unauthorized'), error_description: e.message }, headers);
    }

    // Stateless Streamable HTTP: no sessions, so no GET stream and no DELETE.
    if (request.method !== 'POST') {
      return sendJson(response, 405, { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null }, { allow: 'POST' });
    }
    const mcp = mcpServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    response.on('close', () => {
      transport.close();
      mcp.close();
    });
    await mcp.connect(transport);
    request.auth = auth; // handed to the tools as extra.authInfo
    await transport.handleRequest(request, response);
  }

  await new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(config.port, '127.0.0.1', resolve);
  });
  const port = listener.address().port;
  const local = `http://127.0.0.1:${port}${MCP_PATH}`;
  state.resource = config.resource ?? local;
  const resourceUrl = new URL(state.resource);
  const resourcePath = resourceUrl.pathname === '/' ? '' : resourceUrl.pathname;
  // RFC 9728 §3.1: the well-known segment goes between host and path.
  state.metadataUrl = `${resourceUrl.origin}${PRM_PREFIX}${resourcePath}`;
  state.metadataPaths = [...new Set([`${PRM_PREFIX}${resourcePath}`, `${PRM_PREFIX}${MCP_PATH}`, PRM_PREFIX])];
  state.hosts = [...new Set([resourceUrl.host, `127.0.0.1:${port}`, `localhost:${port}`])];
  state.origins = [...new Set([resourceUrl.origin, `http://127.0.0.1:${port}`, `http://localhost:${port}`])];
  state.metadata = {
    resource: state.resource,
    authorization_servers: [config.issuer],
    bearer_methods_supported: ['header'],
    ...(config.scope ? { scopes_supported: [config.scope] } : {}),
    resource_name: 'Charter example MCP server',
  };

  process.stdout.write(
    `${JSON.stringify({
      event: 'listening',
      url: local,
      resource: state.resource,
      resource_metadata: state.metadataUrl,
      issuer: config.issuer,
    })}\n`,
  );
  log(`MCP at ${local} for resource ${state.resource}, tokens from ${config.issuer}`);

  const stop = () => {
    listener.close(() => process.exit(0));
    listener.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((e) => {
  log(`failed: ${e.stack ?? e}`);
  process.exit(1);
});
