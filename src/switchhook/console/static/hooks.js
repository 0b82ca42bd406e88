// Hooks: the domain's list with what each is doing (from /api/v2/stats/hooks), enable/disable and delete.
import { api, canAdmin, keysOf, message } from "/console/api.js";
import { badge, fill, h, toast, when } from "/console/dom.js";

const PAGE = 100; // hooks per page: also the most /api/v2/stats/hooks reports at once

export async function hooksView(view, page = 1) {
  const hooks = (await api("GET", "/api/v2/hooks", { query: { limit: PAGE, page } })).data || [];
  const ids = hooks.map((x) => x._id).join(",");
  const stats = ids ? await api("GET", "/api/v2/stats/hooks", { query: { hook: ids } }).catch(() => ({ data: [] })) : { data: [] };
  const byHook = new Map((stats.data || []).map((s) => [s.hookId, s]));
  const admin = canAdmin();
  fill(
    view,
    h(
      "div.titlebar",
      {},
      h("h1", {}, "Hooks"),
      admin ? h("a.button.primary", { href: "#/hooks/new" }, "New hook") : null,
    ),
    hooks.length
      ? h(
          "table.list.hooks",
          {},
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Events", "URL", "Enabled", "Endpoint", "Last delivery", "Last hour", ""].map((t) =>
                h("th", { scope: "col" }, t),
              ),
            ),
          ),
          h(
            "tbody",
            {},
            hooks.map((hook) => row(hook, byHook.get(hook._id), admin, () => hooksView(view, page))),
          ),
        )
      : h("p.empty", {}, page > 1 ? "No more hooks." : "No hooks yet.", admin && page === 1 ? " Create one: it gets the events you pick, posted to your URL." : ""),
    pager(page, hooks.length === PAGE, (n) => hooksView(view, n)),
  );
}

export function pager(page, more, go) {
  if (page === 1 && !more) return null;
  return h(
    "nav.bar.pager",
    { "aria-label": "Pages" },
    h("button", { type: "button", disabled: page === 1, onclick: () => go(page - 1) }, "Previous"),
    h("span.muted", {}, `Page ${page}`),
    h("button", { type: "button", disabled: !more, onclick: () => go(page + 1) }, "Next"),
  );
}

function row(hook, stats, admin, reload) {
  const keys = keysOf(hook);
  const url = (hook.action && hook.action.url) || "";
  return h(
    "tr",
    { "data-hook": hook._id },
    h(
      "td",
      { "data-label": "Events" },
      h("div.keys", {}, keys.map((k) => h("code.key", {}, k))),
      hook.description ? h("div.muted.small", {}, hook.description) : null,
    ),
    h("td.url", { "data-label": "URL" }, h("span.method", {}, (hook.action && hook.action.method) || ""), " ", url),
    h(
      "td",
      { "data-label": "Enabled" },
      hook.enable === true ? badge("enabled", "ok") : badge("disabled", "off"),
      hook.disabledReason ? h("div.muted.small", {}, hook.disabledReason) : null,
    ),
    h("td", { "data-label": "Endpoint" }, endpoint(stats)),
    h("td", { "data-label": "Last delivery" }, last(stats)),
    h("td", { "data-label": "Success, last hour" }, rate(stats)),
    h(
      "td.actions",
      {},
      h("a.button", { href: `#/hooks/${hook._id}` }, admin ? "Edit" : "View"),
      h("a.button", { href: `#/hooks/${hook._id}/try` }, "Try it"),
      h("a.button", { href: `#/hooks/${hook._id}/deliveries` }, "Deliveries"),
      admin ? toggle(hook, reload) : null,
      admin ? remove(hook, reload) : null,
    ),
  );
}

function endpoint(stats) {
  if (!stats) return "—";
  if (stats.breaker === "open") return badge("paused", "bad");
  if (stats.breaker === "half-open") return badge("probing", "warn");
  if (stats.shelved) return badge("waiting", "warn");
  return stats.breaker === null ? badge("—", "off") : badge("ok", "ok");
}

function last(stats) {
  const d = stats && stats.lastDelivery;
  if (!d) return "—";
  return h(
    "a",
    { href: `#/deliveries/${encodeURIComponent(d.id)}` },
    badge(d.status),
    d.lastStatus ? ` HTTP ${d.lastStatus}` : "",
    h("div.muted.small", {}, when(d.updatedAt * 1000)),
  );
}

function rate(stats) {
  if (!stats || stats.successRate === null) return "—";
  const finished = stats.delivered + stats.failed;
  return h("span", { title: `${stats.delivered} of ${finished}` }, `${Math.round(stats.successRate * 100)} %`, h("span.muted.small", {}, ` of ${finished}`));
}

function toggle(hook, reload) {
  return h(
    "button",
    {
      type: "button",
      onclick: async () => {
        const doc = { ...hook, enable: hook.enable !== true };
        for (const name of ["_id", "domain", "disabledReason"]) delete doc[name];
        try {
          await api("PUT", `/api/v2/hooks/${hook._id}`, { body: doc });
          toast(doc.enable ? "Hook enabled" : "Hook disabled");
          reload();
        } catch (error) {
          toast(message(error), "bad");
        }
      },
    },
    hook.enable === true ? "Disable" : "Enable",
  );
}

function remove(hook, reload) {
  // Two clicks rather than a dialog: keyboard and screen-reader friendly, and nothing blocks the page.
  const button = h("button.danger", { type: "button" }, "Delete");
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "yes") {
      button.dataset.armed = "yes";
      button.textContent = "Confirm delete";
      return;
    }
    try {
      await api("DELETE", `/api/v2/hooks/${hook._id}`);
      toast("Hook deleted");
      reload();
    } catch (error) {
      toast(message(error), "bad");
    }
  });
  button.addEventListener("blur", () => {
    button.dataset.armed = "";
    button.textContent = "Delete";
  });
  return button;
}
