/* bankapp's live dashboard. One script, no build step.
 *
 * On load it draws the run so far from /dashboard/history (kept by the server,
 * so a tab opened late sees the run from its start). Then, about once a second,
 * it reads /stats, /debug/locks, /debug/races and the history's newest part
 * (plain GETs, none of which waits on a guard) and redraws; uPlot (vendored) draws
 * the time series, and plain SVG the latest deadlock and the latest erasure. The controls PATCH /admin/config; when the server wants
 * the admin token (401/403) the page asks for it and keeps it in this tab's
 * sessionStorage. A refusal is shown as the problem's `detail`.
 */
"use strict";

const POLL_MS = 1000;
let HISTORY = 3600; // samples kept on the charts: the server's history's capacity (an hour), set on load
const TOKEN_KEY = "bankapp-admin-token";
// A team's dashboard (a room's /teams/NAME/, or /?team=NAME as the console links it) reads that team's routes:
// its stats, its history, its settings.
const TEAM = location.pathname.match(/^\/teams\/([^/]+)\//)?.[1] ?? new URLSearchParams(location.search).get("team");
const BASE = TEAM && /^[a-z0-9-]{1,32}$/.test(TEAM) ? `/teams/${TEAM}` : "";
const C = { blue: "#0072B2", orange: "#E69F00", green: "#009E73", vermillion: "#D55E00", ink: "#111", grey: "#777" };
const WATCHED = { deposit_guard: "deposits", checkout_guard: "checkout", transfer_policy: "transfers", race_window_ms: "all" };

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n == null ? "–" : Math.round(n).toLocaleString("en-US"));
const ms = (n) => (n == null ? "–" : n < 10 ? n.toFixed(1) : fmt(n));

const state = {
  previous: null, settings: null, counted: null, markers: [], pending: null, money: null, historyT: null,
  skew: 0, // the server's clock less this browser's, in seconds: live points go on the history's time axis
  pageServers: new Set(), // who served this page's last poll (X-Served-By)
  threadCounts: new Map(), // requests each server thread had served when last seen
};
const series = {
  t: [], ack: [], change: [], inFlight: [], waiting: [], capacity: [], gateway: [], admitted: [], rejected: [],
  committed: [], deadlocks: [], requests: [], serving: [],
};

// ---------- charts ----------

function rootPx() {
  return parseFloat(getComputedStyle(document.documentElement).fontSize);
}

