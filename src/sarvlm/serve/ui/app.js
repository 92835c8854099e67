// sarvlm web UI: a small static page on the server's own API (no framework, no CDN).
// Upload → POST /v1/sarvlm/quicklook (server-side SAR stretch, footprint, prior PCA overlay);
// ask → POST /v1/chat/completions with stream: true (SSE), boxes from the final chunk's `sarvlm`.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { sar: null, optical: null, look: null, history: [], last: null, controller: null };

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function status(text) { $("status").textContent = text || ""; }

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function geo() {
  const out = {};
  const bbox = $("bbox").value.trim();
  if (bbox) out.bbox = bbox.split(",").map(Number);
  const year = $("year").value.trim();
  if (year) out.year = Number(year);
  if ($("no-prior").checked) out.prior = false;
  return Object.keys(out).length ? out : null;
}

async function apiError(resp) {
  try { const body = await resp.json(); return body.error ? body.error.message : resp.statusText; }
  catch (e) { return resp.status + " " + resp.statusText; }
}

async function loadQuicklook() {
  if (!state.sar) return;
  status("");
  const resp = await fetch("/v1/sarvlm/quicklook", {
    method: "POST", headers: headers(), body: JSON.stringify({ image: state.sar, geo: geo() }),
  });
  if (!resp.ok) { status(await apiError(resp)); return; }
  const look = await resp.json();
  state.look = look;
  $("quicklook").src = look.quicklook;
  $("prior-overlay").src = look.prior_overlay || "";
  $("prior-overlay").style.display = look.prior_overlay && $("show-prior").checked ? "block" : "none";
  $("image-info").textContent =
    `${look.width}×${look.height}, ${look.bands} band(s) ${look.dtype}, ${look.format}` +
    (look.georeferenced ? ", georeferenced" : ", not georeferenced");
  showPrior(look.prior);
  drawBoxes([]);
  drawMap([]);
}

function showPrior(prior) {
  if (!prior) { $("prior-status").textContent = ""; return; }
  $("prior-status").textContent = prior.used
    ? `prior: year ${prior.year} (asked ${prior.year_requested}), ${prior.valid_nodes}/${prior.nodes} nodes`
    : `no prior: ${prior.reason || "not used"}`;
}

function drawBoxes(boxes) {
  const img = $("quicklook"), canvas = $("box-canvas");
  const look = state.look;
  if (!look) return;
  canvas.width = img.naturalWidth || look.quicklook_size[0];
  canvas.height = img.naturalHeight || look.quicklook_size[1];
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!$("show-boxes").checked) return;
  const sx = canvas.width / look.width, sy = canvas.height / look.height;
  ctx.lineWidth = Math.max(1, canvas.width / 200);
  ctx.strokeStyle = "#ff5a1f";
  ctx.fillStyle = "#ff5a1f";
  ctx.font = `${Math.max(10, canvas.width / 30)}px sans-serif`;
  for (const b of boxes) {
    const [x1, y1, x2, y2] = b.pixel;
    ctx.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    ctx.fillText(String(b.index + 1), x1 * sx + 2, y1 * sy + ctx.lineWidth + 10);
  }
}

function centre(ring) {
  const pts = ring.slice(0, -1);
  const lon = pts.reduce((s, p) => s + p[0], 0) / pts.length;
  const lat = pts.reduce((s, p) => s + p[1], 0) / pts.length;
  return [lon, lat];
}

function drawMap(boxes) {
  const svg = $("map");
  svg.innerHTML = "";
  const rings = [];
  const foot = state.look && state.look.footprint ? state.look.footprint.geometry.coordinates[0] : null;
  if (foot) rings.push(foot);
  for (const b of boxes) if (b.lonlat) rings.push(b.lonlat);
  if (!rings.length) return;
  const all = rings.flat();
  const lons = all.map((p) => p[0]), lats = all.map((p) => p[1]);
  const w = Math.max(...lons) - Math.min(...lons) || 1e-6, h = Math.max(...lats) - Math.min(...lats) || 1e-6;
  const scale = Math.min(280 / w, 180 / h);
  const px = (p) => `${10 + (p[0] - Math.min(...lons)) * scale},${190 - (p[1] - Math.min(...lats)) * scale}`;
  const poly = (ring, cls) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
    el.setAttribute("points", ring.map(px).join(" "));
    el.setAttribute("class", cls);
    svg.appendChild(el);
  };
  if (foot) poly(foot, "footprint");
  for (const b of boxes) if (b.lonlat) poly(b.lonlat, "box");
}

