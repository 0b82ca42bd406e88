// The console's shell: routes (#/...), the header (who, domain, log out) and the log-in screens.
import { api, ApiError, forgetCaches, message, session } from "/console/api.js";
import { callsView } from "/console/calls.js";
import { deliveriesView, deliveryView } from "/console/deliveries.js";
import { h, field, fill } from "/console/dom.js";
import { editorView } from "/console/editor.js";
import { hooksView } from "/console/hooks.js";
import { tokensView } from "/console/tokens.js";
import { tryView } from "/console/tryit.js";

const main = () => document.getElementById("view");

/** The element a navigation renders into: a new one each time, so a view still waiting on the API when the user
 * moves on, switches domain or logs out fills an element no longer on the page, never the screen now shown. */
function freshView() {
  const view = h("div.page");
  fill(main(), view);
  return view;
}

const ROUTES = [
  [/^#\/hooks$/, () => hooksView],
  [/^#\/hooks\/new$/, () => (m) => editorView(m, null)],
  [/^#\/hooks\/([0-9a-f]{24})$/, (id) => (m) => editorView(m, id)],
  [/^#\/hooks\/([0-9a-f]{24})\/try$/, (id) => (m) => tryView(m, id)],
  [/^#\/hooks\/([0-9a-f]{24})\/deliveries$/, (id) => (m) => deliveriesView(m, { hook: id })],
  [/^#\/deliveries$/, () => (m) => deliveriesView(m, {})],
  [/^#\/deliveries\/([^/]+)$/, (id) => (m) => deliveryView(m, decodeURIComponent(id))],
  [/^#\/calls$/, () => (m) => callsView(m, null)],
  [/^#\/calls\/(.+)$/, (id) => (m) => callsView(m, decodeURIComponent(id))],
  [/^#\/tokens$/, () => tokensView],
];

async function route() {
  const s = session.get();
  const hash = location.hash || "#/hooks";
  renderHeader(s);
  if (!s) return show(s, loginView);
  if (s.root && !s.domain) return show(s, domainView);
  if (hash === "#/login") return show(s, loginView);
  for (const [pattern, make] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      const section = /\/deliveries$/.test(hash) ? "deliveries" : hash.split("/")[1];
      for (const link of document.querySelectorAll("#nav a")) {
        link.toggleAttribute("aria-current", link.dataset.section === section);
      }
      return show(s, make(...match.slice(1)));
    }
  }
  location.hash = "#/hooks";
}

/** Render one screen into a fresh element; a failure is told on the screen, never left uncaught. */
async function show(s, render) {
  const view = freshView();
  fill(view, h("p.muted", {}, "Loading…"));
  try {
    await render(view);
  } catch (error) {
    if (!view.isConnected) return; // a screen the user has left: its failure is no longer news
    // A 401 has cleared the session (api.js): the login screen, whether or not the hash changed to say so.
    if (error instanceof ApiError && error.status === 401 && !session.get()) return loginView(freshView());
    const denied = error instanceof ApiError && error.status === 403;
    fill(
      view,
      h("h1", {}, denied ? "Not allowed" : "Something went wrong"),
      h("p.error.shown", { role: "alert" }, denied && s ? `Your role (${s.role}) may not see this: ask an admin of ${s.domain}.` : message(error)),
    );
  }
}

function renderHeader(s) {
  const nav = document.getElementById("nav");
  nav.hidden = !s || (s.root && !s.domain);
  const tokensLink = nav.querySelector('[data-section="tokens"]');
  tokensLink.hidden = !(s && (s.root || s.role === "admin"));
  const who = document.getElementById("who");
  if (!s) return fill(who);
  const parts = [h("span.user", {}, s.username || "domain token", s.role ? ` (${s.role})` : "")];
  if (s.root) {
    const picker = h("select", { "aria-label": "Domain", id: "domain-picker" });
    fill(picker, h("option", { value: s.domain || "" }, s.domain || "Pick a domain"));
    api("GET", "/api/v2/domains", { scoped: false })
      .then((body) => {
        const names = (body.data || []).map((d) => d.name);
        fill(picker, names.map((n) => h("option", { value: n, selected: n === s.domain }, n)));
      })
      .catch(() => {});
    picker.addEventListener("change", () => switchDomain(picker.value));
    parts.push(picker);
  } else if (s.domain) {
    parts.push(h("span.domain", {}, s.domain));
  }
  parts.push(h("button.link", { type: "button", onclick: logout }, "Log out"));
  fill(who, parts);
}

function switchDomain(name) {
  const s = session.get();
  session.set({ ...s, domain: name });
  forgetCaches();
  location.hash = "#/hooks";
  route();
}

async function logout() {
  const s = session.get();
  if (s && s.key) {
    try {
      await api("POST", "/logout", { scoped: false });
    } catch {
      // the session may be gone already: forgetting it here is what matters
    }
  }
  session.clear();
  forgetCaches();
  location.hash = "#/login";
  route();
}

function loginView(view) {
  const error = h("p.error", { role: "alert", id: "login-error" });
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const token = h("textarea", { name: "token", rows: 3, spellcheck: "false", autocomplete: "off" });
  const signIn = async (event) => {
    event.preventDefault();
    fill(error);
    try {
      const body = await api("POST", "/login", {
        body: { username: username.value.trim(), password: password.value },
        scoped: false,
      });
      session.set({
        token: body.token,
        key: body.key,
        username: body.username,
        role: body.roleName,
        domain: body.domain || null,
        root: body.roleName === "root",
      });
      start();
    } catch (e) {
      fill(error, e instanceof ApiError && e.status === 401 ? "Wrong username or password." : message(e));
      error.classList.add("shown");
    }
  };
  const useToken = async (event) => {
    event.preventDefault();
    fill(error);
    const value = token.value.trim();
    try {
      const response = await fetch("/api/v2/whoami", {
        headers: { "X-Access-Token": value, Accept: "application/json" },
        credentials: "omit",
      });
      if (!response.ok) throw new Error("This token is not valid (expired, revoked or mistyped).");
      const who = await response.json();
      session.set({
        token: value,
        username: null,
        role: who.roleName,
        domain: who.domain || null,
        root: who.roleName === "root" && !who.domain,
      });
      start();
    } catch (e) {
      fill(error, message(e));
      error.classList.add("shown");
    }
  };
  fill(
    view,
    h(
      "section.login",
      {},
      h("h1", {}, "Log in"),
      h("p.muted", {}, "As root, as user@domain, or with a domain token."),
      h(
        "form",
        { onsubmit: signIn, id: "login-form" },
        field("Username", username, { name: "username", hint: "root, or user@domain" }),
        field("Password", password, { name: "password" }),
        h("button.primary", { type: "submit" }, "Log in"),
      ),
      h("p.or", {}, "or"),
      h(
        "form",
        { onsubmit: useToken, id: "token-form" },
        field("Domain token", token, { name: "token", hint: "from `switchhook token create` or the Tokens screen" }),
        h("button", { type: "submit" }, "Use token"),
      ),
      error,
    ),
  );
  username.focus();
}

async function domainView(view) {
  const body = await api("GET", "/api/v2/domains", { scoped: false });
  const names = (body.data || []).map((d) => d.name);
  fill(
    view,
    h("h1", {}, "Pick a domain"),
    names.length
      ? h(
          "ul.domains",
          {},
          names.map((n) => h("li", {}, h("button", { type: "button", onclick: () => switchDomain(n) }, n))),
        )
      : h("p.muted", {}, "No domain yet: create one with POST /api/v2/domains or a domain token."),
  );
}

function start() {
  if (location.hash === "#/login" || !location.hash) location.hash = "#/hooks";
  route();
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  route();
  if (document.activeElement === document.body) main().focus({ preventScroll: true });
});
