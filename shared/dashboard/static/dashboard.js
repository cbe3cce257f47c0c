// The arqgraph dashboard: a page over the JSON of arqgraph.dashboard.app, polled every 2 s.
// No framework, nothing fetched from elsewhere. The token the page was opened with
// (?token=) is kept for the tab and sent with every request.
"use strict";

const POLL_MS = 2000;
const TOKEN = new URLSearchParams(location.search).get("token")
  || sessionStorage.getItem("arqgraph-token") || "";
if (TOKEN) sessionStorage.setItem("arqgraph-token", TOKEN);

const $ = (sel) => document.querySelector(sel);
const drawings = {};  // graph name -> its drawing (registered once, asked once)
let control = false;
let timer = null;
let shownPage = 0;
let ended = "";  // the run shown once it ended: nothing of it changes, so it is not asked again
const ENDED = ["done", "failed", "cancelled"];  // each page shown counts up: a poll of a page left stops

async function api(path, options = {}) {
  const headers = {...(options.headers || {})};
  if (TOKEN) headers["x-arqgraph-token"] = TOKEN;
  const response = await fetch(path, {...options, headers});
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) =>
    el("tr", {}, ...cells.map((c) => el("td", {}, c)))));
}

const clock = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "-");
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");
const took = (s) => (s === null || s === undefined ? "-" : s < 1 ? `${Math.round(s * 1000)} ms`
  : `${s.toFixed(2)} s`);
const json = (v) => JSON.stringify(v, null, 2);
const badge = (status) => el("span", {class: `status s-${status}`}, status);
const link = (runId) => el("a", {href: `#/run/${runId}`}, runId);

// -- the runs --------------------------------------------------------------------------------

async function refreshRuns() {
  const form = $("#run-filters");
  const overview = await api("/api/overview");
  showOverview(overview);
  const select = form.graph;
  const names = overview.graphs.map((g) => g.name);
  if (select.options.length - 1 !== names.length) {
    const chosen = select.value;
    select.replaceChildren(el("option", {value: ""}, "all"),
      ...names.map((n) => el("option", {value: n}, n)));
    select.value = chosen;
  }
  const query = new URLSearchParams({graph: form.graph.value, status: form.status.value});
  const runs = await api(`/api/runs?${query}`);
  fill($("#runs tbody"), runs.map((r) => [link(r.run_id), r.thread_id, r.graph, badge(r.status),
    r.step ?? "-", when(r.created), when(r.moved)]));
}

function showOverview(overview) {
  control = overview.control;
  const problems = overview.problems;
  $("#health").textContent = problems.length ? `unhealthy: ${problems.join("; ")}` : "healthy";
  $("#health").className = problems.length ? "s-failed status" : "s-done status";
}

// -- a run -----------------------------------------------------------------------------------

async function refreshRun(runId) {
  if (ended === runId) return;
  $("#run-id").textContent = runId;
  // the status first: when it says the run ended, what is read after it is final too
  const status = await api(`/api/runs/${runId}`);
  const [steps, events] = await Promise.all([api(`/api/runs/${runId}/timeline`),
    api(`/api/runs/${runId}/events`)]);
  if (location.hash !== `#/run/${runId}`) return;  // (another run was opened meanwhile)
  showOverview(await api("/api/overview"));
  const waiting = status.waiting_for_workers ? " (waiting for workers)" : "";
  $("#run-head").replaceChildren(badge(status.status), ` ${waiting} graph `,
    el("code", {}, status.graph), " thread ", el("code", {}, status.thread_id),
    ` step ${status.step ?? "-"}, created ${when(status.created)}`);
  showError(status.error);
  showControl(status);
  await showGraph(status, steps);
  fill($("#timeline tbody"), steps.map((s) => [s.step, clock(s.began), took(s.took),
    el("span", {}, ...s.tasks.map((t) => el("div", {class: `s-${t.state}`, "data-task": t.node},
      `${t.node}: ${t.state}, attempt ${t.attempt}` + (!t.worker ? ""
        : t.took === null ? ` on ${t.worker} since ${clock(t.since)}`
        : ` on ${t.worker}, took ${took(t.took)}`))))]));
  fill($("#events tbody"), events.map((e) => [clock(e.at), e.mode,
    el("code", {}, JSON.stringify(e.payload).slice(0, 400))]));
  await showStates(status.thread_id);
  if (ENDED.includes(status.status)) ended = runId;
}

