// The hook editor: a form for the common fields and the whole Webitel document as JSON, one `doc` behind both.
// Event keys come from the catalogue (searchable); filters and the fields to send are built from the chosen
// events' fields. A 400 from the API is shown next to the field its message names.
import { api, ApiError, canAdmin, catalogue, keysOf, message } from "/console/api.js";
import { field, fill, h, toast } from "/console/dom.js";

const OPERATIONS = ["==", "!=", "<", ">", "<=", ">=", "reg"];
const METHODS = ["POST", "PUT", "PATCH", "GET", "DELETE"];
// Where an API message ("Bad request: action.url is not a valid URL.") belongs: the first name it mentions.
const FIELD_NAMES = [
  "action.url", "action.method", "action", "event", "retries", "delay", "timeout", "ttl", "secret", "filter",
  "fields", "map", "headers", "rawBody", "customBody", "auth", "enable", "order", "disableOnGone", "description",
];
const NEW_HOOK = { event: [], enable: true, description: "", action: { type: "web", method: "POST", url: "" } };

export async function editorView(view, hookId) {
  const [entries, loaded] = await Promise.all([
    catalogue(),
    hookId ? api("GET", `/api/v2/hooks/${hookId}`) : Promise.resolve({ data: structuredClone(NEW_HOOK) }),
  ]);
  if (!loaded.data) {
    fill(view, h("h1", {}, "Hook not found"), h("p", {}, h("a", { href: "#/hooks" }, "Back to hooks")));
    return;
  }
  const doc = loaded.data;
  for (const name of ["_id", "domain", "disabledReason"]) delete doc[name];
  const editor = new Editor(view, hookId, doc, entries, canAdmin());
  editor.render();
}

class Editor {
  constructor(view, hookId, doc, entries, writable) {
    Object.assign(this, { view, hookId, doc, entries, writable });
    this.byKey = new Map(entries.map((e) => [e.key, e]));
    this.tab = "form";
  }

  /** The union of the chosen events' fields (for filters and field pick). */
  knownFields() {
    const names = new Set();
    for (const key of keysOf(this.doc)) for (const f of (this.byKey.get(key) || {}).fields || []) names.add(f);
    for (const f of Object.keys(this.doc.filter || {})) names.add(f);
    for (const f of this.doc.fields || []) names.add(f);
    return [...names];
  }

  render() {
    const title = this.hookId ? (this.writable ? "Edit hook" : "Hook") : "New hook";
    this.general = h("p.error", { role: "alert", id: "editor-error" });
    this.body = h("div.editor-body", { role: "tabpanel", id: "editor-panel", "aria-labelledby": `tab-${this.tab}` });
    // The WAI-ARIA tabs pattern: the chosen tab is the one Tab stop, arrow keys move between the two.
    const tabs = h(
      "div.tabs",
      { role: "tablist", "aria-label": "Edit as", onkeydown: (e) => this.tabKey(e) },
      ["form", "json"].map((t) =>
        h(
          "button",
          {
            type: "button",
            role: "tab",
            id: `tab-${t}`,
            "aria-controls": "editor-panel",
            "aria-selected": String(this.tab === t),
            tabindex: this.tab === t ? "0" : "-1",
            onclick: () => this.switchTab(t),
          },
          t === "form" ? "Form" : "JSON (Webitel document)",
        ),
      ),
    );
    fill(
      this.view,
      h(
        "div.titlebar",
        {},
        h("h1", {}, title),
        this.hookId ? h("a.button", { href: `#/hooks/${this.hookId}/try` }, "Try it") : null,
        this.hookId ? h("a.button", { href: `#/hooks/${this.hookId}/deliveries` }, "Deliveries") : null,
      ),
      tabs,
      h(
        "form",
        { id: "hook-form", onsubmit: (e) => this.save(e), novalidate: true },
        this.body,
        this.general,
        this.writable
          ? h(
              "div.bar",
              {},
              h("button.primary", { type: "submit", id: "save-hook" }, this.hookId ? "Save" : "Create hook"),
              h("a.button", { href: "#/hooks" }, "Cancel"),
            )
          : null,
      ),
    );
    this.renderBody();
  }

