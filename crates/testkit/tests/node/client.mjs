// Black-box client: panva's openid-client (v6, on oauth4webapi) runs the
// authorization code grant with PKCE (RFC 7636) and DPoP (RFC 9449)
// against a running Charter, driven by crates/testkit/tests/it/node_client.rs.
//
// The library does everything a relying party does: dynamic registration
// (RFC 7591) after discovery, the authorization URL, the authorization
// response checks (state, RFC 9207 iss), the token request with a DPoP
// proof, ID token validation (signature against jwks_uri, iss, aud, nonce,
// exp), userinfo with a DPoP proof carrying ath, and the refresh grant.
// Only the user's part is hand-written: a tiny "browser" with a cookie jar
// that reads the login and consent forms and posts them (browser.mjs).
//
// Input (environment): ISSUER, IAT (an initial access token), USERNAME,
// PASSWORD. Output: one JSON line on stdout. On any failure: a message and
// the HTTP trail on stderr, exit status 1.

import * as client from 'openid-client';
import { Browser, Failure, authorize, check } from './browser.mjs';

const REQUIRED_ENV = ['ISSUER', 'IAT', 'USERNAME', 'PASSWORD'];

/** Every HTTP exchange, for the failure report. */
const trail = [];

/** fetch that records method, URL (without query) and status. */
async function tracingFetch(url, options = {}) {
  const target = new URL(url);
  const shown = `${options.method ?? 'GET'} ${target.origin}${target.pathname}`;
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    trail.push(`${shown} -> network error: ${e.message}`);
    throw e;
  }
  const nonce = response.headers.get('dpop-nonce') ? ' (DPoP-Nonce)' : '';
  trail.push(`${shown} -> ${response.status}${nonce}`);
  if (response.status === 200 && target.pathname.endsWith('/token')) {
    // The library lowercases token_type (RFC 6749 §7.1 makes it
    // case-insensitive); keep what the server sent.
    const sent = await response.clone().json().catch(() => ({}));
    tokenTypesSent.push(sent.token_type);
  }
  return response;
}

/** token_type of each successful token response, as sent. */
const tokenTypesSent = [];

/** What the library's requests need: plain http on loopback, the trail. */
const libraryOptions = {
  execute: [client.allowInsecureRequests],
  [client.customFetch]: tracingFetch,
  timeout: 30,
};

function decodeJwtPayload(jwt) {
  const parts = jwt.split('.');
  check(parts.length === 3, 'the access token is not a JWS compact serialization');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

/** The error a library call fails with, as `{error, status}`. */
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof client.ResponseBodyError) return { error: e.error, status: e.status };
    throw e;
  }
  return null;
}

