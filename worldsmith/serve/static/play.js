// The play page: keys -> actions -> one world-model step per frame over a websocket; the simulator beside it.
//
// One step is in flight at a time: a frame's arrival sends the next step (with the keys held at that moment),
// so the page runs as fast as the server steps (or at the fps cap). Latency is measured from a key press to the
// drawing of the first frame whose step carried it. Address options: ?model=M&seed=S&task=T&reality=1&mode=step
// (&autostart=1 starts at once), &token=T on a server that needs one.
"use strict";

const S = {
  models: [], model: null, seed: null, uploadId: null, session: null, ws: null, controls: [],
  held: new Set(), tapped: new Set(), gripperClosed: false, inFlight: false, paused: false, nextId: 1,
  keyT: null, keyStepId: null, stepRequested: false,
  latencies: [], frameTimes: [], frames: 0, step: 0, computeMs: [], lastSend: 0, info: null,
};

// -- stats (also read by tests and benchmarks/play.py) -----------------------------------------------------------
function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}
function quantile(xs, q) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
function fps() {
  const now = performance.now();
  S.frameTimes = S.frameTimes.filter((t) => now - t <= 2000);
  if (S.frameTimes.length < 2) return 0;
  return (S.frameTimes.length - 1) / ((S.frameTimes[S.frameTimes.length - 1] - S.frameTimes[0]) / 1000);
}
window.play = {
  state: S,
  stats() {
    return {
      session: S.session && S.session.session, frames: S.frames, step: S.step, fps: fps(),
      latency_median_ms: median(S.latencies), latency_p95_ms: quantile(S.latencies, 0.95),
      latencies_ms: [...S.latencies], compute_median_ms: median(S.computeMs), connected: !!S.ws && S.ws.readyState === 1,
      info: S.info,
    };
  },
  resetStats() { S.latencies = []; S.frameTimes = []; S.computeMs = []; S.frames = 0; },
  pixels(which) {  // the frame as drawn: [r, g, b, r, g, b, ...] at the model's size
    const c = $(which === "sim" ? "sim" : "frame");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const out = [];
    for (let i = 0; i < d.length; i += 4) out.push(d[i], d[i + 1], d[i + 2]);
    return out;
  },
};

function showError(message) { $("error").textContent = message || ""; }
function setState(text) { $("s-state").textContent = text; }

// -- models and start scenes ---------------------------------------------------------------------------------------
async function loadModels() {
  const all = await api("/api/models");
  S.models = all.filter((m) => m.playable);
  const select = $("model");
  select.innerHTML = "";
  for (const m of S.models) select.add(new Option(`${m.name} (${m.size}px, ${m.action_dim ? `${m.action_dim} actions` : "camera"})`, m.name));
  if (!S.models.length) { showError("no playable model is served: start the server with an action or camera model."); return; }
  const wanted = params.get("model");
  if (wanted && S.models.some((m) => m.name === wanted)) select.value = wanted;
  await chooseModel();
}

async function chooseModel() {
  S.model = S.models.find((m) => m.name === $("model").value);
  $("model-name").textContent = S.model ? S.model.name : "";
  const tasks = Boolean(S.model && S.model.world === "arm");  // tasks are the arm world's; a camera model has none
  $("task").disabled = !tasks;
  if (!tasks) $("task").value = "";
  renderKeys();
  const box = $("starts");
  box.innerHTML = "";
  S.seed = null;
  if (!S.model || !S.model.world) { box.textContent = "this model has no simulator: upload an image"; return; }
  const { starts } = await api(`/api/starts?model=${encodeURIComponent(S.model.name)}&count=8`);
  const wanted = params.get("seed") !== null ? Number(params.get("seed")) : null;
  for (const st of starts) {
    const img = new Image();
    img.src = st.image;
    img.title = `episode ${st.seed}`;
    img.dataset.seed = st.seed;
    img.onclick = () => chooseSeed(st.seed);
    box.appendChild(img);
  }
  chooseSeed(wanted !== null ? wanted : starts[0].seed);
}

function chooseSeed(seed) {
  S.seed = seed;
  S.uploadId = null;
  $("upload").value = "";
  document.querySelectorAll("#starts img").forEach((img) => img.classList.toggle("chosen", Number(img.dataset.seed) === seed));
}

function renderKeys() {
  const box = $("keys");
  box.innerHTML = "";
  if (!S.model) return;
  for (const c of S.model.controls) {
    const k = document.createElement("kbd");
    k.textContent = c.key === " " ? "space" : c.key.toUpperCase();
    k.dataset.key = c.key;
    const label = document.createElement("span");
    label.textContent = c.label;
    box.append(k, label);
  }
}