/** Vertical lines where a setting flipped or the lab was reset, so the room sees the change take effect. */
function markerPlugin(scope) {
  return {
    hooks: {
      draw: [
        (u) => {
          const ctx = u.ctx;
          const px = rootPx() * devicePixelRatio;
          ctx.save();
          ctx.font = `${Math.round(px * 0.7)}px system-ui, sans-serif`;
          ctx.textAlign = "left";
          ctx.textBaseline = "alphabetic";
          for (const { t, label, scopes } of state.markers) {
            if (!scopes.includes(scope) && !scopes.includes("all")) continue;
            const x = u.valToPos(t, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = C.ink;
            ctx.lineWidth = devicePixelRatio;
            ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.fillStyle = C.ink;
            ctx.fillText(label, x + 4 * devicePixelRatio, u.bbox.top + px * 0.8);
          }
          ctx.restore();
        },
      ],
    },
  };
}

function makeChart(el, scope, lines, extra = {}) {
  const px = rootPx();
  const rems = Number(el.dataset.heightRem || 8);
  const height = () => Math.max(120, Math.round(rootPx() * rems)); // room for two ticks on a laptop
  const font = `${Math.round(px * 0.75)}px system-ui, sans-serif`;
  const axis = { stroke: C.ink, font, grid: { stroke: "#e6e6e6" }, ticks: { stroke: "#ccc" } };
  const clock = (u, splits) => splits.map((t) => new Date(t * 1000).toLocaleTimeString("en-GB")); // one line, no date
  const opts = {
    width: el.clientWidth,
    height: height(),
    series: [{}, ...lines.map((line) => ({ points: { show: false }, ...line }))],
    // a line on a scale of its own gets an axis on the right
    axes: [
      { ...axis, values: clock },
      { ...axis, size: px * 4.5, space: px * 1.5 },
      ...lines.filter((l) => l.scale).map((l) => ({ ...axis, scale: l.scale, side: 1, grid: { show: false }, size: px * 2.5 })),
    ],
    cursor: { show: false },
    legend: { show: true, live: false },
    plugins: [markerPlugin(scope)],
    ...extra,
  };
  const chart = new uPlot(opts, [[], ...lines.map(() => [])], el);
  new ResizeObserver(() => chart.setSize({ width: el.clientWidth, height: height() })).observe(el);
  return chart;
}

const stepped = uPlot.paths.stepped({ align: 1 });
const charts = {
  deposits: makeChart(
    $("deposit-chart"),
    "deposits",
    [
      { label: "acknowledged ¢", stroke: C.blue, width: 3 },
      { label: "balance change ¢", stroke: C.orange, width: 3, dash: [10, 6] },
    ],
    { bands: [{ series: [1, 2], fill: "rgba(213, 94, 0, 0.28)" }] },
  ),
  flight: makeChart($("flight-chart"), "checkout", [
    { label: "in flight", stroke: C.blue, width: 3, paths: stepped },
    { label: "waiting", stroke: C.orange, width: 2, paths: stepped },
    { label: "limit", stroke: C.ink, width: 2, dash: [8, 5] },
    { label: "gateway capacity", stroke: C.grey, width: 2, dash: [2, 4] },
  ]),
  admission: makeChart($("admission-chart"), "checkout", [
    { label: "admitted/s", stroke: C.green, width: 3 },
    { label: "rejected/s", stroke: C.vermillion, width: 3, dash: [10, 6] },
  ]),
  transfers: makeChart($("transfer-chart"), "transfers", [
    { label: "committed/s", stroke: C.green, width: 3 },
    { label: "deadlocks/s", stroke: C.vermillion, width: 3, dash: [10, 6] },
  ]),
  threads: makeChart($("thread-chart"), "all", [
    { label: "requests/s", stroke: C.blue, width: 3 },
    { label: "threads serving", stroke: C.orange, width: 3, dash: [10, 6], scale: "threads" },
  ]),
};
window.dashboard = { charts, series, markers: state.markers, race: null, loaded: 0 }; // what is drawn, for the browser tests

function redrawCharts() {
  const s = series;
  charts.deposits.setData([s.t, s.ack, s.change]);
  charts.flight.setData([s.t, s.inFlight, s.waiting, s.capacity, s.gateway]);
  charts.admission.setData([s.t, s.admitted, s.rejected]);
  charts.transfers.setData([s.t, s.committed, s.deadlocks]);
  charts.threads.setData([s.t, s.requests, s.serving]);
}

// ---------- polling ----------

async function getJSON(path, servedBy) {
  const response = await fetch(BASE + path, { cache: "no-store", signal: AbortSignal.timeout(5000) });
  servedBy.add(response.headers.get("X-Served-By"));
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response.json();
}

/** The run before this tab opened, from the server's history: the same series the live polls add to. */
async function loadHistory() {
  try {
    const asked = Date.now() / 1000;
    const history = await getJSON("/dashboard/history", new Set());
    state.skew = history.now - (asked + Date.now() / 1000) / 2;
    HISTORY = Math.max(HISTORY, history.capacity);
    const h = history.series;
    for (let i = 0; i < h.t.length; i++) {
      const dt = i ? h.t[i] - h.t[i - 1] : 0;
      // after an idle stretch (no request, so no sample) the rate is the mean over it, as it was
      const per = (key) => (i ? rate(h[key][i], h[key][i - 1], dt) : 0);
      series.t.push(h.t[i]);
      series.ack.push(h.balance_change[i] + h.lost_updates[i]);
      series.change.push(h.balance_change[i]);
      series.inFlight.push(h.in_flight[i]);
      series.waiting.push(h.waiting[i]);
      series.capacity.push(h.limit[i]);
      series.gateway.push(h.gateway_capacity[i]);
      series.admitted.push(per("admitted"));
      series.rejected.push(per("rejected"));
      series.committed.push(per("committed"));
      series.deadlocks.push(per("deadlocks"));
      series.requests.push(per("requests"));
      series.serving.push(null);
    }
    history.settings.forEach((change, i) => {
      const before = history.settings[i - 1];
      if (!before) return;
      for (const [name, scope] of Object.entries(WATCHED)) {
        if (before[name] !== change[name]) state.markers.push({ t: change.t, label: `${name} ${change[name]}`, scopes: [scope] });
      }
    });
    const last = h.t.length - 1;
    if (last >= 0) {
      state.previous = {
        t: h.t[last], acknowledged: h.acknowledged[last], admitted: h.admitted[last], rejected: h.rejected[last],
        committed: h.committed[last], deadlocks: h.deadlocks[last],
      };
      state.historyT = h.t[last];
    }
    state.money = history.money;
    window.dashboard.loaded = h.t.length;
    redrawCharts();
  } catch (error) {
    $("status").textContent = `no history: ${error.message}`;
  }
}

async function poll() {
  const started = performance.now();
  try {
    const servedBy = new Set();
    const since = state.historyT == null ? "" : `?since=${state.historyT}`;
    const paths = ["/stats", "/debug/locks", "/debug/races?limit=1", "/debug/explore", `/dashboard/history${since}`];
    const [stats, locks, races, explored, history] = await Promise.all(paths.map((path) => getJSON(path, servedBy)));
    state.pageServers = servedBy;
    state.money = history.money;
    if (history.series.t.length) state.historyT = history.series.t.at(-1);
    render(stats, locks);
    drawRace(races);
    drawExploration(explored.exploration);
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("status").classList.remove("stale");
  } catch (error) {
    $("status").textContent = `no answer: ${error.message}; trying again`;
    $("status").classList.add("stale");
  }
  setTimeout(poll, Math.max(100, POLL_MS - (performance.now() - started)));
}

function rate(now, before, seconds) {
  if (before == null || seconds <= 0) return 0;
  return (now >= before ? now - before : now) / seconds; // a drop is a reset: count from zero
}

function render(stats, locks) {
  const d = stats.deposits, c = stats.checkout, x = stats.transfers, settings = stats.settings;
  const t = Date.now() / 1000 + state.skew;
  const prev = state.previous;
  const dt = prev ? t - prev.t : 0;
  noteChanges(settings, stats, t);

  // deposits: acknowledged (net of withdrawals) against what the balances show; the gap is lost_updates
  const lost = $("lost");
  lost.textContent = fmt(d.lost_updates);
  lost.className = "big " + (d.lost_updates > 0 ? "bad" : "good");
  $("acknowledged").textContent = fmt(d.acknowledged);
  $("acknowledged-cents").textContent = fmt(d.acknowledged_amount);
  $("balance-change").textContent = fmt(d.balance_change);
  $("deposit-rate").textContent = fmt(rate(d.acknowledged, prev?.acknowledged, dt));

  // checkout
  const admittedRate = rate(c.admitted, prev?.admitted, dt);
  const rejectedRate = rate(c.rejected, prev?.rejected, dt);
  // `limit` is capacity under a semaphore, and moves under the adaptive guard
  const limit = c.limit === undefined ? c.capacity : c.limit;
  $("in-flight").textContent = `${fmt(c.in_flight)} / ${limit == null ? "no limit" : fmt(limit)}`;
  $("peak-in-flight").textContent = fmt(c.peak_in_flight);
  $("admitted-rate").textContent = fmt(admittedRate);
  $("rejected-rate").textContent = fmt(rejectedRate);
  $("checkout-latency").textContent = `${ms(c.latency_ms.p50)} / ${ms(c.latency_ms.p99)}`;
  setFigure("oversold", c.oversold, c.oversold > 0);

  // transfers
  setFigure("committed", x.committed, false);
  setFigure("deadlocks", x.deadlocks, x.deadlocks > 0);
  setFigure("lock-timeouts", x.lock_timeouts, x.lock_timeouts > 0);
  setFigure("wrong-total", x.wrong_total_reads, x.wrong_total_reads > 0);
  drawMoney(x, state.money);
  drawCycle(locks);

  // threads
  $("active-count").textContent = fmt(stats.served_by.active_count);
  const requestsPerSecond = renderServers(stats.served_by, dt);

  series.t.push(t);
  series.ack.push(d.balance_change + d.lost_updates);
  series.change.push(d.balance_change);
  series.inFlight.push(c.in_flight);
  series.waiting.push(c.waiting);
  series.capacity.push(c.limit === undefined ? c.capacity : c.limit);
  series.gateway.push(c.gateway_capacity);
  series.admitted.push(admittedRate);
  series.rejected.push(rejectedRate);
  series.committed.push(rate(x.committed, prev?.committed, dt));
  series.deadlocks.push(rate(x.deadlocks, prev?.deadlocks, dt));
  series.requests.push(requestsPerSecond);
  series.serving.push(stats.served_by?.threads.length ?? null);
  for (const key in series) if (series[key].length > HISTORY) series[key].shift();
  while (state.markers.length && state.markers[0].t < series.t[0]) state.markers.shift();
  redrawCharts();

  state.previous = {
    t, acknowledged: d.acknowledged, admitted: c.admitted, rejected: c.rejected, committed: x.committed, deadlocks: x.deadlocks,
  };
}

/** The total's change split by who made it: deposits' lost updates are not the transfers' doing. */
function drawMoney(x, m) {
  const off = x.total - x.expected_total;
  const by = m ? m.lost_by : { deposits: 0, transfers: 0, either: 0, unexplained: 0 };
  const transfersToBlame = by.transfers + by.either + by.unexplained;
  setFigure("conserved", off, !x.total_conserved && (!m || transfersToBlame !== 0)); // money created or destroyed
  $("conserved").classList.toggle("warn", !x.total_conserved && m != null && transfersToBlame === 0);
  setFigure("off-deposits", by.deposits, false);
  $("off-deposits").classList.toggle("warn", by.deposits !== 0);
  setFigure("off-transfers", by.transfers, by.transfers !== 0);
  if (!m) return;
  const signed = (n) => (n > 0 ? "+" : n < 0 ? "−" : "") + fmt(Math.abs(n));
  const parts = [`deposits acknowledged ${signed(m.deposits)} (net of withdrawals)`];
  if (by.deposits) parts.push(`${signed(by.deposits)} lost by deposits' races (${m.deposits_could_lose}: deposits take no account lock)`);
  if (by.transfers) parts.push(`${signed(by.transfers)} lost by transfers (${m.transfers_could_lose}: no lock at all)`);
  if (by.either) parts.push(`${signed(by.either)} lost by deposits or transfers: both wrote unguarded (${m.deposits_could_lose}, ${m.transfers_could_lose})`);
  if (by.unexplained) parts.push(`${signed(by.unexplained)} that no setting explains`);
  if (m.in_flight) parts.push(`${signed(-m.in_flight)} inside transfers in flight`);
  if (!by.transfers && !by.either && !by.unexplained) parts.push("transfers conserved money");
  $("money-caption").textContent = `the total moved by ${signed(m.total_change)} ¢: ${parts.join("; ")}`;
}

function setFigure(id, value, bad) {
  $(id).textContent = fmt(value);
  $(id).className = bad ? "bad" : "";
}

/** The controls show the settings in force; a flip or a reset leaves a marker on the charts. */
function noteChanges(settings, stats, t) {
  for (const fieldset of document.querySelectorAll("fieldset[data-setting]")) {
    for (const button of fieldset.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.value === settings[fieldset.dataset.setting]));
    }
  }
  for (const el of document.querySelectorAll("[data-setting-value]")) el.textContent = settings[el.dataset.settingValue];
  const input = $("race-window-ms");
  if (document.activeElement !== input) input.value = settings.race_window_ms;

  const before = state.settings;
  if (before) {
    for (const [name, scope] of Object.entries(WATCHED)) {
      if (before[name] !== settings[name]) state.markers.push({ t, label: `${name} ${settings[name]}`, scopes: [scope] });
    }
  }
  // counters only go down on a reset
  const counted = stats.deposits.acknowledged + stats.checkout.admitted + stats.checkout.rejected + stats.transfers.committed;
  if (state.counted != null && counted < state.counted) state.markers.push({ t, label: "reset", scopes: ["all"] });
  state.settings = settings;
  state.counted = counted;
}

