// Building the page without ever parsing HTML: every string from the API (hook documents, events and responses
// are attacker input) becomes a text node or an attribute value, never markup. No innerHTML anywhere.

/** h("tag.class", {attr: value, onclick: fn}, ...children): an element; strings and numbers become text. */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "value") el.value = value;
    else if (name === "checked") el.checked = Boolean(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form control; `hint` and the error slot are tied to it for screen readers. */
export function field(label, control, { hint, name } = {}) {
  const id = control.id || `f-${name || Math.random().toString(36).slice(2)}`;
  control.id = id;
  const error = h("p.error", { id: `${id}-error`, role: "alert", "data-error-for": name || id });
  const hintEl = hint ? h("p.hint", { id: `${id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", [hintEl && hintEl.id, error.id].filter(Boolean).join(" "));
  return h("div.field", { "data-field": name || id }, h("label", { for: id }, label), control, hintEl, error);
}

export function when(ms) {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** A JSON value, pretty-printed in a <pre> (text, never markup). */
export function pretty(value) {
  return h("pre.code", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

export function badge(text, kind = text) {
  return h(`span.badge.b-${String(kind).replace(/[^a-z0-9-]/gi, "")}`, {}, text);
}

let toastTimer = 0;
export function toast(message, kind = "ok") {
  const el = document.getElementById("toast");
  fill(el, message);
  el.dataset.kind = kind;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 4000);
}