function showError(error) {
  $("#run-error").hidden = !error;
  if (!error) return;
  const where = error.node ? ` in node '${error.node}'` : "";
  $("#run-error-line").textContent = `failed${where}: ${error.type}: ${error.message}`;
  $("#run-traceback").textContent = error.traceback || "(no traceback)";
}

function showControl(status) {
  const asking = status.status === "interrupted" && status.interrupts.length > 0;
  const form = $("#resume-form");
  form.hidden = !(asking && control);
  form.dataset.thread = status.thread_id;
  form.dataset.graph = status.graph;
  $("#interrupt-value").textContent = status.interrupts.map((i) => json(i.value)).join("\n");
  $("#cancel-button").hidden = !(control && status.status === "running");
  $("#cancel-button").dataset.run = status.run_id;
  $("#control-off").hidden = control || !(asking || status.status === "running");
}

async function showStates(threadId) {
  const select = $("#checkpoint");
  let history = [];
  try {
    history = await api(`/api/threads/${encodeURIComponent(threadId)}/state?history=1`);
  } catch (e) {
    $("#state").textContent = String(e.message);
    return;
  }
  const ids = history.map((s) => s.checkpoint_id);
  // the newest, unless the user picked one
  const chosen = ids.includes(select.dataset.picked) ? select.dataset.picked : ids[0];
  if ([...select.options].map((o) => o.value).join() !== ids.join()) {
    select.replaceChildren(...history.map((s) => el("option", {value: s.checkpoint_id},
      `step ${s.metadata.step} (${s.metadata.source}) ${s.checkpoint_id.slice(0, 8)}`)));
  }
  select.value = chosen || "";
  const shown = history.find((s) => s.checkpoint_id === chosen);
  $("#state").textContent = shown ? json({values: shown.values, next: shown.next,
    created_at: shown.created_at, interrupts: shown.interrupts}) : "(no checkpoint)";
}

// Each node's latest state in the run; START done once the run began, END once it is done.
function nodeStates(status, steps) {
  const states = {};
  if (steps.length) states.__start__ = "done";
  for (const step of steps) for (const t of step.tasks) states[t.node] = t.state;
  if (status.error && status.error.node) states[status.error.node] = "failed";
  if (status.status === "done") states.__end__ = "done";
  return states;
}

async function showGraph(status, steps) {
  if (!(status.graph in drawings)) {
    drawings[status.graph] = await api(`/api/graphs/${encodeURIComponent(status.graph)}/drawing`)
      .catch(() => ({}));
  }
  const drawing = drawings[status.graph];
  $("#mermaid").textContent = drawing.mermaid || "(no drawing registered)";
  $("#graph").replaceChildren(drawing.nodes ? svgOf(drawing, nodeStates(status, steps)) : "");
}

// A layered drawing: each node on the row of its shortest distance from START, END last.
function svgOf(drawing, states) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const layer = {__start__: 0};
  const queue = ["__start__"];
  while (queue.length) {
    const at = queue.shift();
    for (const e of drawing.edges) {
      if (e.source === at && !(e.target in layer)) {
        layer[e.target] = layer[at] + 1;
        queue.push(e.target);
      }
    }
  }
  let deepest = Math.max(0, ...Object.values(layer));
  for (const n of drawing.nodes) if (!(n in layer)) layer[n] = ++deepest;
  if ("__end__" in layer) layer.__end__ = Math.max(...Object.values(layer)) + (
    Object.entries(layer).some(([n, l]) => n !== "__end__" && l === layer.__end__) ? 1 : 0);
  const rows = {};
  for (const n of drawing.nodes) (rows[layer[n]] ||= []).push(n);
  const W = 150, H = 34, GAP_X = 24, GAP_Y = 46;
  const widest = Math.max(...Object.values(rows).map((r) => r.length));
  const width = widest * (W + GAP_X) + GAP_X;
  const at = {};
  for (const [l, names] of Object.entries(rows)) {
    const left = (width - names.length * (W + GAP_X) + GAP_X) / 2;
    names.forEach((n, i) => { at[n] = {x: left + i * (W + GAP_X), y: 10 + l * (H + GAP_Y)}; });
  }
  const height = 20 + (Math.max(...Object.keys(rows).map(Number)) + 1) * (H + GAP_Y);
  const root = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, id: "graph-svg"});
  const defs = svg("defs", {});
  const marker = svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"});
  marker.append(svg("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#6d6690"}));
  defs.append(marker);
  root.append(defs);
  for (const e of drawing.edges) {
    const a = at[e.source], b = at[e.target];
    if (!a || !b) continue;
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y;
    const d = b.y > a.y ? `M ${x1} ${y1} C ${x1} ${y1 + 20}, ${x2} ${y2 - 20}, ${x2} ${y2}`
      : `M ${a.x + W} ${a.y + H / 2} C ${a.x + W + 60} ${a.y}, ${b.x + W + 60} ${b.y + H},`
        + ` ${b.x + W} ${b.y + H / 2}`;  // back to an earlier row: round the right side
    root.append(svg("path", {d, class: e.conditional ? "edge conditional" : "edge"}));
    if (e.label) root.append(svg("text", {x: (x1 + x2) / 2 + 4, y: (y1 + y2) / 2}, e.label));
  }
  for (const n of drawing.nodes) {
    const g = svg("g", {class: "node", "data-node": n, "data-state": states[n] || "idle"});
    g.append(svg("rect", {x: at[n].x, y: at[n].y, width: W, height: H, rx: 8}));
    g.append(svg("text", {x: at[n].x + W / 2, y: at[n].y + H / 2 + 4, "text-anchor": "middle"},
      n.length > 22 ? n.slice(0, 21) + "…" : n));
    g.append(svg("title", {}, `${n}: ${states[n] || "not run"}`));
    root.append(g);
  }
  return root;
}

