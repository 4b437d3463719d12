// weir web UI: plain JS over the job HTTP API (docs/ops-api.md). Routes: #/ (jobs),
// #/jobs/<id> (graph, stage detail, checkpoints, errors, cancel and savepoint), #/cluster (a
// coordinator's nodes, its jobs and where each job's subtasks run).
"use strict";

const API = "/api/v1";
const REFRESH_MS = 1000;
const app = document.getElementById("app");
const tokenInput = document.getElementById("token");
let timer = null;
let selected = null; // path of the stage whose detail is shown
let currentPlan = null; // the plan of the job shown

// The token comes from the URL fragment printed at start (#token=...), else what was pasted.
(function takeToken() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("weir-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + "#/");
  }
  tokenInput.value = sessionStorage.getItem("weir-token") || "";
  tokenInput.addEventListener("change", () => sessionStorage.setItem("weir-token", tokenInput.value.trim()));
})();

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function fmtRate(r) { return r >= 1000 ? (r / 1000).toFixed(1) + "k/s" : r.toFixed(1) + "/s"; }
function fmtPct(x) { return Math.round(x * 100) + "%"; }
function fmtTime(ms) { return ms ? new Date(ms).toLocaleTimeString() : ""; }
function status(text) { document.getElementById("status").textContent = text; }

