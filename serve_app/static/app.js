// The Vision AI page: draw or pick an image, POST it to /<model>, show the answer.
// Plain JS, no framework, no build step, no outside URLs: the page works offline.
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
const INK = 22; // stroke width on the 280px pad: about 2 px at 28x28, like MNIST pen strokes

let source = null;  // what Classify sends: {kind: "pad"} or {kind: "file", name, base64}
let models = {};    // name -> {labels, version, test_accuracy}, from GET /models
let last = null;    // the previous pointer position while a stroke is being drawn
let answered = null; // what "Wrong? Tell us" corrects: {model, model_version, label, base64}

// One random key per browser, sent as X-Client-Key: a rollout shows this browser one version
// throughout, and the service limits corrections per client.
function clientKey() {
  let key = localStorage.getItem("vision-client-key");
  if (!key) {
    key = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("vision-client-key", key);
  }
  return key;
}

function headers() {
  const h = {"Content-Type": "application/json", Accept: "application/json", "X-Client-Key": clientKey()};
  const key = $("key").value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

function model() {
  return document.querySelector('input[name="model"]:checked').value;
}

// ---- Drawing: pointer events cover mouse, pen and touch alike ----

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  source = null;
  $("source").textContent = "";
}

function point(e) {
  // The pad may be shown smaller than its 280x280 pixels: map CSS pixels (inside the border)
  // to canvas pixels.
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left - pad.clientLeft) * pad.width / pad.clientWidth,
          (e.clientY - r.top - pad.clientTop) * pad.height / pad.clientHeight];
}

function stroke(from, to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = INK;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(...from);
  ctx.lineTo(...to);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (e) => {
  if (source?.kind === "file") clearPad(); // drawing replaces a chosen file's preview
  last = point(e);
  stroke(last, last);                      // a click alone leaves a dot
  source = {kind: "pad"};
  // Keep the stroke even if it leaves the pad (throws for synthetic, inactive pointers).
  try { pad.setPointerCapture(e.pointerId); } catch { /* drawing works without it */ }
});
pad.addEventListener("pointermove", (e) => {
  if (!last) return;
  const p = point(e);
  stroke(last, p);
  last = p;
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { last = null; });
}
$("clear").addEventListener("click", () => { clearPad(); $("file").value = ""; });

// ---- Image files: chooser or drag and drop ----

function useFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    return showError(`"${file.name}" is not an image.`);
  }
  const reader = new FileReader();
  reader.onload = () => {
    const url = reader.result;
    // Send the file's own bytes (not the preview), without the data: prefix.
    source = {kind: "file", name: file.name, base64: url.slice(url.indexOf(",") + 1)};
    $("source").textContent = `Using "${file.name}". Draw on the pad to start over.`;
    preview(url);
  };
  reader.onerror = () => showError(`Could not read "${file.name}".`);
  reader.readAsDataURL(file);
}

function preview(url) {
  // Show the chosen image on the pad, scaled to fit; the server decides what it really is.
  // Grey behind it, so black ink on a transparent background shows as well as white ink.
  const img = new Image();
  img.onload = () => {
    const s = Math.min(pad.width / img.width, pad.height / img.height);
    const w = img.width * s, h = img.height * s;
    ctx.fillStyle = "#888";
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.imageSmoothingEnabled = false;  // a 28x28 image stays crisp pixels, like the answer's
    ctx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    ctx.imageSmoothingEnabled = true;
  };
  img.src = url;
}

$("file").addEventListener("change", (e) => useFile(e.target.files[0]));
for (const zone of [$("drop"), pad]) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
  zone.addEventListener("dragleave", () => $("drop").classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    $("drop").classList.remove("over");
    useFile(e.dataTransfer.files[0]);
  });
}

// ---- Models: labels, version and accuracy come from the server ----

async function loadModels() {
  try {
    const resp = await fetch("/models", {headers: {Accept: "application/json"}});
    if (resp.ok) models = Object.fromEntries((await resp.json()).map((m) => [m.name, m]));
  } catch { /* the page still works; bars then show class numbers */ }
  showModel();
}

// A rollout in words, from GET /models' `rollout` (GET /rollout has every step).
const ROLLOUT = {
  loading: (r) => "A new version is loading and must pass its gate before it gets any traffic.",
  canary: (r) => `A new version, ${r.candidate}, answers ${Math.round(100 * r.traffic)}% of requests while it is compared with this one.`,
  promoted: () => "A new version was just promoted.",
  rolled_back: () => "A new version was tried and rolled back: this one still answers.",
  rejected: () => "A new version failed its gate and was never used.",
};

function showModel() {
  const m = models[model()];
  const acc = m?.test_accuracy == null ? "" : `, test accuracy ${(100 * m.test_accuracy).toFixed(2)}%`;
  const rollout = m?.rollout && ROLLOUT[m.rollout.state] ? " " + ROLLOUT[m.rollout.state](m.rollout) : "";
  $("model-info").textContent = model() === "classify"
    ? "Each image goes to the model that recognises it as its kind."
    : m ? `Version ${m.version}${acc}.${rollout}` : "";
}

for (const radio of document.querySelectorAll('input[name="model"]')) {
  radio.addEventListener("change", () => { showModel(); $("answer").hidden = true; });
}

