// A tiny user agent for the black-box clients in this folder and in
// ../mcp: a cookie jar for one origin, no automatic redirects, and just
// enough HTML form reading to play the user on Charter's sign-in and
// consent pages (tests/node/client.mjs, tests/mcp/client.mjs). No
// dependencies: Node.js 20's fetch only.

/** A check of this script failed (not the library's): reported as is. */
export class Failure extends Error {}

export function fail(message) {
  throw new Failure(message);
}

export function check(condition, message) {
  if (!condition) fail(message);
}

function decodeEntities(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|quot|apos|lt|gt);/gi, (match, entity) => {
    const lower = entity.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10));
    return { amp: '&', quot: '"', apos: "'", lt: '<', gt: '>' }[lower] ?? match;
  });
}

/** The attributes of one start tag, names lowercased, values unescaped. */
function attributes(tag) {
  const found = {};
  const pattern = /([^\s"'<>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  const body = tag.replace(/^<\w+/, '').replace(/\/?>$/, '');
  for (const [, name, double, single, bare] of body.matchAll(pattern)) {
    found[name.toLowerCase()] = decodeEntities(double ?? single ?? bare ?? '');
  }
  return found;
}

/**
 * The forms of an HTML page: each with its method, absolute action, hidden
 * inputs, the names of its other inputs and its submit buttons. Good enough
 * for server-rendered pages without nested forms.
 */
export function parseForms(html, pageUrl) {
  const forms = [];
  for (const [, open, inner] of html.matchAll(/(<form\b[^>]*>)([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(open);
    const form = {
      method: (attrs.method ?? 'get').toLowerCase(),
      action: new URL(attrs.action ?? pageUrl, pageUrl),
      hidden: [],
      inputs: [],
      buttons: [],
    };
    for (const [tag] of inner.matchAll(/<(?:input|button)\b[^>]*>/gi)) {
      const a = attributes(tag);
      const type = (a.type ?? (tag.toLowerCase().startsWith('<button') ? 'submit' : 'text')).toLowerCase();
      if (type === 'hidden' && a.name) form.hidden.push([a.name, a.value ?? '']);
      else if (type === 'submit' && a.name) form.buttons.push([a.name, a.value ?? '']);
      else if (a.name) form.inputs.push(a.name);
    }
    forms.push(form);
  }
  return forms;
}

/** A user agent: cookies for one origin, no automatic redirects. */
export class Browser {
  cookies = new Map();

  /** `fetchFn`: the fetch to send requests with (e.g. one that traces them). */
  constructor(fetchFn = fetch) {
    this.fetch = fetchFn;
  }

  async request(url, { method = 'GET', form } = {}) {
    const headers = { accept: 'text/html' };
    if (this.cookies.size) {
      headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    }
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const response = await this.fetch(url.href, { method, headers, body, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...params] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = params.some((p) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(p));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }
}

function isRedirect(status) {
  return [301, 302, 303, 307, 308].includes(status);
}

/**
 * Plays the user from the authorization URL to the redirect back to the
 * client: follows redirects inside the server, signs in on the login form,
 * allows on the consent form. Returns the callback URL and the pages seen.
 */
export async function authorize(browser, authorizationUrl, redirectUri, username, password) {
  const pages = [];
  let url = authorizationUrl;
  let response = await browser.request(url);
  for (let step = 0; step < 10; step += 1) {
    if (isRedirect(response.status)) {
      const location = response.headers.get('location');
      check(location, `${response.status} from ${url.pathname} without a Location`);
      const next = new URL(location, url);
      if (next.origin === redirectUri.origin && next.pathname === redirectUri.pathname) {
        check(
          response.status === 303 || response.status === 302,
          `the redirect to the client is ${response.status}; expected 303 (or 302)`,
        );
        return { callback: next, pages, redirectStatus: response.status };
      }
      check(next.origin === url.origin, `redirected off the server to ${next.origin}${next.pathname}`);
      url = next;
      response = await browser.request(url);
      continue;
    }
    const text = await response.text();
    check(
      response.status === 200,
      `${url.pathname} answered ${response.status}: ${text.slice(0, 500)}`,
    );
    const type = response.headers.get('content-type') ?? '';
    check(type.startsWith('text/html'), `${url.pathname} answered ${type}, not text/html`);
    const forms = parseForms(text, url).filter((f) => f.method === 'post');
    const login = forms.find((f) => f.inputs.includes('password'));
    const consent = forms.find((f) => f.buttons.some(([n, v]) => n === 'decision' && v === 'allow'));
    let fields;
    let form;
    if (login) {
      form = login;
      check(login.inputs.includes('username'), 'the login form has no username input');
      fields = [...login.hidden, ['username', username], ['password', password]];
      pages.push('login');
    } else if (consent) {
      form = consent;
      fields = [...consent.hidden, ['decision', 'allow']];
      pages.push('consent');
    } else {
      fail(`${url.pathname}: neither a login nor a consent form in: ${text.slice(0, 800)}`);
    }
    for (const name of ['interaction', 'csrf']) {
      check(
        form.hidden.some(([n]) => n === name),
        `the ${pages.at(-1)} form has no hidden "${name}" input`,
      );
    }
    check(form.action.origin === url.origin, `the ${pages.at(-1)} form posts off the server`);
    url = form.action;
    response = await browser.request(url, { method: 'POST', form: fields });
  }
  fail(`no redirect back to the client after 10 steps; pages: ${pages.join(', ')}`);
}