async function getJson(path) {
  const r = await fetch(API + path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function post(path, body) {
  const r = await fetch(API + path, {
    method: "POST",
    headers: { "Authorization": "Bearer " + tokenInput.value.trim(), "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const b = await r.json();
  if (!r.ok) throw new Error(b.error || r.statusText);
  return b;
}

function stateBadge(s) { return `<span class="state state-${esc(s)}">${esc(s)}</span>`; }

// ---- job list ----
async function showJobs() {
  const jobs = await getJson("/jobs");
  const rows = jobs.map((j) => `<tr data-job="${j.id}"><td class="num">${j.id}</td>
    <td><a href="#/jobs/${j.id}">${esc(j.name)}</a></td><td>${stateBadge(j.state)}</td>
    <td>${fmtTime(j.started_at_ms)}</td><td class="num">${j.pid}</td></tr>`).join("");
  app.innerHTML = `<h1>Jobs</h1>` + (jobs.length
    ? `<table id="jobs"><tr><th>id</th><th>name</th><th>state</th><th>started</th><th>pid</th></tr>${rows}</table>`
    : `<p class="muted">no jobs in this process yet</p>`);
}

// ---- job page ----
// Sums the subtasks of each stage path: counts and rates add up, ratios take the busiest subtask.
function byStage(stages) {
  const m = new Map();
  for (const s of stages) {
    const a = m.get(s.path) || { path: s.path, subtasks: [], elements_in: 0, elements_out: 0,
      in_rate: 0, out_rate: 0, busy: 0, backpressured: 0, queue_depth: 0, failures: 0, restarts: 0 };
    a.subtasks.push(s);
    for (const k of ["elements_in", "elements_out", "in_rate", "out_rate", "queue_depth", "failures", "restarts"]) a[k] += s[k];
    a.busy = Math.max(a.busy, s.busy);
    a.backpressured = Math.max(a.backpressured, s.backpressured);
    m.set(s.path, a);
  }
  return m;
}

// Busy colours the fill from cool (idle) to hot (busy); backpressure colours the border.
function stageStyle(a) {
  const hue = 210 - 210 * Math.min(1, a.busy);
  const bp = Math.min(1, a.backpressured);
  return `background:hsl(${hue},70%,${88 - 18 * a.busy}%);border-color:rgba(40,40,40,${(0.1 + 0.9 * bp).toFixed(2)})`;
}

// Column of each island: the longest channel path from a source island.
function layers(plan) {
  const col = new Map(plan.islands.map((i) => [i.id, 0]));
  for (let pass = 0; pass < plan.islands.length; pass++) {
    for (const e of plan.edges) {
      if (e.from.island === undefined || e.to.island === undefined) continue;
      const c = col.get(e.from.island) + 1;
      if (c > col.get(e.to.island)) col.set(e.to.island, c);
    }
  }
  const out = [];
  for (const isl of plan.islands) (out[col.get(isl.id)] = out[col.get(isl.id)] || []).push(isl);
  return out.filter(Boolean);
}

function renderGraph(plan) {
  return layers(plan).map((layer) => `<div class="layer">${layer.map((isl) => `
    <div class="island" data-island="${isl.id}">
      <div class="island-head">island ${isl.id} · ${esc(isl.kind)} · x${isl.parallelism}${isl.executor !== "tokio" ? " · " + esc(isl.executor) : ""}</div>
      ${isl.stages.map((s) => `<div class="stage" data-path="${esc(s.path)}">
        <div class="name">${esc(s.name)}</div>
        <div class="meta"><span class="par">x${s.parallelism}</span> · <span class="rate">–</span></div>
        <div class="meta"><span class="counts">–</span></div></div>`).join("")}
    </div>`).join("")}</div>`).join("") + `<svg class="edges"></svg>`;
}

function drawEdges(plan) {
  const g = document.getElementById("graph");
  const svg = g.querySelector("svg.edges");
  const box = g.getBoundingClientRect();
  svg.setAttribute("width", g.scrollWidth);
  svg.setAttribute("height", g.scrollHeight);
  const find = (p) => p && g.querySelector(`.stage[data-path="${CSS.escape(p)}"]`);
  let lines = `<defs><marker id="arr" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>`;
  const seg = (a, b, label, dashed) => {
    const r1 = a.getBoundingClientRect(), r2 = b.getBoundingClientRect();
    const x1 = r1.right - box.left + g.scrollLeft, y1 = r1.top + r1.height / 2 - box.top;
    const x2 = r2.left - box.left + g.scrollLeft, y2 = r2.top + r2.height / 2 - box.top;
    lines += `<path d="M${x1},${y1} C${x1 + 24},${y1} ${x2 - 24},${y2} ${x2},${y2}" fill="none" stroke="#555"
      stroke-width="1.5" ${dashed ? 'stroke-dasharray="5,3"' : ""} marker-end="url(#arr)"/>`;
    if (label) lines += `<text x="${(x1 + x2) / 2}" y="${(y1 + y2) / 2 - 4}" font-size="10" text-anchor="middle" fill="#555">${esc(label)}</text>`;
  };
  for (const e of plan.edges) {
    const a = find(e.from_stage), b = find(e.to_stage);
    if (a && b) seg(a, b, e.kind, true);
  }
  svg.innerHTML = lines;
}

function chart(samplesIn, samplesOut) {
  const W = 520, H = 140, P = 28;
  const max = Math.max(1, ...samplesIn, ...samplesOut);
  const pts = (xs) => xs.map((v, i) => `${P + (i * (W - 2 * P)) / Math.max(1, xs.length - 1)},${H - P - (v / max) * (H - 2 * P)}`).join(" ");
  return `<svg class="chart" width="${W}" height="${H}" data-points="${samplesOut.length}">
    <text x="4" y="14" font-size="10">${fmtRate(max)}</text><text x="4" y="${H - P}" font-size="10">0</text>
    <polyline class="in" fill="none" stroke-width="1.5" points="${pts(samplesIn)}"/>
    <polyline class="out" fill="none" stroke-width="2" points="${pts(samplesOut)}"/>
    <text x="${W - 120}" y="14" font-size="10" fill="#2a9d4b">in</text><text x="${W - 90}" y="14" font-size="10" fill="#2f6fdf">out</text></svg>`;
}

// Sums the subtasks' histories sample by sample, aligned on the newest sample.
function stageHistory(a) {
  const n = Math.max(0, ...a.subtasks.map((s) => (s.history || []).length));
  const ins = new Array(n).fill(0), outs = new Array(n).fill(0);
  for (const s of a.subtasks) {
    const h = s.history || [], off = n - h.length;
    h.forEach((x, i) => { ins[off + i] += x.in_rate; outs[off + i] += x.out_rate; });
  }
  return [ins, outs];
}

function renderDetail(a) {
  if (!a) return `<p class="muted">select a stage in the graph for its throughput chart</p>`;
  const [ins, outs] = stageHistory(a);
  const rows = a.subtasks.map((s) => `<tr><td class="num">${s.subtask}</td><td class="num">${s.elements_in}</td>
    <td class="num">${s.elements_out}</td><td class="num">${fmtRate(s.out_rate)}</td><td class="num">${fmtPct(s.busy)}</td>
    <td class="num">${fmtPct(s.backpressured)}</td><td class="num">${fmtPct(s.idle)}</td><td class="num">${s.queue_depth}</td>
    <td class="num">${s.failures}</td><td class="num">${s.restarts}</td></tr>`).join("");
  return `<h2 id="stage-title">${esc(a.path)}</h2>${chart(ins, outs)}
    <table><tr><th>subtask</th><th>in</th><th>out</th><th>out rate</th><th>busy</th><th>backpressured</th><th>idle</th><th>queued</th><th>failures</th><th>restarts</th></tr>${rows}</table>`;
}

function fmtBytes(b) {
  return b >= 1 << 20 ? (b / (1 << 20)).toFixed(1) + " MiB" : b >= 1024 ? (b / 1024).toFixed(1) + " KiB" : b + " B";
}

function renderCheckpoints(c) {
  if (!c.enabled) return `<p class="muted">this run does not checkpoint</p>`;
  // With the engine's history: each checkpoint's outcome, start, duration and size.
  const rows = c.history
    ? c.history.slice(-20).reverse().map((x) => `<tr><td class="num">${x.id}</td>
        <td class="${x.status === "failed" ? "error" : ""}">${esc(x.status)}${x.reason ? ": " + esc(x.reason) : ""}</td>
        <td>${fmtTime(x.started_at_ms)}</td><td class="num">${x.duration_ms.toFixed(1)} ms</td><td class="num">${fmtBytes(x.bytes)}</td></tr>`).join("")
    : c.completed.slice(-20).reverse().map((x) => `<tr><td class="num">${x.id}</td><td>completed</td><td></td><td class="num">${x.duration_ms.toFixed(1)} ms</td><td></td></tr>`).join("")
      + c.failed.slice(-20).reverse().map((id) => `<tr><td class="num">${id}</td><td class="error">failed</td><td></td><td></td><td></td></tr>`).join("");
  return `<p>latest completed: <b>${c.latest_completed ?? "none"}</b> · restored from: ${c.restored ?? "nothing"} ·
    ${c.completed.length} completed · ${c.failed.length} failed</p>` +
    (rows ? `<table id="checkpoints"><tr><th>id</th><th>outcome</th><th>started</th><th>duration</th><th>size</th></tr>${rows}</table>` : "");
}

function renderErrors(list) {
  if (!list.length) return `<p class="muted">no errors or dead letters</p>`;
  return `<table id="errors"><tr><th>time</th><th>stage</th><th>subtask</th><th>kind</th><th>element</th><th>error</th></tr>${list.map((e) => `
    <tr><td>${fmtTime(e.at_ms)}</td><td>${esc(e.stage)}</td><td class="num">${e.subtask}</td><td>${e.dead_letter ? "dead letter" : "failure"}</td>
    <td><code>${esc(e.element)}</code></td><td class="error">${esc(e.error)}</td></tr>`).join("")}</table>`;
}

async function showJob(id) {
  const [job, plan] = await Promise.all([getJson(`/jobs/${id}?history=true`), getJson(`/jobs/${id}/plan`)]);
  app.innerHTML = `<h1><span id="job-name">${esc(job.name)}</span> <span class="muted">#${job.id}</span> <span id="job-state">${stateBadge(job.state)}</span></h1>
    <div id="job-error" class="error"></div>
    <div class="actions"><button id="cancel" class="danger">Cancel</button>
      <input id="sp-dir" placeholder="/absolute/savepoint/dir"><button id="savepoint">Savepoint</button>
      <span id="action-msg" class="msg"></span></div>
    <div id="stall"></div>
    <h2>Graph</h2>
    <div class="legend"><span style="background:hsl(210,70%,88%)">idle</span><span style="background:hsl(0,70%,70%)">busy</span>
      <span style="border:3px solid #282828">backpressured</span></div>
    <div id="graph">${renderGraph(plan)}</div>
    <div class="panel" id="detail"></div>
    <h2>Checkpoints</h2><div id="ck"></div>
    <h2>Errors and dead letters</h2><div id="errs"></div>`;
  currentPlan = plan;
  const msg = (t, bad) => { const m = document.getElementById("action-msg"); m.textContent = t; m.className = "msg" + (bad ? " error" : ""); };
  document.getElementById("cancel").onclick = () => post(`/jobs/${id}/cancel`).then((r) => msg(`job ${r.id}: ${r.state}`), (e) => msg(e.message, true));
  document.getElementById("savepoint").onclick = () => post(`/jobs/${id}/savepoint`, { dir: document.getElementById("sp-dir").value.trim() })
    .then((r) => msg(`savepoint written to ${r.path}`), (e) => msg(e.message, true));
  document.querySelectorAll("#graph .stage").forEach((el) => el.addEventListener("click", () => { selected = el.dataset.path; update(job); }));
  update(job);
  const refresh = async () => {
    try {
      const j = await getJson(`/jobs/${id}?history=true`);
      update(j);
      if (j.state !== "running") { clearInterval(timer); timer = null; }
    } catch (e) { status(e.message); }
  };
  timer = setInterval(refresh, REFRESH_MS);
}

async function update(job) {
  document.getElementById("job-state").innerHTML = stateBadge(job.state);
  document.getElementById("job-error").textContent = job.error || "";
  document.getElementById("stall").innerHTML = job.stall
    ? `<p class="error">stalled at <b>${esc(job.stall.stage)}</b> since ${fmtTime(job.stall.since_ms)}</p>` : "";
  const stages = byStage(job.stages);
  for (const el of document.querySelectorAll("#graph .stage")) {
    const a = stages.get(el.dataset.path);
    if (!a) continue;
    el.setAttribute("style", stageStyle(a));
    el.dataset.out = a.elements_out;
    el.dataset.rate = a.out_rate.toFixed(3);
    el.dataset.busy = a.busy.toFixed(3);
    el.dataset.backpressured = a.backpressured.toFixed(3);
    el.classList.toggle("selected", el.dataset.path === selected);
    // A sink emits nothing: show what it consumes.
    el.querySelector(".rate").textContent = a.elements_out === 0 && a.elements_in > 0 ? fmtRate(a.in_rate) + " in" : fmtRate(a.out_rate);
    el.querySelector(".counts").textContent = `${a.elements_in} in · ${a.elements_out} out · busy ${fmtPct(a.busy)} · bp ${fmtPct(a.backpressured)}`;
  }
  // Counts change the nodes' sizes: the edges follow the layout of this update.
  if (currentPlan) drawEdges(currentPlan);
  document.getElementById("detail").innerHTML = renderDetail(stages.get(selected));
  status(`updated ${new Date().toLocaleTimeString()} · uptime ${(job.uptime_ms / 1000).toFixed(0)} s`);
  try {
    const [ck, errs] = await Promise.all([getJson(`/jobs/${job.id}/checkpoints`), getJson(`/jobs/${job.id}/errors`)]);
    document.getElementById("ck").innerHTML = renderCheckpoints(ck);
    document.getElementById("errs").innerHTML = renderErrors(errs.errors);
  } catch (e) { status(e.message); }
  document.getElementById("graph").dataset.ready = "1";
}

// ---- cluster (a coordinator's process) ----
function renderCluster(c) {
  const nodes = c.nodes.map((n) => `<tr data-node="${esc(n.name)}"><td>${esc(n.name)}</td><td>${esc(n.data)}</td>
    <td class="runs">${n.running ? esc(n.running[0]) + " #" + n.running[1] : "<span class=\"muted\">free</span>"}</td></tr>`).join("");
  const jobs = c.jobs.map((j) => {
    const placement = j.nodes.map((name, i) => {
      const kg = j.key_groups[i] || [0, 0];
      return `<tr data-job="${esc(j.name)}" data-index="${i}"><td class="num">${i}</td><td class="node">${esc(name)}</td>
        <td class="num">${kg[0]}..${kg[1] - 1}</td></tr>`;
    }).join("");
    return `<section class="cluster-job" data-job="${esc(j.name)}"><h3>${esc(j.name)} ${stateBadge(j.state)}</h3>
      <p>attempt <b class="epoch">${j.epoch}</b> · ${j.restarts} restarts · newest complete checkpoint
      <b class="checkpoint">${j.latest_complete ?? "none"}</b> · <code>${esc(j.program.join(" "))}</code></p>
      ${placement ? `<table class="placement"><tr><th>subtask</th><th>node</th><th>key groups</th></tr>${placement}</table>`
        : `<p class="muted">waiting for nodes</p>`}</section>`;
  }).join("");
  return `<h1>Cluster <span class="muted">coordinator ${esc(c.coordinator)}</span></h1>
    <h2>Nodes</h2>${c.nodes.length ? `<table id="nodes"><tr><th>node</th><th>data address</th><th>runs</th></tr>${nodes}</table>`
      : `<p class="muted">no node joined yet</p>`}
    <h2>Jobs</h2>${jobs || `<p class="muted">no job submitted yet</p>`}`;
}

async function showCluster() {
  const draw = async () => {
    app.innerHTML = renderCluster(await getJson("/cluster"));
    app.dataset.ready = "1";
    status(`updated ${new Date().toLocaleTimeString()}`);
  };
  await draw();
  timer = setInterval(() => draw().catch((e) => status(e.message)), REFRESH_MS);
}

async function route() {
  if (timer) { clearInterval(timer); timer = null; }
  currentPlan = null;
  const m = location.hash.match(/^#\/jobs\/([^/?]+)/);
  const params = new URLSearchParams(location.search);
  if (params.get("stage")) selected = params.get("stage");
  try {
    if (m) await showJob(decodeURIComponent(m[1]));
    else if (location.hash.startsWith("#/cluster")) await showCluster();
    else await showJobs();
  } catch (e) {
    app.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

window.addEventListener("hashchange", route);
route();
