// The omnifuse page: plain JS, no build step. The API key (if the server has one) is read from
// the key field and sent as X-API-Key; thumbnails are fetched with it and shown as blob URLs.
"use strict";

const $ = (id) => document.getElementById(id);

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

async function call(path, form) {
  const resp = await fetch(path, { method: "POST", body: form, headers: headers() });
  const body = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
  if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
  return body;
}

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

async function refreshStatus() {
  try {
    const resp = await fetch("/readyz");
    const body = await resp.json();
    $("status").textContent = resp.ok
      ? `ready: ${body.model_type} (${body.modalities.join(", ")}), ${body.index_items} index items`
      : body.error;
    if (!resp.ok) setTimeout(refreshStatus, 1000);
  } catch (e) { $("status").textContent = "server unreachable"; }
}

$("cls-image").addEventListener("change", () => {
  const preview = $("cls-preview");
  clear(preview);
  const file = $("cls-image").files[0];
  if (file) { const img = document.createElement("img"); img.src = URL.createObjectURL(file); preview.appendChild(img); }
});

$("cls-run").addEventListener("click", async () => {
  const table = $("cls-result");
  clear(table); $("cls-error").textContent = "";
  const file = $("cls-image").files[0];
  const labels = $("cls-labels").value;
  if (!file || !labels.trim()) { $("cls-error").textContent = "choose an image and type labels"; return; }
  const form = new FormData();
  form.append("image", file);
  form.append("labels", labels);
  try {
    const body = await call("/v1/classify", form);
    for (const { label, score } of body.results[0]) {
      const row = table.insertRow();
      row.className = "cls-row";
      row.insertCell().textContent = label;
      row.insertCell().textContent = score.toFixed(3);
      const bar = row.insertCell(); bar.className = "bar";
      const div = document.createElement("div"); div.style.width = `${Math.round(score * 100)}px`; bar.appendChild(div);
    }
  } catch (e) { $("cls-error").textContent = e.message; }
});

async function thumbnail(url, img) {
  const resp = await fetch(url, { headers: headers() });
  if (resp.ok) img.src = URL.createObjectURL(await resp.blob());
}

$("search-run").addEventListener("click", async () => {
  const grid = $("search-grid");
  clear(grid); $("search-error").textContent = "";
  const form = new FormData();
  const file = $("search-image").files[0];
  const text = $("search-text").value.trim();
  if (file) form.append("image", file); else if (text) form.append("text", text);
  else { $("search-error").textContent = "type a query or choose an image"; return; }
  form.append("k", $("search-k").value || "12");
  try {
    const body = await call("/v1/search", form);
    for (const hit of body.results) {
      const card = document.createElement("div"); card.className = "card";
      if (hit.thumbnail) { const img = document.createElement("img"); img.alt = hit.id; card.appendChild(img); thumbnail(hit.thumbnail, img); }
      const caption = document.createElement("div");
      caption.textContent = `${hit.metadata.text || hit.id} (${hit.score.toFixed(2)})`;
      card.appendChild(caption);
      grid.appendChild(card);
    }
  } catch (e) { $("search-error").textContent = e.message; }
});

$("gen-run").addEventListener("click", async () => {
  const grid = $("gen-grid");
  clear(grid); $("gen-error").textContent = "";
  const prompt = $("gen-prompt").value.trim();
  if (!prompt) { $("gen-error").textContent = "type a prompt"; return; }
  const payload = {
    prompt,
    n: parseInt($("gen-n").value || "4", 10),
    guidance_scale: parseFloat($("gen-guidance").value || "1"),
    seed: parseInt($("gen-seed").value || "0", 10),
  };
  $("gen-run").disabled = true;
  try {
    const resp = await fetch("/v1/generate/image", {
      method: "POST", body: JSON.stringify(payload), headers: { ...headers(), "Content-Type": "application/json" },
    });
    const body = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
    if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
    body.images.forEach((b64, i) => {
      const card = document.createElement("div"); card.className = "card gen-card";
      const img = document.createElement("img"); img.alt = `${prompt} #${i + 1}`; img.src = `data:image/png;base64,${b64}`;
      card.appendChild(img); grid.appendChild(card);
    });
  } catch (e) { $("gen-error").textContent = e.message; }
  finally { $("gen-run").disabled = false; }
});

function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(new Error("cannot read the file"));
    reader.readAsDataURL(file);
  });
}

// Server-sent events from a POST: read the stream, split at blank lines, hand each event on.
async function streamEvents(path, payload, onEvent) {
  const resp = await fetch(path, {
    method: "POST", body: JSON.stringify(payload), headers: { ...headers(), "Content-Type": "application/json" },
  });
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
    throw new Error(body.error || `HTTP ${resp.status}`);
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      const fields = {};
      for (const line of block.split("\n")) { const at = line.indexOf(": "); fields[line.slice(0, at)] = line.slice(at + 2); }
      onEvent(fields.event, JSON.parse(fields.data));
    }
  }
}

$("txt-run").addEventListener("click", async () => {
  const out = $("txt-output");
  out.textContent = ""; out.dataset.done = ""; $("txt-error").textContent = "";
  const file = $("txt-image").files[0];
  if (!file) { $("txt-error").textContent = "choose an image"; return; }
  const question = $("txt-question").value.trim();
  const image = await base64Of(file);
  const common = { max_new_tokens: parseInt($("txt-max").value || "32", 10), stream: true };
  const [path, payload] = question
    ? ["/v1/answer", { ...common, image, question }]
    : ["/v1/caption", { ...common, images: [image] }];
  try {
    await streamEvents(path, payload, (event, data) => {
      if (event === "token") out.textContent += data.text;
      else if (event === "done") { out.textContent = data.results[0].text; out.dataset.done = "1"; }
      else if (event === "error") $("txt-error").textContent = data.error;
    });
  } catch (e) { $("txt-error").textContent = e.message; }
});

refreshStatus();