$("#resume-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    const value = JSON.parse(form.value.value);
    const started = await api(`/api/threads/${encodeURIComponent(form.dataset.thread)}/resume`, {
      method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({value, graph: form.dataset.graph})});
    $("#control-said").textContent = `resumed: run ${started.run_id}`;
    location.hash = `#/run/${started.run_id}`;
  } catch (e) {
    $("#control-said").textContent = `not resumed: ${e.message}`;
  }
});

$("#cancel-button").addEventListener("click", async (event) => {
  try {
    await api(`/api/runs/${event.target.dataset.run}/cancel`, {
      method: "POST", headers: {"content-type": "application/json"}, body: "{}"});
    $("#control-said").textContent = "cancelling";
  } catch (e) {
    $("#control-said").textContent = `not cancelled: ${e.message}`;
  }
});

// -- workers and queues ----------------------------------------------------------------------

async function refreshPool() {
  const o = await api("/api/overview");
  showOverview(o);
  $("#problems").replaceChildren(...(o.problems.length ? o.problems : ["healthy"])
    .map((p) => el("li", {}, p)));
  fill($("#queues tbody"), o.queues.map((q) => [q.queue, q.depth, took(q.oldest_age),
    q.workers, `${q.running} / ${q.concurrency}`]));
  fill($("#workers tbody"), o.workers.map((w) => [w.id, w.host, w.pid, w.queues.join(", "),
    w.graphs.join(", "), `${w.running} / ${w.concurrency}`, `${took(w.age)} ago`]));
  fill($("#orchestrators tbody"), o.orchestrators.map((w) => [w.id, w.host, w.pid,
    w.graphs.join(", "), `${took(w.age)} ago`]));
  fill($("#graphs tbody"), o.graphs.map((g) => [g.name, g.queue,
    g.orchestrators.join(", ") || "none", g.workers]));
}

// -- pages -----------------------------------------------------------------------------------

function route() {
  const [, page, arg] = (location.hash || "#/runs").split("/");
  const refresh = page === "run" ? () => refreshRun(decodeURIComponent(arg))
    : page === "pool" ? refreshPool : refreshRuns;
  const shown = page === "run" || page === "pool" ? page : "runs";
  for (const name of ["runs", "run", "pool"]) $(`#page-${name}`).hidden = name !== shown;
  if (shown === "run") {  // nothing of the run shown before stays while this one loads
    for (const sel of ["#control-said", "#state", "#run-head", "#mermaid"]) {
      $(sel).textContent = "";
    }
    for (const sel of ["#graph", "#checkpoint", "#timeline tbody", "#events tbody"]) {
      $(sel).replaceChildren();
    }
    $("#run-error").hidden = $("#resume-form").hidden = $("#cancel-button").hidden = true;
    $("#checkpoint").dataset.picked = "";
    ended = "";
  }
  clearTimeout(timer);
  const mine = ++shownPage;
  const tick = async () => {
    try {
      await refresh();
      document.body.dataset.error = "";
    } catch (e) {
      document.body.dataset.error = e.message;
      $("#health").textContent = `error: ${e.message}`;
    }
    if (mine === shownPage) timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

$("#run-filters").addEventListener("change", () => refreshRuns());
$("#checkpoint").addEventListener("change", (event) => {
  event.target.dataset.picked = event.target.value;
  showStates($("#resume-form").dataset.thread);
});
window.addEventListener("hashchange", route);
route();
