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

refreshStatus();