// ---------- threads ----------

function commonPrefix(names) {
  if (!names.length) return "";
  let prefix = names[0];
  for (const name of names) while (!name.startsWith(prefix)) prefix = prefix.slice(0, -1);
  // never cut a number in two (…-0_1 of …-0_1 and …-0_10)
  return names.length > 1 ? prefix.replace(/\d+$/, "") : prefix.slice(0, prefix.lastIndexOf("/") + 1);
}

/** One chip per thread that served lately, with its requests per second; those that served this
 * page's last poll (their `X-Served-By`) ringed. Returns the requests per second of them all. */
function renderServers(report, dt) {
  let total = 0;
  const threads = (report?.threads || []).slice().sort((a, b) => a.by.localeCompare(b.by, "en", { numeric: true }));
  const prefix = commonPrefix(threads.map((s) => s.by));
  $("served-by-prefix").textContent = prefix ? `${prefix}…` : "";
  $("served-by").replaceChildren(
    ...threads.map(({ by, requests }) => {
      const perSecond = rate(requests, state.threadCounts.get(by), dt); // 0 the first time a thread is seen
      state.threadCounts.set(by, requests);
      total += perSecond;
      const chip = document.createElement("span");
      chip.className = "chip" + (perSecond >= 1 ? " busy" : "") + (state.pageServers.has(by) ? " mine" : "");
      chip.textContent = `${by.slice(prefix.length)} · ${fmt(perSecond)}/s`;
      chip.title = `${by}: ${requests} requests so far`;
      return chip;
    }),
  );
  $("serving").textContent = fmt(threads.length);
  const pids = new Set([...state.pageServers].map((by) => by.split("/")[0]));
  $("page-served-by").textContent = `pid ${[...pids].join(", ")}`;
  return total;
}