  switchTab(tab) {
    if (tab === this.tab) return;
    if (this.tab === "json" && !this.readJson()) return;
    this.tab = tab;
    for (const b of this.view.querySelectorAll("[role=tab]")) {
      b.setAttribute("aria-selected", String(b.id === `tab-${tab}`));
      b.tabIndex = b.id === `tab-${tab}` ? 0 : -1;
    }
    this.body.setAttribute("aria-labelledby", `tab-${tab}`);
    this.renderBody();
  }

  tabKey(event) {
    if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
    event.preventDefault();
    const next = this.tab === "form" ? "json" : "form";
    this.switchTab(event.key === "Home" ? "form" : event.key === "End" ? "json" : next);
    document.getElementById(`tab-${this.tab}`).focus();
  }

  readJson() {
    try {
      const parsed = JSON.parse(this.jsonArea.value);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("The document must be a JSON object.");
      this.doc = parsed;
      return true;
    } catch (error) {
      this.showError("json", `Not valid JSON: ${error.message}`);
      return false;
    }
  }

  renderBody() {
    if (this.tab === "json") {
      this.jsonArea = h("textarea.code", { rows: 24, spellcheck: "false", id: "hook-json", name: "json" });
      this.jsonArea.value = JSON.stringify(this.doc, null, 2);
      fill(this.body, field("Hook document", this.jsonArea, { name: "json", hint: "Exactly what the API stores: every field, headers and auth too." }));
      return;
    }
    const d = this.doc;
    d.action = d.action || { type: "web", method: "POST", url: "" };
    const text = (name, value, set, attrs = {}) => {
      const input = h("input", { name, value: value ?? "", ...attrs });
      input.addEventListener("input", () => set(input.value));
      return input;
    };
    const number = (name) =>
      text(name, d[name], (v) => (v === "" ? delete d[name] : (d[name] = Number(v))), { type: "number", min: 0, step: "any", inputmode: "decimal" });
    const method = h("select", { name: "action.method" }, METHODS.map((m) => h("option", { value: m, selected: d.action.method === m }, m)));
    method.addEventListener("change", () => (d.action.method = method.value));
    const enabled = h("input", { type: "checkbox", name: "enable", checked: d.enable === true });
    enabled.addEventListener("change", () => (d.enable = enabled.checked));
    const order = h("select", { name: "order" }, [["", "any order (fastest)"], ["call", "one at a time per call, in event order"]].map(([v, t]) => h("option", { value: v, selected: (d.order || "") === v }, t)));
    order.addEventListener("change", () => (order.value ? (d.order = order.value) : delete d.order));
    const custom = h("input", { type: "checkbox", name: "customBody", checked: d.customBody === true });
    const raw = h("textarea.code", { name: "rawBody", rows: 4, spellcheck: "false" });
    raw.value = d.rawBody || "";
    raw.addEventListener("input", () => (raw.value ? (d.rawBody = raw.value) : delete d.rawBody));
    custom.addEventListener("change", () => (custom.checked ? (d.customBody = true) : delete d.customBody));
    fill(
      this.body,
      h(
        "fieldset",
        {},
        h("legend", {}, "Events"),
        this.eventPicker(),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Destination"),
        h(
          "div.row",
          {},
          field("Method", method, { name: "action.method" }),
          field("URL", text("action.url", d.action.url, (v) => (d.action.url = v), { type: "url", placeholder: "https://crm.example.com/hook", autocomplete: "off" }), { name: "action.url" }),
        ),
        field("Description", text("description", d.description, (v) => (d.description = v)), { name: "description" }),
        h("div.check", { "data-field": "enable" }, h("label", {}, enabled, " Enabled")),
        h(
          "div.row",
          {},
          field("Retries", number("retries"), { name: "retries", hint: "0-100" }),
          field("Delay (s)", number("delay"), { name: "delay", hint: "between retries" }),
          field("Timeout (s)", number("timeout"), { name: "timeout", hint: "0.1-60" }),
        ),
        h(
          "div.row",
          {},
          field("Signing secret", text("secret", d.secret, (v) => (v ? (d.secret = v) : delete d.secret), { placeholder: "whsec_…", autocomplete: "off", spellcheck: "false" }), { name: "secret", hint: "Standard Webhooks; shown masked once saved" }),
          field("Order", order, { name: "order" }),
        ),
      ),
      h("fieldset", {}, h("legend", {}, "Filters"), this.filters()),
      h("fieldset", {}, h("legend", {}, "Fields to send"), this.fieldPick()),
      h(
        "fieldset",
        {},
        h("legend", {}, "Body"),
        h("div.check", { "data-field": "customBody" }, h("label", {}, custom, " Custom body (template)")),
        field("Raw body", raw, { name: "rawBody", hint: "${Field-Name} is replaced by the event's value" }),
      ),
    );
    if (!this.writable) for (const el of this.body.querySelectorAll("input, select, textarea, button")) el.disabled = true;
  }

