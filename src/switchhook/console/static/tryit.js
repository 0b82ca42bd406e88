// Try it: run a hook on a catalogue sample or a recent real event of the domain (POST /api/v2/hooks/{id}/test),
// see each filter condition and the exact request (secrets masked by the API), then send it for real, or post
// it as an event so it goes through the delivery log.
import { api, canAdmin, catalogue, keysOf, message } from "/console/api.js";
import { badge, field, fill, h, pretty, toast } from "/console/dom.js";

export async function tryView(view, hookId) {
  const [hookBody, entries, recent] = await Promise.all([
    api("GET", `/api/v2/hooks/${hookId}`),
    catalogue(),
    api("GET", "/api/v2/deliveries", { query: { limit: 20 } }).catch(() => ({ data: [] })),
  ]);
  const hook = hookBody.data;
  if (!hook) return fill(view, h("h1", {}, "Hook not found"));
  const keys = keysOf(hook);
  const ownFirst = [...entries.filter((e) => keys.includes(e.key)), ...entries.filter((e) => !keys.includes(e.key))];
  const source = h("select", { id: "try-source", name: "source" },
    h("option", { value: "" }, "Choose an event…"),
    h("optgroup", { label: "Catalogue samples" }, ownFirst.filter((e) => e.sample).map((e) => h("option", { value: `sample:${e.key}` }, e.key))),
    h("optgroup", { label: "Recent events of this domain" }, (recent.data || []).map((d) => h("option", { value: `delivery:${d.id}` }, `${d.eventKey || "event"} · ${new Date(d.createdAt * 1000).toLocaleTimeString()}${d.callId ? ` · call ${d.callId.slice(0, 8)}` : ""}`))),
  );
  const eventArea = h("textarea.code", { id: "try-event", name: "event", rows: 14, spellcheck: "false" });
  const result = h("section.result", { id: "try-result", "aria-live": "polite" });
  const error = h("p.error", { role: "alert", "data-error-for": "event" });

  source.addEventListener("change", async () => {
    const [kind, id] = [source.value.slice(0, source.value.indexOf(":")), source.value.slice(source.value.indexOf(":") + 1)];
    fill(error);
    error.classList.remove("shown");
    if (kind === "sample") eventArea.value = JSON.stringify(entries.find((e) => e.key === id).sample, null, 2);
    if (kind === "delivery") {
      try {
        const one = await api("GET", `/api/v2/deliveries/${encodeURIComponent(id)}`);
        eventArea.value = JSON.stringify((one.data && one.data.event) || {}, null, 2);
      } catch (e) {
        fill(error, `Could not load that event: ${message(e)}`);
        error.classList.add("shown");
      }
    }
  });
  const readEvent = () => {
    fill(error);
    error.classList.remove("shown");
    try {
      const value = JSON.parse(eventArea.value);
      if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("an event is one JSON object");
      return value;
    } catch (e) {
      fill(error, `Not an event: ${e.message}`);
      error.classList.add("shown");
      eventArea.focus();
      return null;
    }
  };
  const run = async (send) => {
    const event = readEvent();
    if (!event) return;
    fill(result, h("p.muted", {}, send ? "Sending…" : "Running…"));
    try {
      const body = await api("POST", `/api/v2/hooks/${hookId}/test`, { body: event, query: { send: send ? "true" : "" } });
      fill(result, report(body.data));
    } catch (e) {
      fill(result, h("p.error.shown", { role: "alert" }, message(e)));
    }
  };
  const post = async () => {
    const event = readEvent();
    if (!event) return;
    try {
      const body = await api("POST", "/api/v2/events", { body: event, scoped: false });
      const n = body.data.deliveries;
      const again = body.data.duplicates
        ? " It was posted before (same Core-UUID and Event-Sequence): stored once. Change Event-Sequence to post it again."
        : "";
      toast(`Event accepted: ${n} ${n === 1 ? "delivery" : "deliveries"}`);
      fill(result, h("p", { id: "post-result" }, `Accepted: ${n} ${n === 1 ? "delivery" : "deliveries"} queued.${again} `, h("a", { href: `#/hooks/${hookId}/deliveries` }, "See the delivery log")));
    } catch (e) {
      fill(result, h("p.error.shown", { role: "alert" }, message(e)));
    }
  };
  const admin = canAdmin();
  fill(
    view,
    h("div.titlebar", {}, h("h1", {}, "Try it"), h("a.button", { href: `#/hooks/${hookId}` }, "Edit hook"), h("a.button", { href: `#/hooks/${hookId}/deliveries` }, "Deliveries")),
    h("p.muted", {}, keys.map((k) => h("code.key", {}, k)), " → ", (hook.action && hook.action.url) || ""),
    h("div.try", {},
      h("div", {},
        field("Event", source, { name: "source", hint: "A sample is a real captured event, rewritten to your domain." }),
        field("Event JSON", eventArea, { name: "event-json" }),
        error,
        h("div.bar", {},
          h("button.primary", { type: "button", id: "dry-run", onclick: () => run(false) }, "Dry run"),
          admin ? h("button", { type: "button", id: "send-now", onclick: () => run(true) }, "Send it now") : null,
          admin ? h("button", { type: "button", id: "post-event", onclick: post, title: "POST /api/v2/events: every matching hook gets it, with retries and a log" }, "Post as event") : null,
        ),
      ),
      result,
    ),
  );
}

function report(data) {
  const conditions = Object.entries(data.filter || {});
  const request = data.request || {};
  const verdict = data.eventMatches && data.filterPasses;
  return [
    h("h2", {}, "Result"),
    h("p", { id: "verdict" }, verdict ? badge("would be sent", "ok") : badge("would not be sent", "bad"), " ",
      data.eventMatches ? "" : `The hook does not subscribe to ${data.eventKey}. `,
      data.enabled ? "" : "The hook is disabled. "),
    conditions.length
      ? h("table.list.compact", { id: "filter-result" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Condition on"), h("th", { scope: "col" }, "Result"))),
          h("tbody", {}, conditions.map(([name, ok]) => h("tr", {}, h("td", { "data-label": "Condition on" }, h("code", {}, name)), h("td", { "data-label": "Result" }, ok ? badge("passes", "ok") : badge("fails", "bad"))))))
      : h("p.muted", {}, "No filter: every event of its keys passes."),
    data.filterNotEvaluated ? pretty(data.filterNotEvaluated) : null,
    h("h3", {}, "Request"),
    h("p", { id: "request-line" }, h("code", {}, `${request.method || ""} ${request.url || ""}`)),
    h("table.list.compact.headers", {}, h("tbody", {}, Object.entries(request.headers || {}).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, h("code", {}, v)))))),
    request.body !== null && request.body !== undefined ? pretty(prettyBody(request.body)) : h("p.muted", {}, "No body."),
    (request.notes || []).length ? h("ul.notes", {}, request.notes.map((n) => h("li", {}, n))) : null,
    data.response ? response(data.response) : null,
  ];
}

function response(r) {
  return [
    h("h3", {}, "Response"),
    h("p", { id: "send-result" }, r.status ? badge(`HTTP ${r.status}`, r.status < 300 ? "ok" : "bad") : badge("no answer", "bad"), r.durationMs !== undefined ? ` in ${r.durationMs} ms` : "", r.error ? ` — ${r.error}` : ""),
    r.body ? pretty(r.body) : null,
  ];
}

function prettyBody(body) {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}