// ---------- the deadlock cycle ----------

const SVG = "http://www.w3.org/2000/svg"; // the SVG namespace name, not a resource

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

/** The latest deadlock as a ring: thread --waits for--> account --held by--> thread ... */
function drawCycle(locks) {
  const deadlock = locks.recent_deadlocks?.[locks.recent_deadlocks.length - 1];
  const box = $("cycle");
  const key = deadlock ? JSON.stringify([deadlock.id, deadlock.victim]) : "";
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren();
  if (!deadlock) {
    $("cycle-caption").textContent = "no deadlock yet";
    return;
  }
  const W = 600, H = 200, nodes = [];
  for (const step of deadlock.cycle) {
    nodes.push({ kind: "thread", label: step.thread });
    nodes.push({ kind: "account", label: step.waits_for });
  }
  box.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const defs = svg("defs", {});
  for (const [id, colour] of [["wait", C.vermillion], ["hold", C.blue]]) {
    const marker = svg("marker", { id: `arrow-${id}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }));
    defs.append(marker);
  }
  box.append(defs);
  const at = nodes.map((_, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / nodes.length;
    return { x: W / 2 + (W / 2 - 110) * Math.cos(angle), y: H / 2 + (H / 2 - 24) * Math.sin(angle) };
  });
  nodes.forEach((node, i) => {
    const a = at[i], b = at[(i + 1) % nodes.length];
    const waits = node.kind === "thread";
    const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
    const trimA = waits ? 30 : 40, trimB = waits ? 40 : 30;
    const [ux, uy] = [(b.x - a.x) / len, (b.y - a.y) / len];
    box.append(
      svg("line", {
        x1: a.x + ux * trimA, y1: a.y + uy * trimA, x2: b.x - ux * trimB, y2: b.y - uy * trimB,
        stroke: waits ? C.vermillion : C.blue, "stroke-width": 3, "stroke-dasharray": waits ? "8 5" : "none",
        "marker-end": `url(#arrow-${waits ? "wait" : "hold"})`,
      }),
      svg("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 6, "text-anchor": "middle", fill: waits ? C.vermillion : C.blue }, waits ? "waits for" : "held by"),
    );
  });
  nodes.forEach((node, i) => {
    const { x, y } = at[i];
    const victim = node.kind === "thread" && node.label === deadlock.victim;
    const width = Math.max(70, node.label.length * 9.5 + 20);
    const shape = node.kind === "thread"
      ? svg("ellipse", { cx: x, cy: y, rx: width / 2, ry: 20, fill: "#d6ecf9", stroke: victim ? C.vermillion : C.blue, "stroke-width": victim ? 4 : 2 })
      : svg("rect", { x: x - 40, y: y - 18, width: 80, height: 36, rx: 6, fill: "#fbe8c2", stroke: C.orange, "stroke-width": 2 });
    const group = svg("g", { class: `node ${node.kind}` });
    group.append(shape, svg("text", { x, y: y + 5, "text-anchor": "middle", fill: C.ink }, node.label));
    box.append(group);
  });
  const when = new Date(deadlock.detected_at).toLocaleTimeString();
  $("cycle-caption").textContent =
    `deadlock #${deadlock.id} at ${when}, detected after ${deadlock.detected_after_ms} ms; ` +
    (deadlock.victim ? `victim ${deadlock.victim} rolled back and answered 409` : "not broken: no waiter may give up");
}