async function main() {
  const missing = REQUIRED_ENV.filter((name) => !process.env[name]);
  check(missing.length === 0, `missing environment: ${missing.join(', ')}`);
  const { ISSUER, IAT, USERNAME, PASSWORD } = process.env;
  const issuer = new URL(ISSUER);

  // RFC 7591 through the library, after its own OIDC discovery (it checks
  // that the document's issuer is the one it started from).
  const config = await client.dynamicClientRegistration(
    issuer,
    {
      redirect_uris: ['http://127.0.0.1/cb'],
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'openid profile',
      dpop_bound_access_tokens: true,
      client_name: 'node openid-client',
    },
    client.None(),
    { ...libraryOptions, initialAccessToken: IAT },
  );
  const metadata = config.serverMetadata();
  const clientId = config.clientMetadata().client_id;
  check(metadata.supportsPKCE(), 'the server does not advertise PKCE S256');
  check(
    Array.isArray(metadata.dpop_signing_alg_values_supported) &&
      metadata.dpop_signing_alg_values_supported.includes('ES256'),
    `dpop_signing_alg_values_supported lacks ES256: ${JSON.stringify(metadata.dpop_signing_alg_values_supported)}`,
  );

  // RFC 8414 discovery must describe the same server.
  const oauthConfig = await client.discovery(issuer, clientId, undefined, client.None(), {
    ...libraryOptions,
    algorithm: 'oauth2',
  });
  const oauthMetadata = oauthConfig.serverMetadata();
  for (const member of ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri']) {
    check(
      oauthMetadata[member] === metadata[member],
      `RFC 8414 and OIDC discovery disagree on ${member}: ${oauthMetadata[member]} vs ${metadata[member]}`,
    );
  }

  // A loopback redirect on a port chosen now (RFC 8252 §7.3); nothing
  // listens there: the browser stops at the redirect.
  const port = 49152 + Math.floor(Math.random() * 16000);
  const redirectUri = new URL(`http://127.0.0.1:${port}/cb`);
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri.href,
    scope: 'openid profile',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });

  const browser = new Browser(tracingFetch);
  const { callback, pages, redirectStatus } = await authorize(
    browser,
    authorizationUrl,
    redirectUri,
    USERNAME,
    PASSWORD,
  );

  // One key pair for the whole session: the tokens are bound to it. The
  // library retries once by itself when the server asks for a DPoP nonce
  // (use_dpop_nonce) and keeps the nonce for later requests to the origin.
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const jkt = await DPoP.calculateThumbprint();

  const tokens = await client.authorizationCodeGrant(
    config,
    callback,
    { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
    undefined,
    { DPoP },
  );
  check(tokens.token_type === 'dpop', `token_type is ${tokens.token_type}, not DPoP`);
  check(typeof tokens.refresh_token === 'string', 'no refresh_token with the code');
  const claims = tokens.claims();
  check(claims, 'no ID token with the code');

  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });

  // RFC 9449 §7.1: a DPoP-bound token is refused as a bearer token.
  const asBearer = await tracingFetch(metadata.userinfo_endpoint, {
    headers: { authorization: `Bearer ${tokens.access_token}`, accept: 'application/json' },
    redirect: 'manual',
  });
  await asBearer.body?.cancel();

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  check(refreshed.token_type === 'dpop', `refreshed token_type is ${refreshed.token_type}, not DPoP`);
  const refreshedUserinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub, {
    DPoP,
  });

  // The rotated-out refresh token, replayed with a valid proof from the
  // same key: reuse is the only thing wrong with it.
  const replay = await refusal(client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP }));

  const result = {
    client_id: clientId,
    pages,
    redirect_status: redirectStatus,
    cookies: [...browser.cookies.keys()],
    token_type: tokenTypesSent[0],
    refreshed_token_type: tokenTypesSent[1],
    dpop_jkt: jkt,
    access_token: tokens.access_token,
    access_token_claims: decodeJwtPayload(tokens.access_token),
    scope: tokens.scope ?? null,
    id_token_claims: claims,
    sub: claims.sub,
    userinfo_sub: userinfo.sub,
    userinfo,
    bearer_userinfo_status: asBearer.status,
    refreshed: typeof refreshed.access_token === 'string',
    refreshed_access_token: refreshed.access_token,
    refreshed_userinfo_sub: refreshedUserinfo.sub,
    rotated:
      typeof refreshed.refresh_token === 'string' && refreshed.refresh_token !== tokens.refresh_token,
    replay_error: replay?.error ?? null,
    replay_status: replay?.status ?? null,
    trail,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** The useful part of an error from the library or from this script. */
function describe(e) {
  if (e instanceof Failure) return e.message;
  const lines = [`${e.name}: ${e.message}`];
  if (e.code) lines.push(`code: ${e.code}`);
  if (e.error) lines.push(`error: ${e.error} ${e.error_description ?? ''} (HTTP ${e.status ?? '?'})`);
  let cause = e.cause;
  for (let depth = 0; cause && depth < 4; depth += 1) {
    if (cause instanceof Response) {
      lines.push(`cause: HTTP ${cause.status} from ${cause.url}`);
      break;
    }
    if (cause instanceof Error) {
      lines.push(`cause: ${cause.name}: ${cause.message}${cause.code ? ` (${cause.code})` : ''}`);
      cause = cause.cause;
      continue;
    }
    try {
      lines.push(`cause: ${JSON.stringify(cause instanceof URLSearchParams ? Object.fromEntries(cause) : cause)}`);
    } catch {
      lines.push(`cause: ${String(cause)}`);
    }
    break;
  }
  return lines.join('\n');
}

main().catch((e) => {
  process.stderr.write(`openid-client flow failed: ${describe(e)}\n`);
  process.stderr.write(`HTTP trail:\n${trail.map((t) => `  ${t}`).join('\n')}\n`);
  process.exit(1);
});