// -- a session -----------------------------------------------------------------------------------------------------
async function start() {
  showError("");
  await stop();
  const body = { model: S.model.name, task: $("task").value || null };
  if (S.uploadId) body.input = S.uploadId; else body.seed = S.seed;
  if (S.uploadId) body.task = null;
  setState("starting…");
  try {
    S.session = await api("/api/play", { method: "POST", json: body });
  } catch (e) {
    setState("not started");
    showError(e.status === 429 ? `${e.message} (retry in ${e.retryAfter || 10} s)` : e.message);
    return;
  }
  S.controls = S.session.controls;
  S.gripperClosed = false;
  S.step = 0;
  window.play.resetStats();
  $("download").href = withToken(`/api/play/${S.session.session}/recording`);
  $("reality").disabled = !S.session.simulator;
  if (!S.session.simulator) { $("reality").checked = false; }
  showReality();
  await draw(S.session.first);
  connect();
  for (const id of ["reset", "pause", "record"]) $(id).disabled = false;
  $("frame").focus();
}

async function stop() {
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  if (S.session) {
    const sid = S.session.session;
    S.session = null;
    try { await api(`/api/play/${sid}`, { method: "DELETE" }); } catch (e) { /* already closed */ }
  }
  S.inFlight = false;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(withToken(`${proto}//${location.host}/api/play/${S.session.session}/ws`));
  S.ws = ws;
  ws.onopen = () => { setState(S.paused ? "paused" : "running"); };
  ws.onmessage = async (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "error") { showError(msg.message); S.inFlight = false; return; }
    if (msg.type === "frame" || msg.type === "ready") {
      await draw(msg);
      S.inFlight = false;
      if (msg.type === "frame") {
        const now = performance.now();
        S.frames += 1;
        S.frameTimes.push(now);
        S.computeMs.push(msg.compute_ms);
        if (S.keyStepId !== null && msg.id >= S.keyStepId) {
          S.latencies.push(now - S.keyT);
          S.keyT = null;
          S.keyStepId = null;
        }
      }
      updateStats();
      schedule();
    }
  };
  ws.onclose = (event) => {
    setState("disconnected");
    if (event.code !== 1000 && event.code !== 1005) showError(`the connection closed (${event.code}${event.reason ? ": " + event.reason : ""}); press Start to open a new session.`);
    S.ws = null;
  };
}

function action() {
  const a = new Array(S.session.action_dim).fill(0);
  for (const c of S.controls) {
    if (c.toggle) a[c.index] = S.gripperClosed ? c.toggle[1] : c.toggle[0];
    else if (S.held.has(c.key) || S.tapped.has(c.key)) a[c.index] += c.value;
  }
  S.tapped.clear();  // a key pressed and released between two steps still moves the next one
  return a;
}

function send() {
  if (!S.ws || S.ws.readyState !== 1 || S.inFlight) return;
  const id = S.nextId++;
  if (S.keyT !== null && S.keyStepId === null) S.keyStepId = id;
  S.inFlight = true;
  S.lastSend = performance.now();
  S.ws.send(JSON.stringify({ type: "step", id, action: action() }));
}

function schedule() {
  if (!S.ws || S.inFlight) return;
  if ($("stepmode").checked) {
    if (S.stepRequested) { S.stepRequested = false; send(); }
    return;
  }
  if (S.paused) return;
  const cap = Number($("fpscap").value);
  const wait = cap > 0 ? Math.max(0, 1000 / cap - (performance.now() - S.lastSend)) : 0;
  if (wait > 0) setTimeout(() => { if (!S.inFlight) send(); }, wait); else send();
}

async function paint(canvasId, url) {
  const img = new Image();
  img.src = url;
  await img.decode();
  const c = $(canvasId);
  if (c.width !== img.width) { c.width = img.width; c.height = img.height; }
  c.getContext("2d").drawImage(img, 0, 0);
}

async function draw(msg) {
  const jobs = [paint("frame", msg.frame)];
  if (msg.sim) jobs.push(paint("sim", msg.sim));
  await Promise.all(jobs);
  S.step = msg.step;
  S.info = msg.info || null;
  drawOverlay("overlay-model", S.info);
}