// ---------- the latest erasure ----------

const at = (n) => n.toLocaleString("en-US");

/** The latest erasure as two lanes on one time axis: each thread's read, its window, its write. */
function drawRace(races) {
  const event = races.races[0];
  const box = $("race");
  const key = event ? JSON.stringify([event.id, event.at]) : "";
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren();
  window.dashboard.race = event || null;
  $("race-caption").textContent = event ? event.sentence : "no write has erased another yet";
  if (!event || !event.erased.length) return;
  const erased = event.erased[0], eraser = event.eraser;
  const W = 900, H = 170, left = 250, right = 40;
  const t0 = Math.min(erased.read_at, eraser.read_at), span = Math.max(eraser.wrote_at - t0, 1e-6);
  const x = (t) => left + ((t - t0) / span) * (W - left - right);
  box.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const lane = (write, y, colour, wrote) => {
    const [a, b] = [x(write.read_at), x(write.wrote_at)];
    box.append(
      svg("text", { x: 0, y: y - 4, fill: colour, "font-weight": 700 }, write.thread),
      svg("text", { x: 0, y: y + 18, fill: C.ink }, `${write.operation || "write"} ${write.request_id || ""}`.slice(0, 28)),
      svg("rect", { x: a, y: y - 9, width: Math.max(b - a, 2), height: 18, fill: colour, opacity: 0.25, class: "window" }),
      svg("circle", { cx: a, cy: y, r: 7, fill: colour, class: "read" }),
      svg("circle", { cx: b, cy: y, r: 7, fill: colour, class: "write" }),
      svg("text", { x: a, y: y - 14, fill: C.ink, "text-anchor": "start" }, `read ${at(write.read_balance)} (v${write.read_version})`),
      svg("text", { x: b, y: y + 28, fill: C.ink, "text-anchor": "end" }, wrote),
    );
  };
  lane(erased, 50, C.blue, `wrote ${at(erased.balance)} (v${erased.version})`);
  lane(eraser, 125, C.vermillion, `wrote ${at(eraser.balance)} over v${event.overwrote.version}`);
  const mark = x(erased.wrote_at);
  box.append(
    svg("line", { x1: mark, y1: 60, x2: mark, y2: 118, stroke: C.ink, "stroke-dasharray": "4 4" }),
    svg("text", { x: W, y: 14, fill: C.grey, "text-anchor": "end" }, `latest erasure: ${((eraser.wrote_at - t0) * 1000).toFixed(1)} ms from first read to last write`),
  );
}