  eventPicker() {
    const chosen = h("div.chips", { id: "chosen-events", "aria-live": "polite" });
    const results = h("ul.catalogue", { id: "catalogue-results" });
    const search = h("input", { type: "search", name: "event-search", placeholder: "Search events (e.g. hangup) or type a key and press Enter", autocomplete: "off" });
    const renderChosen = () => {
      const keys = keysOf(this.doc);
      fill(
        chosen,
        keys.length
          ? keys.map((k) =>
              h("span.chip", {}, h("code", {}, k), h("button", { type: "button", "aria-label": `Remove ${k}`, onclick: () => setKeys(keys.filter((x) => x !== k)) }, "×")),
            )
          : h("span.muted", {}, "No event chosen yet."),
      );
    };
    const setKeys = (keys) => {
      this.doc.event = keys.length === 1 ? keys[0] : keys;
      renderChosen();
      renderResults();
      this.refreshFieldLists();
    };
    const renderResults = () => {
      // Every word of the search in the key (its _ : - > read as spaces) or in the description.
      const words = search.value.toLowerCase().split(/[\s_:>-]+/).filter(Boolean);
      const q = words.length > 0;
      const keys = keysOf(this.doc);
      const haystack = (e) => `${e.key.toLowerCase().replace(/[_:>-]+/g, " ")} ${(e.description || "").toLowerCase()}`;
      const found = this.entries
        .filter((e) => !keys.includes(e.key) && words.every((w) => haystack(e).includes(w)))
        .slice(0, q ? 30 : 8);
      fill(
        results,
        found.map((e) =>
          h(
            "li",
            {},
            h(
              "button.pick",
              { type: "button", "data-key": e.key, onclick: () => setKeys([...keysOf(this.doc), e.key]) },
              h("code", {}, e.key),
              h("span.muted.small", {}, e.description || ""),
              e.lastSeen ? h("span.small.seen", {}, " seen here") : null,
            ),
          ),
        ),
        this.entries.length ? null : h("li.muted.small", {}, "No catalogue on this server: type an event key and press Enter."),
      );
    };
    search.addEventListener("input", renderResults);
    search.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      e.preventDefault();
      const value = search.value.trim();
      if (value && !keysOf(this.doc).includes(value)) setKeys([...keysOf(this.doc), value]);
      search.value = "";
      renderResults();
    });
    renderChosen();
    renderResults();
    return h("div", { "data-field": "event" }, chosen, field("Add an event", search, { name: "event" }), results);
  }

  refreshFieldLists() {
    const list = document.getElementById("event-fields");
    if (list) fill(list, this.knownFields().map((f) => h("option", { value: f })));
    const pick = document.getElementById("field-pick");
    if (pick) pick.replaceWith(this.fieldPick());
  }

  filters() {
    const rows = h("div.filter-rows", { id: "filter-rows" });
    const datalist = h("datalist", { id: "event-fields" }, this.knownFields().map((f) => h("option", { value: f })));
    const draw = () => {
      const entries = Object.entries(this.doc.filter || {});
      fill(
        rows,
        entries.length ? null : h("p.muted.small", {}, "Every event of the chosen keys is sent. Add a condition to send only some."),
        entries.map(([name, cond], i) => {
          const key = h("input", { value: name, list: "event-fields", "aria-label": "Event field", name: `filter-field-${i}`, placeholder: "Hangup-Cause" });
          const op = h("select", { "aria-label": "Operation", name: `filter-op-${i}` }, OPERATIONS.map((o) => h("option", { value: o, selected: cond.operation === o }, o)));
          const value = h("input", { value: cond.value ?? "", "aria-label": "Value", name: `filter-value-${i}`, placeholder: "NORMAL_CLEARING" });
          const update = () => {
            const next = {};
            for (const [n, c] of Object.entries(this.doc.filter || {})) next[n === name ? key.value : n] = n === name ? { operation: op.value, value: value.value } : c;
            name = key.value;
            this.doc.filter = next;
          };
          for (const el of [key, value]) el.addEventListener("input", update);
          op.addEventListener("change", update);
          const drop = h("button", { type: "button", "aria-label": "Remove condition", onclick: () => {
            delete this.doc.filter[name];
            if (!Object.keys(this.doc.filter).length) delete this.doc.filter;
            draw();
          } }, "×");
          return h("div.filter-row", {}, key, op, value, drop);
        }),
      );
    };
    const add = h("button", { type: "button", id: "add-filter", onclick: () => {
      this.doc.filter = this.doc.filter || {};
      let name = this.knownFields().find((f) => !(f in this.doc.filter)) || "Field-Name";
      while (name in this.doc.filter) name += "_";
      this.doc.filter[name] = { operation: "==", value: "" };
      draw();
    } }, "Add condition");
    draw();
    return h("div", { "data-field": "filter" }, datalist, rows, add, h("p.error", { role: "alert", "data-error-for": "filter" }));
  }

  fieldPick() {
    const names = this.knownFields();
    const picked = new Set(this.doc.fields || []);
    const map = this.doc.map || {};
    const box = h("div", { id: "field-pick", "data-field": "fields" });
    const sync = () => {
      const fields = [...box.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
      if (fields.length) this.doc.fields = fields;
      else delete this.doc.fields;
      const renames = {};
      for (const input of box.querySelectorAll("input[data-rename]")) {
        if (input.value && input.value !== input.dataset.rename) renames[input.dataset.rename] = input.value;
      }
      if (Object.keys(renames).length) this.doc.map = renames;
      else delete this.doc.map;
    };
    fill(
      box,
      names.length
        ? h("p.muted.small", {}, "Tick the fields to send (none ticked: the whole event); rename any on the way out.")
        : h("p.muted.small", {}, "Pick an event from the catalogue to choose among its fields."),
      h(
        "div.pick-grid",
        {},
        names.map((n, i) =>
          h(
            "div.pick-row",
            {},
            h("label", { title: n }, h("input", { type: "checkbox", value: n, checked: picked.has(n), onchange: sync, name: `field-${i}` }), " ", h("code", {}, n)),
            h("input", { "data-rename": n, value: map[n] || "", placeholder: "rename to…", "aria-label": `Rename ${n}`, oninput: sync }),
          ),
        ),
      ),
      h("p.error", { role: "alert", "data-error-for": "fields" }),
    );
    return box;
  }

  clearErrors() {
    for (const el of this.view.querySelectorAll(".error")) {
      el.textContent = "";
      el.classList.remove("shown");
    }
    for (const el of this.view.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  showError(name, text) {
    const slot = this.view.querySelector(`[data-error-for="${name}"]`);
    const target = slot || this.general;
    target.textContent = text;
    target.classList.add("shown");
    const control = this.view.querySelector(`[name="${name}"]`);
    if (control) {
      control.setAttribute("aria-invalid", "true");
      control.focus();
    } else {
      target.scrollIntoView({ block: "center" });
    }
  }

  async save(event) {
    event.preventDefault();
    this.clearErrors();
    if (this.tab === "json" && !this.readJson()) return;
    try {
      if (this.hookId) {
        await api("PUT", `/api/v2/hooks/${this.hookId}`, { body: this.doc });
        toast("Hook saved");
      } else {
        await api("POST", "/api/v2/hooks", { body: this.doc });
        toast("Hook created");
      }
      location.hash = "#/hooks";
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 400) return this.showError("general", message(error));
      const text = error.message.replace(/^Bad request:\s*/, "");
      const name = this.tab === "json" ? "json" : FIELD_NAMES.find((n) => new RegExp(`(^|[^\\w.])${n.replace(".", "\\.")}(?![\\w])`).test(text)) || "general";
      this.showError(name, text);
    }
  }
}
