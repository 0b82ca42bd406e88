// Deliveries: the domain's log (GET /api/v2/deliveries) filtered by hook, status, call and time; one delivery
// with its attempts; replay one (POST .../retry); recover a hook's failed ones in a window (POST .../recover).
import { api, canAdmin, message } from "/console/api.js";
import { badge, field, fill, h, pretty, toast, when } from "/console/dom.js";
import { pager } from "/console/hooks.js";

const PAGE = 100;

const STATUSES = ["", "pending", "delivered", "failed", "expired"];

export async function deliveriesView(view, { hook = "" }) {
  const hooks = ((await api("GET", "/api/v2/hooks", { query: { limit: 100, columns: "event,description" } })).data) || [];
  const label = (x) => `${[].concat(x.event || []).join(", ")}${x.description ? ` — ${x.description}` : ""}`;
  const hookSelect = h("select", { name: "hook", id: "filter-hook" }, h("option", { value: "" }, "All hooks"), hooks.map((x) => h("option", { value: x._id, selected: x._id === hook }, label(x))));
  const status = h("select", { name: "status", id: "filter-status" }, STATUSES.map((s) => h("option", { value: s }, s || "Any status")));
  const call = h("input", { name: "call", id: "filter-call", placeholder: "call id", autocomplete: "off", spellcheck: "false" });
  const since = h("input", { name: "since", id: "filter-since", type: "datetime-local", step: 1 });
  const until = h("input", { name: "until", id: "filter-until", type: "datetime-local", step: 1 });
  const table = h("div", { id: "delivery-log", "aria-live": "polite" });
  const admin = canAdmin();
  const ms = (input) => (input.value ? String(new Date(input.value).getTime()) : "");
  let page = 1;
  const load = async () => {
    try {
      const body = await api("GET", "/api/v2/deliveries", {
        query: { hook: hookSelect.value, status: status.value, call: call.value.trim(), since: ms(since), until: ms(until), limit: PAGE, page },
      });
      const rows = body.data || [];
      fill(table, deliveryTable(rows, { admin, reload: load, hooks }), pager(page, rows.length === PAGE, (n) => { page = n; load(); }));
    } catch (e) {
      fill(table, h("p.error.shown", { role: "alert" }, message(e)));
    }
  };
  const recover = async () => {
    if (!hookSelect.value) return toast("Pick a hook to recover its failed deliveries", "bad");
    const body = { hook: hookSelect.value };
    if (since.value) body.since = Number(ms(since));
    if (until.value) body.until = Number(ms(until));
    try {
      const r = (await api("POST", "/api/v2/deliveries/recover", { body })).data;
      toast(`${r.queued} queued again${r.inFlight ? `, ${r.inFlight} in flight left alone` : ""}${r.beyondCap ? `, ${r.beyondCap} more: recover again` : ""}`);
      load();
    } catch (e) {
      toast(message(e), "bad");
    }
  };
  fill(
    view,
    h("div.titlebar", {}, h("h1", {}, "Deliveries")),
    h("form.filters", { onsubmit: (e) => { e.preventDefault(); page = 1; load(); } },
      field("Hook", hookSelect, { name: "hook" }),
      field("Status", status, { name: "status" }),
      field("Call id", call, { name: "call" }),
      field("Created from", since, { name: "since" }),
      field("Created before", until, { name: "until" }),
      h("div.bar", {},
        h("button.primary", { type: "submit", id: "apply-filters" }, "Show"),
        admin ? h("button", { type: "button", id: "recover-hook", onclick: recover, title: "Every failed or expired delivery of the hook in the window is due again" }, "Recover failed") : null,
      ),
    ),
    table,
  );
  await load();
}