// ---- Classify ----

function showError(message) {
  $("empty").hidden = $("answer").hidden = true;
  $("error").textContent = message;
  $("error").hidden = false;
}

function payload() {
  if (source.kind === "file") return source.base64;
  const url = pad.toDataURL("image/png");
  return url.slice(url.indexOf(",") + 1);
}

async function classify(e) {
  e.preventDefault();
  if (!source) return showError("Draw something on the pad or choose an image first.");
  const name = model();
  const button = $("classify");
  button.disabled = true;
  $("results").setAttribute("aria-busy", "true");
  try {
    const t0 = performance.now();
    const base64 = payload();
    const resp = await fetch(`/${name}`, {method: "POST", headers: headers(),
      body: JSON.stringify({base64, return_image: true})});
    const data = await resp.json().catch(() => ({}));
    const ms = performance.now() - t0;  // the whole round trip, JSON parsing included
    if (!resp.ok) {
      showError(data.error?.message || `The server answered ${resp.status}.`);
      if (resp.status === 401) { $("key-box").open = true; $("key").focus(); }
      return;
    }
    render(name, data, ms);
    offerFix(name === "classify" ? data.model : name, data, base64);
  } catch (err) {
    showError(`The server could not be reached (${err.message}).`);
  } finally {
    button.disabled = false;
    $("results").removeAttribute("aria-busy");
  }
}

// Why an image was declined, in words (the message itself comes from GET /models).
const REASONS = {blank: "the image is blank: no ink or object in it",
                 out_of_domain: "the model does not recognise it as its kind of image"};

function render(name, data, ms) {
  // /classify answers with the model it chose (null: none); its labels come from that model.
  const shown = name === "classify" ? data.model : name;
  const labels = [...(models[shown]?.labels ?? data.probabilities.map((_, i) => `class ${i}`))];
  labels[data.class_id] = data.label;
  $("empty").hidden = $("error").hidden = true;
  $("label").textContent = data.accepted ? data.label
    : (name === "classify" ? "Neither a digit nor clothing"
      : models[name]?.declined_message ?? "Not recognised");
  $("confidence").textContent = data.accepted ? `${(100 * data.confidence).toFixed(1)}% sure`
    : `(best guess: ${data.label})`;
  $("declined").textContent = data.accepted ? "" : `Why: ${REASONS[data.reason] ?? data.reason}.`;
  $("declined").hidden = data.accepted;
  $("rtt").textContent = Math.round(ms);
  $("version").textContent = `${data.model ?? "none"} ${data.model_version}`;
  $("seen").src = data.image ? `data:image/png;base64,${data.image}` : "";
  $("bars").replaceChildren(...data.probabilities.map((p, i) => bar(labels[i], p, i, data.class_id)));
  $("answer").hidden = false;
}

function bar(label, p, i, top) {
  const pct = (100 * p).toFixed(1);
  const li = document.createElement("li");
  li.className = i === top ? "top" : "";
  li.innerHTML = `<span class="name" id="bar-${i}"></span>
    <div class="meter" role="meter" data-testid="prob-bar" aria-valuemin="0" aria-valuemax="100"
         aria-valuenow="${pct}" aria-valuetext="${pct}%" aria-labelledby="bar-${i}">
      <div class="fill" style="width: ${pct}%"></div></div>
    <span class="value" aria-hidden="true">${pct}%</span>`;
  li.querySelector(".name").textContent = label; // labels are text, never markup
  return li;
}

// ---- Wrong? Tell us: POST /feedback with the image, the answer and the right label ----

const NOT_OF_KIND = {digit: "Not a digit at all", clothing: "Not clothing at all"};

function offerFix(name, data, base64) {
  // A /classify answer that no model took has no model to correct: pick Digits or Clothes.
  answered = name ? {model: name, model_version: data.model_version, label: data.label, base64} : null;
  $("fix-box").hidden = !answered;
  $("fix-box").open = false;
  $("fix-status").textContent = "";
  if (!answered) return;
  const options = (models[name]?.labels ?? []).map((label) => new Option(label, label));
  options.push(new Option(NOT_OF_KIND[models[name]?.style] ?? "Not of this kind", "out_of_domain"));
  $("fix-label").replaceChildren(...options);
}

async function sendFix(e) {
  e.preventDefault();
  if (!answered) return;
  $("fix-send").disabled = true;
  try {
    const resp = await fetch("/feedback", {method: "POST", headers: headers(), body: JSON.stringify({
      base64: answered.base64, model: answered.model, model_version: answered.model_version,
      predicted_label: answered.label, label: $("fix-label").value})});
    const data = await resp.json().catch(() => ({}));
    $("fix-status").textContent = resp.ok
      ? `Thank you: recorded as #${data.id}${data.stored ? "" : " (we had it already)"}.`
      : (data.error?.message || `The server answered ${resp.status}.`);
  } catch (err) {
    $("fix-status").textContent = `The server could not be reached (${err.message}).`;
  } finally {
    $("fix-send").disabled = false;
  }
}

$("fix").addEventListener("submit", sendFix);
$("form").addEventListener("submit", classify);
clearPad();
loadModels();
