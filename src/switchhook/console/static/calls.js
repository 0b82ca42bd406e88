// Calls: every delivery of one call across the domain's hooks, in event order (GET /api/v2/deliveries?call=),
// and recovering them (POST /api/v2/deliveries/recover {call}).
import { api, canAdmin, message } from "/console/api.js";
import { field, fill, h, toast } from "/console/dom.js";
import { deliveryTable } from "/console/deliveries.js";

export async function callsView(view, callId) {
  const input = h("input", { name: "call", id: "call-id", value: callId || "", placeholder: "Channel-Call-UUID / X-Call-Id", autocomplete: "off", spellcheck: "false", required: true });
  const out = h("div", { id: "call-deliveries", "aria-live": "polite" });
  const admin = canAdmin();
  fill(
    view,
    h("div.titlebar", {}, h("h1", {}, "Calls")),
    h("form.filters.single", { onsubmit: (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (value) location.hash = `#/calls/${encodeURIComponent(value)}`;
    } }, field("Call id", input, { name: "call", hint: "The X-Call-Id your endpoint received" }), h("div.bar", {}, h("button.primary", { type: "submit", id: "find-call" }, "Find"))),
    out,
  );
  if (!callId) return input.focus();
  const load = async () => {
    try {
      const [rows, hooks] = await Promise.all([
        api("GET", "/api/v2/deliveries", { query: { call: callId, limit: 1000 } }),
        api("GET", "/api/v2/hooks", { query: { limit: 100, columns: "event,description" } }),
      ]);
      const list = rows.data || [];
      fill(out,
        h("p", {}, `${list.length} ${list.length === 1 ? "delivery" : "deliveries"} of this call, in event order.`),
        admin && list.length ? h("button", { type: "button", id: "recover-call", onclick: recover }, "Recover failed") : null,
        deliveryTable(list, { admin, reload: load, hooks: hooks.data || [], ordered: true }));
    } catch (e) {
      fill(out, h("p.error.shown", { role: "alert" }, message(e)));
    }
  };
  const recover = async () => {
    try {
      const r = (await api("POST", "/api/v2/deliveries/recover", { body: { call: callId } })).data;
      toast(`${r.queued} queued again${r.inFlight ? `, ${r.inFlight} in flight left alone` : ""}`);
      load();
    } catch (e) {
      toast(message(e), "bad");
    }
  };
  await load();
}