function drawOverlay(id, info) {
  const c = $(id);
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (!info || !info.goal_px || !S.session) return;
  const k = c.width / S.session.size;
  ctx.lineWidth = 2;
  ctx.strokeStyle = info.success ? "#6bd48c" : "#ffd24d";
  ctx.beginPath();
  ctx.arc(info.goal_px[0] * k, info.goal_px[1] * k, 3 * k, 0, 2 * Math.PI);
  ctx.stroke();
  if (info.gripper_px) {
    ctx.strokeStyle = "#5eb1ff";
    ctx.strokeRect(info.gripper_px[0] * k - 4, info.gripper_px[1] * k - 4, 8, 8);
  }
}

function updateStats() {
  const st = window.play.stats();
  $("s-fps").textContent = st.fps ? st.fps.toFixed(1) : "–";
  $("s-latency").textContent = st.latency_median_ms !== null ? `${st.latency_median_ms.toFixed(0)} / ${st.latency_p95_ms.toFixed(0)} ms` : "–";
  $("s-compute").textContent = st.compute_median_ms !== null ? `${st.compute_median_ms.toFixed(0)} ms` : "–";
  $("s-step").textContent = S.step;
  const info = S.info;
  if (info && info.goal_px) {
    $("s-task").innerHTML = info.success ? '<span class="ok">success</span>' : `${(info.distance_px || 0).toFixed(1)} px from the goal`;
  } else {
    $("s-task").textContent = "–";
  }
}

function showReality() { $("sim-view").hidden = !$("reality").checked; }

// -- keys ------------------------------------------------------------------------------------------------------------
function keyOf(event) { return event.key === " " || event.code === "Space" ? " " : event.key.toLowerCase(); }
function isControl(key) { return S.controls.some((c) => c.key === key); }
function markKey(key, down) {
  document.querySelectorAll("#keys kbd").forEach((k) => { if (k.dataset.key === key) k.classList.toggle("down", down); });
}

document.addEventListener("keydown", (event) => {
  if (!S.session || event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
  const key = keyOf(event);
  if (!isControl(key)) return;
  event.preventDefault();
  const stepMode = $("stepmode").checked;
  if (event.repeat && !stepMode) return;
  const control = S.controls.find((c) => c.key === key);
  if (control.toggle && !event.repeat) S.gripperClosed = !S.gripperClosed;
  else if (!control.toggle) { S.held.add(key); S.tapped.add(key); }
  markKey(key, true);
  if (S.keyT === null) S.keyT = performance.now();
  if (stepMode) { S.stepRequested = true; schedule(); }
  else if (S.paused) { S.keyT = null; }
});
document.addEventListener("keyup", (event) => {
  const key = keyOf(event);
  S.held.delete(key);
  markKey(key, false);
});
window.addEventListener("blur", () => { S.held.clear(); document.querySelectorAll("#keys kbd").forEach((k) => k.classList.remove("down")); });

// -- buttons ---------------------------------------------------------------------------------------------------------
$("model").onchange = () => chooseModel().catch((e) => showError(e.message));
$("start").onclick = () => start().catch((e) => showError(e.message));
$("reset").onclick = () => {
  if (!S.ws) return;
  S.gripperClosed = false;
  S.ws.send(JSON.stringify({ type: "reset" }));
  S.inFlight = true;
  window.play.resetStats();
};
$("pause").onclick = () => {
  S.paused = !S.paused;
  $("pause").textContent = S.paused ? "Resume" : "Pause";
  setState(S.paused ? "paused" : "running");
  schedule();
};
$("reality").onchange = showReality;
$("stepmode").onchange = () => schedule();
$("upload").onchange = async () => {
  const file = $("upload").files[0];
  if (!file) return;
  showError("");
  try {
    const up = await uploadFile(file);
    S.uploadId = up.id;
    document.querySelectorAll("#starts img").forEach((img) => img.classList.remove("chosen"));
  } catch (e) { showError(e.message); $("upload").value = ""; }
};
$("frame").onclick = () => $("frame").focus();
window.addEventListener("beforeunload", () => {
  if (S.session) fetch(withToken(`/api/play/${S.session.session}`), { method: "DELETE", keepalive: true });
});

// -- start-up ----------------------------------------------------------------------------------------------------------
if (params.get("mode") === "step") $("stepmode").checked = true;
if (params.get("reality") === "1") $("reality").checked = true;
if (params.get("task")) $("task").value = params.get("task");
if (params.get("fps")) $("fpscap").value = params.get("fps");
loadModels()
  .then(() => { if (params.get("autostart") === "1" && S.model) return start(); })
  .catch((e) => showError(e.message));