// ---------- the last exploration ----------

/** The last exploration's shortest failing schedule as lanes, one per thread, its steps in the order run. */
function drawExploration(result) {
  const box = $("explored");
  const example = result && result.counterexample;
  const key = result ? JSON.stringify([result.scenario, result.guard, result.threads, example && example.schedule]) : "";
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren();
  window.dashboard.exploration = result || null;
  if (!result) return;
  const total = result.schedules + result.equivalent;
  const failing = Object.entries(result.outcomes).reduce((n, [kind, count]) => n + (kind === "ok" ? 0 : count), 0);
  const head = `explored ${result.scenario} under ${result.guard}, ${result.threads} threads: `;
  $("explored-caption").textContent = example
    ? `${head}${example.outcome} in ${at(failing)} of ${at(total)} schedules; the shortest: ${example.schedule}`
    : `${head}no schedule fails, 0 of ${at(total)}`;
  if (!example) return;
  const threads = [...new Set(example.steps.map((step) => step.step.split(".")[0]))].sort();
  const W = 900, left = 60, right = 20, laneGap = 45, H = 30 + laneGap * threads.length;
  const x = (i) => left + ((i + 0.5) / example.steps.length) * (W - left - right);
  const y = (thread) => 30 + laneGap * threads.indexOf(thread);
  const colours = [C.blue, C.vermillion, C.orange];
  box.setAttribute("viewBox", `0 0 ${W} ${H}`);
  threads.forEach((thread, i) => {
    box.append(
      svg("text", { x: 0, y: y(thread) + 5, fill: colours[i % 3], "font-weight": 700 }, thread),
      svg("line", { x1: left, y1: y(thread), x2: W - right, y2: y(thread), stroke: C.grey, "stroke-dasharray": "2 6" }),
    );
  });
  example.steps.forEach((step, i) => {
    const [thread, kind] = step.step.split(".");
    const colour = colours[threads.indexOf(thread) % 3];
    const mark = svg("g", { class: `step ${kind}` });
    const title = svg("title", {}, `${step.step}: ${step.does}`);
    mark.append(
      title,
      svg("circle", { cx: x(i), cy: y(thread), r: 8, fill: kind === "write" || kind === "acquire" ? colour : "#fff", stroke: colour, "stroke-width": 3 }),
      svg("text", { x: x(i), y: y(thread) - 13, "text-anchor": "middle", fill: C.ink, "font-size": 12 }, kind),
    );
    box.append(mark);
  });
  for (const stuck of example.stuck || []) {
    box.append(svg("text", { x: W - right, y: y(stuck.thread) + 22, "text-anchor": "end", fill: C.vermillion, "font-size": 12 }, `waits for the ${stuck.waits_for}`));
  }
}