function listBoxes(boxes) {
  const body = $("boxes").querySelector("tbody");
  body.innerHTML = "";
  for (const b of boxes) {
    const tr = document.createElement("tr");
    const c = b.lonlat ? centre(b.lonlat) : null;
    tr.innerHTML = `<td>${b.index + 1}</td><td>${b.pixel.map((v) => v.toFixed(1)).join(", ")}</td>` +
      `<td>${c ? c[0].toFixed(6) + ", " + c[1].toFixed(6) : "(not georeferenced)"}</td>`;
    body.appendChild(tr);
  }
}

function setDownload(id, obj, type) {
  const a = $(id);
  if (a.href && a.href.startsWith("blob:")) URL.revokeObjectURL(a.href);
  if (!obj) { a.removeAttribute("href"); a.classList.add("disabled"); return; }
  a.href = URL.createObjectURL(new Blob([JSON.stringify(obj, null, 2)], { type }));
  a.classList.remove("disabled");
}

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("messages").appendChild(div);
  $("messages").scrollTop = $("messages").scrollHeight;
  return div;
}

function userMessage(question) {
  if (state.history.length) return { role: "user", content: question };
  const parts = [];
  if (state.sar) parts.push({ type: "image_url", image_url: { url: state.sar } });
  if (state.optical) parts.push({ type: "image_url", image_url: { url: state.optical } });
  parts.push({ type: "text", text: question });
  return { role: "user", content: parts };
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  status("");
  const message = userMessage(question);
  const body = {
    model: $("model-name").dataset.id || undefined,
    messages: [...state.history, message],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: Number($("max-tokens").value) || undefined,
  };
  const g = geo();
  if (g) body.geo = g;
  bubble("user", question);
  const out = bubble("assistant", "");
  out.id = "answer";
  for (const el of document.querySelectorAll(".msg.assistant")) if (el !== out) el.removeAttribute("id");
  $("send").disabled = true;
  $("stop").disabled = false;
  state.controller = new AbortController();
  let text = "", final = null, usage = null;
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: state.controller.signal,
    });
    if (!resp.ok) { status(await apiError(resp)); out.remove(); return; }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) { status(chunk.error.message); continue; }
        if (chunk.usage) usage = chunk.usage;
        if (chunk.sarvlm) final = chunk;
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.content) { text += choice.delta.content; out.textContent = text; }
        }
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") status(String(err));
  } finally {
    $("send").disabled = false;
    $("stop").disabled = true;
    state.controller = null;
  }
  state.history.push(message, { role: "assistant", content: text });
  if (final) {
    const ext = final.sarvlm;
    const boxes = ext.boxes || [];
    drawBoxes(boxes);
    drawMap(boxes);
    listBoxes(boxes);
    showPrior(ext.prior);
    state.last = { id: final.id, model: final.model, question, answer: text, usage, sarvlm: ext };
    setDownload("download-json", state.last, "application/json");
    setDownload("download-geojson", ext.geojson, "application/geo+json");
    out.dataset.done = "true";
  }
}

async function loadModels() {
  try {
    const resp = await fetch("/v1/models", { headers: headers() });
    if (resp.ok) {
      const models = await resp.json();
      const id = models.data[0].id;
      $("model-name").textContent = "model: " + id;
      $("model-name").dataset.id = id;
    }
  } catch (e) { /* the key may be needed first */ }
}

function init() {
  loadModels();
  $("sar-file").addEventListener("change", async () => {
    const f = $("sar-file").files[0];
    state.sar = f ? await readAsDataURL(f) : null;
    state.history = [];
    $("messages").innerHTML = "";
    await loadQuicklook();
  });
  $("optical-file").addEventListener("change", async () => {
    const f = $("optical-file").files[0];
    state.optical = f ? await readAsDataURL(f) : null;
  });
  for (const id of ["bbox", "year", "no-prior"]) $(id).addEventListener("change", loadQuicklook);
  $("api-key").addEventListener("change", loadModels);
  $("show-prior").addEventListener("change", () => {
    $("prior-overlay").style.display = $("show-prior").checked && state.look && state.look.prior_overlay ? "block" : "none";
  });
  $("show-boxes").addEventListener("change", () => drawBoxes(state.last ? state.last.sarvlm.boxes : []));
  $("quicklook").addEventListener("load", () => drawBoxes(state.last ? state.last.sarvlm.boxes : []));
  $("ask").addEventListener("submit", ask);
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
