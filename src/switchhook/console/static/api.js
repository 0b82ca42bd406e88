// The public API, as any script calls it: the same routes, the same headers (README, /openapi.json).
//
// The credential lives in sessionStorage: it survives a reload but not the tab, is never sent by the browser on
// its own (no cookie, so no cross-site request can use it), and is not shared with other tabs or left on disk
// for the next user of the machine, as localStorage would. A script injected into this origin could still read
// it: the console's answer to that is to never turn API data into markup, and a CSP allowing no inline script.

const KEY = "switchhook.session";

export const session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) || "null");
    } catch {
      return null;
    }
  },
  set(value) {
    sessionStorage.setItem(KEY, JSON.stringify(value));
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, info, body) {
    super(info || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Call the API: `query` values that are empty are left out; root's chosen domain goes in `?domain=`. */
export async function api(method, path, { query = {}, body, scoped = true } = {}) {
  const s = session.get();
  const url = new URL(path, location.origin);
  if (scoped && s && s.root && s.domain) url.searchParams.set("domain", s.domain);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  if (s && s.token) headers["X-Access-Token"] = s.token;
  if (s && s.key) headers["X-Key"] = s.key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (response.status === 401 && s && path !== "/login") {
    session.clear();
    location.hash = "#/login";
  }
  if (!response.ok) {
    const info = data && typeof data === "object" ? data.info : String(text).slice(0, 300);
    throw new ApiError(response.status, typeof info === "string" ? info : JSON.stringify(info), data);
  }
  return data;
}

/** The event catalogue of the domain; an older server without the route gives an empty one. */
let catalogueCache = null;
export async function catalogue() {
  const s = session.get();
  const scope = s && s.domain;
  if (catalogueCache && catalogueCache.scope === scope) return catalogueCache.entries;
  let entries = [];
  try {
    entries = (await api("GET", "/api/v2/events/catalogue")).data || [];
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
  }
  catalogueCache = { scope, entries };
  return entries;
}

export function forgetCaches() {
  catalogueCache = null;
}

export function canAdmin() {
  const s = session.get();
  return Boolean(s && (s.root || s.role === "admin"));
}

/** The event keys of a hook document: one string or an array. */
export function keysOf(doc) {
  const event = doc && doc.event;
  if (Array.isArray(event)) return event.map(String);
  return event ? [String(event)] : [];
}

/** What to tell the user about a failure. */
export function message(error) {
  if (error instanceof ApiError) return `${error.message} (HTTP ${error.status})`;
  return String(error && error.message ? error.message : error);
}
