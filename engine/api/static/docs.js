// Interactive API docs without a CDN: read the OpenAPI schema, list operations, let the user try them.
"use strict";

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function resolve(schema, ref) {
  return ref.replace(/^#\//, "").split("/").reduce((node, key) => node[key], schema);
}

function example(schema, s, depth = 0) {
  if (!s || depth > 4) return null;
  if (s.$ref) return example(schema, resolve(schema, s.$ref), depth + 1);
  if (s.oneOf || s.anyOf) return example(schema, (s.oneOf || s.anyOf).find((x) => x.type !== "null"), depth + 1);
  if (s.enum) return s.enum[0];
  if (s.type === "object") {
    const out = {};
    for (const k of s.required || Object.keys(s.properties || {})) out[k] = example(schema, (s.properties || {})[k], depth + 1);
    return out;
  }
  return { string: "SYN", number: 1, integer: 1, boolean: false, array: [] }[s.type] ?? null;
}

async function main() {
  const schema = await (await fetch("/api/schema/openapi.json")).json();
  const root = document.getElementById("ops");
  for (const [path, item] of Object.entries(schema.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const box = el("details", { class: "op" });
      const sum = el("summary");
      sum.append(el("span", { class: "method " + method.toUpperCase() }, method.toUpperCase()), el("code", {}, path), el("span", { class: "muted" }, "  " + (op.summary || "")));
      box.append(sum);
      if (op.description) box.append(el("p", {}, op.description));
      const params = (op.parameters || []).map((p) => p.name + " (" + p.in + (p.required ? ", required" : "") + ")");
      if (params.length) box.append(el("p", { class: "muted" }, "parameters: " + params.join(", ")));
      const url = el("input", { size: "60" });
      url.value = path;
      box.append(el("p", {}, "URL "), url);
      let body = null;
      const content = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (content) {
        body = el("textarea");
        body.value = JSON.stringify(example(schema, content.schema), null, 2);
        box.append(body);
      }
      const out = el("pre");
      const btn = el("button", {}, "Try it");
      btn.addEventListener("click", async () => {
        const token = document.getElementById("token").value.trim();
        const res = await fetch(url.value, {
          method: method.toUpperCase(),
          headers: Object.assign({ "Content-Type": "application/json" }, token ? { "Authorization": "Bearer " + token } : {}),
          body: body ? body.value : undefined,
        });
        out.textContent = res.status + " " + res.statusText + "\n" + (await res.text()).slice(0, 20000);
      });
      box.append(el("p"), btn, out);
      root.append(box);
    }
  }
}

document.addEventListener("DOMContentLoaded", main);
