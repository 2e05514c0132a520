// Black-box MCP client: the official MCP TypeScript SDK (@modelcontextprotocol/sdk)
// connects to the example MCP server (examples/mcp-server) that Charter
// protects, driven by crates/testkit/tests/it/mcp_sdk.rs.
//
// The SDK does everything an MCP client does: on the server's 401 it reads
// the RFC 9728 protected resource metadata, discovers Charter's RFC 8414
// metadata, gets a client ID (MODE=dcr: RFC 7591 dynamic registration
// without an initial access token; MODE=cimd: the https URL of a client ID
// metadata document, which Charter fetches), and starts the authorization
// code grant with PKCE and the RFC 8707 resource. Only the user's part is
// hand-written, in `redirectToAuthorization`: the tiny browser of
// ../node/browser.mjs signs in and consents on Charter's forms and reads the
// code from the Location of the redirect back; state and the RFC 9207 iss
// are checked here (the SDK leaves the authorization response to the
// application). Then `finishAuth(code)`, a new connection, tools/list and
// tools/call.
//
// Input (environment): MCP_URL, USERNAME, PASSWORD, MODE (dcr or cimd),
// CLIENT_METADATA_URL (cimd). Output: one JSON line on stdout. On any
// failure: a message and the HTTP trail on stderr, exit status 1.

import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Browser, Failure, authorize, check, fail } from '../node/browser.mjs';

const REQUEST_TIMEOUT_MS = 20_000;
const OVERALL_TIMEOUT_MS = 90_000;

/** Every HTTP exchange, for the failure report and the checks. */
const trail = [];
/** The JSON bodies of registration requests (RFC 7591), as sent. */
const registrationRequests = [];
/** The form bodies of token requests, as sent (code and verifier removed). */
const tokenRequests = [];

/** fetch with a time limit that records method, URL (without query) and status. */
async function tracingFetch(url, options = {}) {
  const target = new URL(url);
  const method = options.method ?? 'GET';
  const shown = `${method} ${target.origin}${target.pathname}`;
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  if (method === 'POST' && target.pathname.endsWith('/register') && typeof options.body === 'string') {
    registrationRequests.push(JSON.parse(options.body));
  }
  if (method === 'POST' && target.pathname.endsWith('/token')) {
    const form = Object.fromEntries(new URLSearchParams(String(options.body)));
    for (const secret of ['code', 'code_verifier', 'refresh_token']) {
      if (secret in form) form[secret] = '(present)';
    }
    tokenRequests.push(form);
  }
  let response;
  try {
    response = await fetch(url, { ...options, signal });
  } catch (e) {
    trail.push(`${shown} -> network error: ${e.message}`);
    throw e;
  }
  const challenge = response.headers.get('www-authenticate');
  trail.push(`${shown} -> ${response.status}${challenge ? ` (${challenge})` : ''}`);
  return response;
}

/**
 * The SDK's OAuthClientProvider, kept in memory: the client information,
 * tokens, PKCE verifier and discovery state of one session. The user's part
 * (redirectToAuthorization) is a callback.
 */
class MemoryProvider {
  constructor({ redirectUrl, clientMetadata, clientMetadataUrl, onRedirect, onDiscovery }) {
    this._redirectUrl = redirectUrl;
    this._clientMetadata = clientMetadata;
    // SEP-991: the SDK uses this URL as the client_id when the
    // authorization server says client_id_metadata_document_supported.
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
    this._onRedirect = onRedirect;
    this._onDiscovery = onDiscovery;
    this.savedClients = [];
    this.states = [];
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return this._clientMetadata;
  }

  state() {
    const state = randomBytes(16).toString('base64url');
    this.states.push(state);
    return state;
  }

  clientInformation() {
    return this._client;
  }

  saveClientInformation(information) {
    this._client = information;
    this.savedClients.push(information);
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  redirectToAuthorization(authorizationUrl) {
    return this._onRedirect(authorizationUrl);
  }

  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }

  codeVerifier() {
    check(this._verifier, 'the SDK asked for a code verifier it never saved');
    return this._verifier;
  }

  saveDiscoveryState(state) {
    this._onDiscovery?.(state);
    this._discovery = state;
  }

  discoveryState() {
    return this._discovery;
  }

  invalidateCredentials(scope) {
    trail.push(`(the SDK invalidated its ${scope} credentials)`);
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
  }
}

function decodeJwtPart(jwt, index) {
  const parts = jwt.split('.');
  check(parts.length === 3, 'the access token is not a JWS compact serialization');
  return JSON.parse(Buffer.from(parts[index], 'base64url').toString('utf8'));
}

/** The text content of a tool result, as JSON when it is JSON. */
function toolOutput(result) {
  check(!result.isError, `the tool failed: ${JSON.stringify(result)}`);
  const text = result.content?.find((c) => c.type === 'text')?.text;
  check(typeof text === 'string', `the tool answered no text: ${JSON.stringify(result)}`);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function main() {
  const required = ['MCP_URL', 'USERNAME', 'PASSWORD', 'MODE'];
  const missing = required.filter((name) => !process.env[name]);
  check(missing.length === 0, `missing environment: ${missing.join(', ')}`);
  const { MCP_URL, USERNAME, PASSWORD, MODE } = process.env;
  check(MODE === 'dcr' || MODE === 'cimd', `MODE is ${MODE}; use dcr or cimd`);
  const metadataUrl = process.env.CLIENT_METADATA_URL;
  check(MODE !== 'cimd' || metadataUrl, 'MODE=cimd needs CLIENT_METADATA_URL');
  const mcpUrl = new URL(MCP_URL);

  // A loopback redirect URI (RFC 8252 §7.3): registered without a port,
  // used with one chosen now. Nothing listens there: the browser stops at
  // the redirect and the code is read from its Location.
  const port = 49152 + Math.floor(Math.random() * 16000);
  const redirectUri = new URL(`http://127.0.0.1:${port}/callback`);
  const clientMetadata = {
    client_name: 'MCP SDK test client',
    redirect_uris: ['http://127.0.0.1/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };

  let authorization = null;
  const browser = new Browser(tracingFetch);
  const provider = new MemoryProvider({
    redirectUrl: redirectUri.href,
    clientMetadata,
    clientMetadataUrl: MODE === 'cimd' ? metadataUrl : undefined,
    // Called after discovery, before the SDK decides how to get a client ID
    // (auth.js: a URL client ID only if the metadata says
    // client_id_metadata_document_supported: true, else registration).
    onDiscovery: (state) => {
      const supported = state.authorizationServerMetadata?.client_id_metadata_document_supported;
      check(
        MODE !== 'cimd' || supported === true,
        `Charter's metadata says client_id_metadata_document_supported: ${JSON.stringify(supported)}; ` +
          'the SDK would fall back to dynamic registration instead of using the client ID metadata document URL',
      );
    },
    onRedirect: async (authorizationUrl) => {
      check(!authorization, 'the SDK started a second authorization');
      const request = Object.fromEntries(authorizationUrl.searchParams);
      const { callback, pages, redirectStatus } = await authorize(
        browser,
        authorizationUrl,
        redirectUri,
        USERNAME,
        PASSWORD,
      );
      const response = Object.fromEntries(callback.searchParams);
      check(
        !response.error,
        `Charter answered the authorization request with ${response.error}: ${response.error_description ?? ''}`,
      );
      // The authorization response checks the SDK leaves to the application.
      check(
        response.state === provider.states.at(-1),
        `state ${response.state} is not the one sent (${provider.states.at(-1)})`,
      );
      const issuer = provider.discoveryState()?.authorizationServerMetadata?.issuer;
      check(typeof issuer === 'string', 'no authorization server metadata was discovered');
      check(response.iss === issuer, `RFC 9207: iss ${response.iss} is not the issuer ${issuer}`);
      check(typeof response.code === 'string' && response.code, 'no code in the redirect');
      authorization = { request, pages, redirectStatus, code: response.code, iss: response.iss };
    },
  });

  // 1. First connection: 401, discovery, client ID, the user's authorization.
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: tracingFetch });
  const first = new Client({ name: 'charter-mcp-sdk-test', version: '1.0.0' });
  try {
    await first.connect(transport);
    fail('the MCP server let the SDK connect without a token');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  check(authorization, 'the SDK did not start the authorization code grant');
  const discovery = provider.discoveryState();
  const serverMetadata = discovery.authorizationServerMetadata;
  const clientId = provider.clientInformation()?.client_id;
  check(clientId, 'the SDK has no client_id');
  if (MODE === 'cimd') {
    check(registrationRequests.length === 0, 'MODE=cimd, yet the SDK registered dynamically');
  }

  // 2. The code for tokens (with the same resource and the verifier).
  await transport.finishAuth(authorization.code);
  const tokens = provider.tokens();
  check(tokens?.access_token, 'no access token after finishAuth');
  await transport.close().catch(() => {});

  // 3. A new connection with the token: tools/list and tools/call.
  const session = new Client({ name: 'charter-mcp-sdk-test', version: '1.0.0' });
  const connected = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: tracingFetch });
  await session.connect(connected);
  const { tools } = await session.listTools();
  const whoami = toolOutput(await session.callTool({ name: 'whoami', arguments: {} }));
  const added = await session.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
  await session.close();

  const result = {
    mode: MODE,
    client_id: clientId,
    client_information: provider.savedClients.map(({ client_id, issuer, token_endpoint_auth_method, scope }) => ({
      client_id,
      issuer,
      token_endpoint_auth_method,
      scope,
    })),
    registration_requests: registrationRequests,
    token_requests: tokenRequests,
    authorization_server: discovery.authorizationServerUrl,
    issuer: serverMetadata.issuer,
    client_id_metadata_document_supported: serverMetadata.client_id_metadata_document_supported ?? null,
    resource_metadata: discovery.resourceMetadata ?? null,
    authorization_request: authorization.request,
    pages: authorization.pages,
    redirect_status: authorization.redirectStatus,
    callback_iss: authorization.iss,
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    has_refresh_token: typeof tokens.refresh_token === 'string',
    access_token: tokens.access_token,
    access_token_header: decodeJwtPart(tokens.access_token, 0),
    access_token_claims: decodeJwtPart(tokens.access_token, 1),
    server_version: session.getServerVersion() ?? null,
    tools: tools.map((t) => t.name).sort(),
    whoami,
    add: toolOutput(added),
    add_structured: added.structuredContent ?? null,
    trail,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** The useful part of an error from the SDK or from this script. */
function describe(e) {
  if (e instanceof Failure) return e.message;
  const lines = [`${e.name}: ${e.message}`];
  if (e.code) lines.push(`code: ${e.code}`);
  let cause = e.cause;
  for (let depth = 0; cause && depth < 4; depth += 1) {
    lines.push(`cause: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  if (e.stack) lines.push(e.stack.split('\n').slice(1, 6).join('\n'));
  return lines.join('\n');
}

const deadline = setTimeout(() => {
  process.stderr.write(`the MCP SDK flow did not finish within ${OVERALL_TIMEOUT_MS} ms\n`);
  process.stderr.write(`HTTP trail:\n${trail.map((t) => `  ${t}`).join('\n')}\n`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

main()
  .then(() => {
    clearTimeout(deadline);
  })
  .catch((e) => {
    process.stderr.write(`MCP SDK flow failed: ${describe(e)}\n`);
    process.stderr.write(`HTTP trail:\n${trail.map((t) => `  ${t}`).join('\n')}\n`);
    process.exit(1);
  });
