// The gallery: submit Text2World / Video2World / action jobs, watch their progress, see results with their settings.
"use strict";

const G = { models: [], uploadId: null, timer: null };

function model() { return G.models.find((m) => m.name === $("model").value); }

async function init() {
  G.models = await api("/api/models");
  for (const m of G.models) $("model").add(new Option(`${m.name} (${m.family}; ${m.kinds.join(", ")})`, m.name));
  if (params.get("model")) $("model").value = params.get("model");
  await chooseModel();
  await refresh();
}

async function chooseModel() {
  const m = model();
  $("kind").innerHTML = "";
  for (const k of m.kinds) $("kind").add(new Option(k, k));
  $("start").innerHTML = "";
  if (m.world) {
    const { starts } = await api(`/api/starts?model=${encodeURIComponent(m.name)}&count=8`);
    for (const st of starts) $("start").add(new Option(`held-out episode ${st.seed}`, st.seed));
  }
  $("start").add(new Option("my upload (choose a file)", "upload"));
  chooseKind();
}

function chooseKind() {
  const kind = $("kind").value;
  $("start-box").hidden = kind === "text2world";
  $("action-box").hidden = kind !== "action";
}

async function submit(event) {
  event.preventDefault();
  $("error").textContent = "";
  const kind = $("kind").value;
  const body = { model: $("model").value, kind, prompt: $("prompt").value, seed: Number($("seed").value || 0) };
  if ($("frames").value) body.frames = Number($("frames").value);
  if ($("steps").value) body.steps = Number($("steps").value);
  if (kind !== "text2world") {
    if ($("start").value === "upload") {
      if (!G.uploadId) { $("error").textContent = "choose a file to upload first."; return; }
      body.input = G.uploadId;
    } else {
      body.start_seed = Number($("start").value);
    }
  }
  if (kind === "action") {
    if (body.input) { $("error").textContent = "a policy acts in the simulator: pick a held-out episode."; return; }
    body.policy = $("policy").value;
    body.task = $("task").value;
  }
  try {
    await api("/api/jobs", { method: "POST", json: body });
  } catch (e) {
    $("error").textContent = e.status === 429 ? `${e.message} (retry in ${e.retryAfter} s)` : e.message;
  }
  await refresh();
}

function settingsText(r) {
  const parts = [r.kind, `seed ${r.seed}`];
  if (r.frames) parts.push(`${r.frames} frames`);
  if (r.steps) parts.push(`${r.steps} steps`);
  if (r.start_seed !== null) parts.push(`start: episode ${r.start_seed}`);
  if (r.input) parts.push("start: upload");
  if (r.policy) parts.push(`policy ${r.policy} (${r.task})`);
  return parts.join(" · ");
}

function renderJob(j) {
  const div = document.createElement("div");
  div.className = "job";
  div.id = `job-${j.id}`;
  const head = document.createElement("div");
  const title = document.createElement("strong");
  title.textContent = j.request.prompt ? `“${j.request.prompt}”` : "(no prompt)";
  const meta = document.createElement("div");
  meta.className = "dim";
  meta.textContent = `${j.request.model} · ${settingsText(j.request)} · ${j.state}`;
  head.append(title, meta);
  div.appendChild(head);
  if (j.state === "queued" || j.state === "running") {
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = j.progress;
    const cancel = document.createElement("button");
    cancel.textContent = "Cancel";
    cancel.onclick = async () => { try { await api(`/api/jobs/${j.id}`, { method: "DELETE" }); } catch (e) { $("error").textContent = e.message; } refresh(); };
    div.append(bar, cancel);
  }
  if (j.error) {
    const err = document.createElement("div");
    err.className = "error";
    err.textContent = j.error;
    div.appendChild(err);
  }
  if (j.state === "done") {
    const media = document.createElement("div");
    media.className = "media";
    for (const name of ["video", "truth"]) {
      if (!j.outputs[name]) continue;
      const fig = document.createElement("figure");
      const v = document.createElement("video");
      Object.assign(v, { src: withToken(j.outputs[name]), controls: true, loop: true, muted: true, autoplay: true });
      const cap = document.createElement("figcaption");
      cap.className = "dim";
      cap.textContent = name === "video" ? "world model" : "simulator (ground truth)";
      fig.append(v, cap);
      media.appendChild(fig);
    }
    if (j.outputs.sheet) {
      const img = document.createElement("img");
      img.src = withToken(j.outputs.sheet);
      img.alt = "contact sheet";
      media.appendChild(img);
    }
    div.appendChild(media);
  }
  return div;
}

async function refresh() {
  const jobs = await api("/api/jobs");
  const box = $("jobs");
  box.innerHTML = "";
  if (!jobs.length) box.innerHTML = '<p class="dim">No jobs yet: fill in the form and press Generate.</p>';
  for (const j of jobs) box.appendChild(renderJob(j));
  clearTimeout(G.timer);
  if (jobs.some((j) => j.state === "queued" || j.state === "running")) G.timer = setTimeout(() => refresh().catch(() => {}), 700);
}

$("model").onchange = () => chooseModel().catch((e) => { $("error").textContent = e.message; });
$("kind").onchange = chooseKind;
$("form").onsubmit = (e) => submit(e).catch((err) => { $("error").textContent = err.message; });
$("upload").onchange = async () => {
  const file = $("upload").files[0];
  if (!file) return;
  try {
    G.uploadId = (await uploadFile(file)).id;
    $("start").value = "upload";
  } catch (e) { $("error").textContent = e.message; $("upload").value = ""; }
};
init().catch((e) => { $("error").textContent = e.message; });