export function deliveryTable(rows, { admin, reload, hooks = [], ordered = false }) {
  if (!rows.length) return h("p.empty", {}, "No deliveries match.");
  const names = new Map(hooks.map((x) => [x._id, x.description || [].concat(x.event || []).join(", ")]));
  return h("table.list.deliveries", {},
    h("thead", {}, h("tr", {}, [ordered ? "#" : null, "Created", "Event", "Hook", ordered ? null : "Call", "Status", "Attempts", ""].filter((x) => x !== null).map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((d, i) => h("tr", { "data-delivery": d.id, "data-status": d.status },
      ordered ? h("td", { "data-label": "#" }, String(i + 1)) : null,
      h("td", { "data-label": "Created" }, when(d.createdAt * 1000)),
      h("td", { "data-label": "Event" }, h("code", {}, d.eventKey || "—")),
      h("td", { "data-label": "Hook" }, h("a", { href: `#/hooks/${d.hookId}` }, names.get(d.hookId) || d.hookId.slice(0, 8))),
      ordered ? null : h("td.call", { "data-label": "Call" }, d.callId ? h("a", { href: `#/calls/${encodeURIComponent(d.callId)}`, title: d.callId }, d.callId) : "—"),
      h("td", { "data-label": "Status" }, badge(d.status), d.lastStatus ? ` HTTP ${d.lastStatus}` : "", d.lastError ? h("div.muted.small", {}, d.lastError) : null),
      h("td", { "data-label": "Attempts" }, String(d.attempts)),
      h("td.actions", {}, h("a.button", { href: `#/deliveries/${encodeURIComponent(d.id)}` }, "Attempts"), admin && d.status !== "pending" ? replayButton(d.id, reload) : null),
    ))),
  );
}

function replayButton(id, reload) {
  return h("button", { type: "button", "data-replay": id, onclick: async () => {
    try {
      await api("POST", `/api/v2/deliveries/${encodeURIComponent(id)}/retry`);
      toast("Queued again");
      reload();
    } catch (e) {
      toast(message(e), "bad");
    }
  } }, "Replay");
}

export async function deliveryView(view, id) {
  const d = (await api("GET", `/api/v2/deliveries/${encodeURIComponent(id)}`)).data;
  if (!d) return fill(view, h("h1", {}, "Delivery not found"));
  const admin = canAdmin();
  const attempts = d.attempts_log || [];
  fill(
    view,
    h("div.titlebar", {}, h("h1", {}, "Delivery"), admin && d.status !== "pending" ? replayButton(d.id, () => deliveryView(view, id)) : null, h("a.button", { href: `#/hooks/${d.hookId}/deliveries` }, "Hook's log")),
    h("dl.facts", {},
      h("dt", {}, "Id"), h("dd", {}, h("code", {}, d.id)),
      h("dt", {}, "Status"), h("dd", { id: "delivery-status" }, badge(d.status), d.lastStatus ? ` HTTP ${d.lastStatus}` : ""),
      h("dt", {}, "Attempts"), h("dd", {}, String(d.attempts)),
      h("dt", {}, "Created"), h("dd", {}, when(d.createdAt * 1000)),
      h("dt", {}, "Next attempt"), h("dd", {}, d.nextAttemptAt ? when(d.nextAttemptAt * 1000) : "—"),
      h("dt", {}, "Call"), h("dd", {}, d.callId ? h("a", { href: `#/calls/${encodeURIComponent(d.callId)}` }, d.callId) : "—"),
    ),
    h("h2", {}, "Attempts"),
    attempts.length
      ? h("table.list.attempts", {},
          h("thead", {}, h("tr", {}, ["#", "At", "HTTP", "Duration", "Error", "Response"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, attempts.map((a) => h("tr", {},
            h("td", { "data-label": "#" }, String(a.n)),
            h("td", { "data-label": "At" }, when(a.at * 1000)),
            h("td", { "data-label": "HTTP" }, a.statusCode ? badge(String(a.statusCode), a.statusCode < 300 ? "ok" : "bad") : "—"),
            h("td", { "data-label": "Duration" }, `${a.durationMs} ms`),
            h("td", { "data-label": "Error" }, a.error || ""),
            h("td", { "data-label": "Response" }, a.response ? h("code.excerpt", {}, a.response) : ""),
          ))))
      : h("p.muted", {}, "Not attempted yet."),
    h("h2", {}, "Event"),
    pretty(d.event),
  );
}