// ---------- controls ----------

function showProblem(text) {
  $("problem").textContent = text;
  $("problem").hidden = !text;
}

/** An admin request; on 401/403 ask for the token and retry, on any other refusal show its detail. */
async function admin(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.ok) {
    showProblem("");
    return response.json();
  }
  const problem = await response.json().catch(() => ({ detail: `${response.status} ${response.statusText}` }));
  const tokenWouldHelp = (response.status === 401 || response.status === 403) && !String(problem.type).endsWith(":admin-loopback-only");
  if (tokenWouldHelp) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.pending = () => admin(method, path, body);
    $("token").hidden = false;
    $("token-input").focus();
  }
  showProblem(problem.detail || problem.title || `${response.status}`);
  return null;
}

for (const fieldset of document.querySelectorAll("fieldset[data-setting]")) {
  fieldset.addEventListener("click", (event) => {
    const value = event.target.closest("button")?.dataset.value;
    if (value) admin("PATCH", "/admin/config", { [fieldset.dataset.setting]: value });
  });
}

$("race-window").addEventListener("submit", (event) => {
  event.preventDefault();
  admin("PATCH", "/admin/config", { race_window_ms: Number($("race-window-ms").value) }).then(() => $("race-window-ms").blur());
});

$("reset").addEventListener("click", () => admin("POST", "/admin/reset"));

// ---------- isolation levels (POST /admin/isolation) ----------

/** One row per case, one cell per level: the result judged on the server's database, and how; a cell that differs
 * from Hermitage's published result is outlined and says so in its title. */
async function runIsolation() {
  $("isolation-caption").textContent = "running…";
  const matrix = await admin("POST", "/admin/isolation");
  if (!matrix) {
    $("isolation-caption").textContent = "not run";
    return;
  }
  const rows = new Map();
  for (const cell of matrix.cases) {
    if (!rows.has(cell.case)) rows.set(cell.case, []);
    rows.get(cell.case).push(cell);
  }
  const body = $("isolation-table").tBodies[0];
  body.replaceChildren(...[...rows].map(([name, cells]) => {
    const tr = document.createElement("tr");
    tr.append(Object.assign(document.createElement("th"), { textContent: name }));
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell.result + (cell.how ? ` (${cell.how})` : "");
      td.className = cell.result + (cell.agrees ? "" : " differs");
      td.title = `${cell.why}\nHermitage: ${cell.hermitage}${cell.hermitage_scripted ? " (scripted)" : ""}\n\n${cell.steps.join("\n")}`;
      tr.append(td);
    }
    return tr;
  }));
  $("isolation-table").hidden = false;
  $("isolation-caption").textContent = matrix.agrees ? "every cell agrees with Hermitage" : "some cells differ from Hermitage (outlined)";
}

$("isolation-run").addEventListener("click", runIsolation);

$("token").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token-input").value);
  $("token-input").value = "";
  $("token").hidden = true;
  const retry = state.pending;
  state.pending = null;
  if (retry) retry();
});

loadHistory().then(poll);
