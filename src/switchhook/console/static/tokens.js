// Tokens (admins): the domain's tokens; create (the token is shown once), disable/enable, revoke.
import { api, message, session } from "/console/api.js";
import { badge, field, fill, h, toast, when } from "/console/dom.js";

export async function tokensView(view) {
  const domain = session.get().domain;
  const base = `/api/v2/domains/${encodeURIComponent(domain)}/settings/token`;
  const tokens = (await api("GET", base, { scoped: false })).data || [];
  const role = h("select", { name: "role", id: "token-role" }, h("option", { value: "admin" }, "admin"), h("option", { value: "user" }, "user"));
  const days = h("input", { name: "days", id: "token-days", type: "number", min: 1, max: 3650, value: 365 });
  const shown = h("div", { id: "new-token", "aria-live": "polite" });
  const reload = () => tokensView(view);
  const create = async (e) => {
    e.preventDefault();
    try {
      const body = await api("POST", base, { body: { role: role.value, expire: Date.now() + Number(days.value) * 86_400_000 }, scoped: false });
      const box = h("textarea.code", { readonly: true, rows: 3, id: "token-value", "aria-label": "New token" });
      box.value = body.info.token;
      await tokensView(view);
      fill(document.getElementById("new-token"), h("div.once", {}, h("p", {}, h("strong", {}, "Copy this token now: "), "it is not shown again."), box));
      document.getElementById("token-value").select();
    } catch (error) {
      toast(message(error), "bad");
    }
  };
  fill(
    view,
    h("div.titlebar", {}, h("h1", {}, "Tokens")),
    h("form.filters", { onsubmit: create }, field("Role", role, { name: "role" }), field("Valid for (days)", days, { name: "days" }), h("div.bar", {}, h("button.primary", { type: "submit", id: "create-token" }, "Create token"))),
    shown,
    tokens.length
      ? h("table.list.tokens", {},
          h("thead", {}, h("tr", {}, ["Id", "Role", "Expires", "State", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, tokens.map((t) => h("tr", { "data-token": t.uuid },
            h("td", { "data-label": "Id" }, h("code", {}, t.uuid)),
            h("td", { "data-label": "Role" }, t.roleName),
            h("td", { "data-label": "Expires" }, when(t.expire)),
            h("td", { "data-label": "State" }, t.enabled ? badge("enabled", "ok") : badge("disabled", "off")),
            h("td", { "data-label": "Created" }, `${when(t.createdOn)} by ${t.createdBy}`),
            h("td.actions", {},
              h("button", { type: "button", onclick: () => act("PATCH", `${base}/${t.uuid}`, { state: !t.enabled }, reload) }, t.enabled ? "Disable" : "Enable"),
              revoke(`${base}/${t.uuid}`, reload)),
          ))))
      : h("p.empty", {}, "No domain tokens."),
  );
}

async function act(method, path, body, reload) {
  try {
    await api(method, path, { body, scoped: false });
    toast("Done");
    reload();
  } catch (error) {
    toast(message(error), "bad");
  }
}

function revoke(path, reload) {
  const button = h("button.danger", { type: "button" }, "Revoke");
  button.addEventListener("click", () => {
    if (button.dataset.armed === "yes") return act("DELETE", path, undefined, reload);
    button.dataset.armed = "yes";
    button.textContent = "Confirm revoke";
  });
  button.addEventListener("blur", () => {
    button.dataset.armed = "";
    button.textContent = "Revoke";
  });
  return button;
}
