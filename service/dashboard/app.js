// Rung's dashboard: two views over the /v1 API, `#/` (the studies) and `#/studies/ID` (one
// study), refreshed every few seconds while the tab is visible. The API token, when the
// server needs one, is asked for once per tab, kept in sessionStorage and sent in the
// Authorization header only.
"use strict";

const TOKEN_KEY = "rung.token";
const POLL_MS = 3000;
// The hyperparameter charts refresh when trials complete; past 500, at most every 15 s.
const HYPERPARAMETER_MS = 15000;
const CHART_TRIALS = 2000; // completed trials drawn in the hyperparameter charts
// The columns of a CSV export, as `rung export` writes them; then hp.<name>, metric.<name>.
const EXPORT_FIELDS = ["id", "status", "iteration", "bracket", "round", "epochs",
  "initial_epoch", "parent_trial_id", "score", "best_epoch", "worker_id", "runs", "failed_runs",
  "lost_leases", "created_at", "finished_at", "error"];
const STATUSES = ["pending", "running", "completed", "failed"];

const main = document.getElementById("main");
const signin = document.getElementById("signin");
const live = document.getElementById("live");
const forget = document.getElementById("forget");

class NeedsToken extends Error {}

// -- the API --------------------------------------------------------------------------------

async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { headers, cache: "no-store" });
  const body = await response.json().catch(() => null);
  const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
  if (response.status === 401) throw new NeedsToken(message);
  if (!response.ok) throw new Error(message);
  return body;
}

// Every item of a paged list (up to `max`), a page of 1000 at a time.
async function allPages(path, params = {}, max = Infinity) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { ...params, limit: 1000, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items.slice(0, max);
}

// -- small helpers --------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key === "className" ? "class" : key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

const fmt = (v) => (v === null || v === undefined ? "–" : Charts.format(v));
const badge = (status) => h("span", { className: `status ${status}` }, status);

function ago(iso) {
  if (!iso) return "–";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 0) return `in ${-s} s`;
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// The objective's value in one epoch's metrics, as the score is (a sum for several).
function objectiveOf(study) {
  const parts = Array.isArray(study.objective) ? study.objective : [study.objective];
  const direction = parts.length > 1 ? "min" : parts[0].direction;
  const label = parts.map((p) => p.name).join(" + ");
  const value = (metrics) => {
    let total = 0;
    for (const p of parts) {
      if (typeof metrics[p.name] !== "number") return null;
      total += parts.length > 1 && p.direction === "max" ? -metrics[p.name] : metrics[p.name];
    }
    return total;
  };
  const better = (a, b) => (direction === "max" ? b - a : a - b); // for sort: best first
  return { direction, label, value, better };
}

function csvCell(value) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function toCsv(trials) {
  const names = (pick) => [...new Set(trials.flatMap((t) => Object.keys(pick(t) || {})))];
  const hps = names((t) => t.hyperparameters), metrics = names((t) => t.metrics);
  const header = [...EXPORT_FIELDS, ...hps.map((n) => `hp.${n}`),
    ...metrics.map((n) => `metric.${n}`)];
  const rows = trials.map((t) => [...EXPORT_FIELDS.map((f) => t[f]),
    ...hps.map((n) => t.hyperparameters[n]), ...metrics.map((n) => (t.metrics || {})[n])]);
  return [header, ...rows].map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
}

// -- the views --------------------------------------------------------------------------------

function studiesView() {
  const search = h("input", { type: "search", id: "search", placeholder: "search by name",
    oninput: () => draw() });
  const body = h("tbody");
  main.replaceChildren(h("section", {},
    h("h2", {}, "Studies"),
    h("div", { className: "toolbar" }, search),
    h("table", { id: "studies" },
      h("thead", {}, h("tr", {}, ...["name", "status", "trials", "brackets open / closed",
        "best score", "last activity"].map((t) => h("th", {}, t)))),
      body)));
  let studies = [];

  function row(study) {
    const m = study.summary, t = m.trials;
    return h("tr", { dataset: { study: study.id } },
      h("td", {}, h("a", { href: `#/studies/${study.id}` }, study.name)),
      h("td", {}, badge(study.status)),
      h("td", { className: "trials" }, `${t.completed} completed, ${t.running} running, ` +
        `${t.pending} pending, ${t.failed} failed`),
      h("td", {}, `${m.brackets_open} / ${m.brackets_closed}`),
      h("td", { className: "best" }, fmt(m.best_score)),
      h("td", {}, ago(m.last_activity_at)));
  }

  function draw() {
    const query = search.value.trim().toLowerCase();
    const shown = studies.filter((s) => s.name.toLowerCase().includes(query));
    body.replaceChildren(...(shown.length ? shown.map(row)
      : [h("tr", {}, h("td", { colspan: 6, className: "empty" }, "no studies"))]));
  }

  return {
    async refresh() {
      studies = await allPages("/v1/studies", { summary: true });
      draw();
    },
  };
}

function studyView(id) {
  const base = `/v1/studies/${encodeURIComponent(id)}`;
  const state = { study: null, objective: null, selected: null, trial: null, allBrackets: false,
    hpAt: 0, hpCompleted: -1 };
  const part = (id, className) => h("div", { id, className });
  const el = {
    head: h("section", { id: "study-head" }),
    ladder: part("ladder"), bracketTitle: h("h2", {}, "Promotions"),
    bracket: part("bracket-graph"), trial: part("trial-detail"), curves: part("curves"),
    bestTime: part("best-time"), bestEpochs: part("best-epochs"), parallel: part("parallel"),
    scatter: part("scatter", "small-multiples"), workers: part("workers"),
  };
  const table = trialTable(base, () => state.study);
  main.replaceChildren(
    el.head,
    h("section", {}, h("h2", {}, "Ladder"),
      h("p", { className: "muted" }, "Each bracket's rounds: trials created of those planned, " +
        "completed, and the epochs each trains to. Click a bracket to see its promotions."),
      el.ladder),
    h("section", {}, el.bracketTitle, el.bracket, el.trial),
    h("div", { className: "grid2" },
      h("section", {}, h("h2", {}, "Learning curves (the selected bracket)"), el.curves),
      h("section", {}, h("h2", {}, "Best so far"), el.bestTime, el.bestEpochs)),
    h("section", {}, h("h2", {}, "Hyperparameters and score"), el.parallel, el.scatter),
    table.section,
    h("section", {}, h("h2", {}, "Workers"), el.workers));

  function drawHead() {
    const s = state.study, t = s.summary.trials;
    const facts = [["status", badge(s.status)], ["objective",
      `${state.objective.label} (${state.objective.direction})`],
    ["max_epochs", s.settings.max_epochs], ["factor", s.settings.factor],
    ["hyperband_iterations", s.settings.hyperband_iterations ?? "unbounded"],
    ["scheduler", s.settings.scheduler ?? "hyperband"], ["sampler", s.settings.sampler ?? "random"],
    ["trials", `${t.completed} completed, ${t.running} running, ${t.pending} pending, ` +
      `${t.failed} failed`],
    ["brackets", `${s.summary.brackets_open} open, ${s.summary.brackets_closed} closed`],
    ["best score", fmt(s.summary.best_score)], ["last activity", ago(s.summary.last_activity_at)]];
    el.head.replaceChildren(h("h2", { id: "study-name" }, s.name),
      ...(s.reason ? [h("p", { className: "muted" }, s.reason)] : []),
      h("div", { className: "facts" }, ...facts.map(([k, v]) => h("div", {}, h("span", {}, k), v))));
  }

  function drawLadder() {
    const brackets = state.study.progress.brackets;
    const width = Math.max(0, ...brackets.map((b) => b.rounds.length));
    const ordered = [...brackets].reverse().sort((a, b) => b.open - a.open);
    const shown = state.allBrackets ? ordered : ordered.slice(0, 12);
    const rows = shown.map((b) => {
      const key = `${b.iteration}/${b.bracket}`;
      return h("tr", {
        className: `bracket-row${state.selected === key ? " selected" : ""}`,
        dataset: { iteration: b.iteration, bracket: b.bracket },
        onclick: () => {
          state.selected = key;
          state.trial = null;
          drawLadder();
          drawBracket().catch(showError);
        },
      },
      h("td", {}, b.iteration), h("td", {}, b.bracket), h("td", {}, b.open ? "open" : "closed"),
      ...Array.from({ length: width }, (_, r) => {
        const round = b.rounds[r];
        if (!round) return h("td", {});
        const done = round.completed >= round.size;
        return h("td", {
          className: `round${done ? " done" : ""}${round.created ? "" : " empty"}`,
          dataset: { round: r, size: round.size, created: round.created,
            completed: round.completed, epochs: round.epochs },
        }, h("span", {}, `${round.created}/${round.size} created`), " ",
        h("span", {}, `${round.completed} completed`), " ",
        h("span", { className: "muted" }, `${round.epochs} epochs`));
      }));
    });
    const more = ordered.length > shown.length
      ? h("button", { type: "button", onclick: () => { state.allBrackets = true; drawLadder(); } },
        `show all ${ordered.length} brackets`) : null;
    el.ladder.replaceChildren(h("table", { id: "ladder-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "iteration"), h("th", {}, "bracket"),
        h("th", {}, ""), ...Array.from({ length: width }, (_, r) => h("th", {}, `round ${r}`)))),
      h("tbody", {}, rows)), ...(more ? [more] : []));
  }

  async function drawBracket() {
    if (!state.selected) {
      el.bracket.replaceChildren(h("p", { className: "empty" }, "no trials yet"));
      return;
    }
    const [iteration, bracket] = state.selected.split("/").map(Number);
    const trials = await allPages(`${base}/trials`, { iteration, bracket });
    el.bracketTitle.textContent = `Promotions: iteration ${iteration}, bracket ${bracket}`;
    const { value, better } = state.objective;
    const byId = new Map(trials.map((t) => [t.id, t]));
    const rounds = [...new Set(trials.map((t) => t.round))].sort((a, b) => a - b);
    const nodes = [];
    for (const r of rounds) {
      const inRound = trials.filter((t) => t.round === r).sort((a, b) =>
        (a.score === null) - (b.score === null) || better(a.score, b.score) || a.id - b.id);
      inRound.forEach((t, rank) => nodes.push({ id: t.id, round: r, rank, status: t.status,
        title: `trial ${t.id}: ${t.status}, score ${fmt(t.score)}, ${t.epochs} epochs` }));
    }
    const links = trials.filter((t) => t.parent_trial_id && byId.has(t.parent_trial_id))
      .map((t) => ({ from: t.parent_trial_id, to: t.id }));
    Charts.ladder(el.bracket, { rounds, nodes, links, onClick: (tid) => showTrial(tid).catch(showError) });
    if (state.trial) markSelected();

    const root = (t) => (t.parent_trial_id && byId.has(t.parent_trial_id)
      ? root(byId.get(t.parent_trial_id)) : t);
    const curve = (t) => (t.history || []).map((e) => [e.epoch + 1, value(e.metrics)])
      .filter((p) => p[1] !== null);
    const series = trials.map((t) => {
      const parent = t.parent_trial_id && byId.get(t.parent_trial_id);
      const parentCurve = parent ? curve(parent) : [];
      return { label: `trial ${t.id}`, id: t.id, points: curve(t),
        joinFrom: parentCurve.length ? parentCurve[parentCurve.length - 1] : null,
        color: Charts.PALETTE[Number(root(t).id) % Charts.PALETTE.length] };
    });
    Charts.lines(el.curves, { series, xLabel: "epoch", yLabel: state.objective.label,
      onClick: (s) => showTrial(s.id).catch(showError) });
  }

  function markSelected() {
    for (const node of el.bracket.querySelectorAll("g.node")) {
      node.classList.toggle("selected", node.dataset.trial === state.trial);
    }
  }

  async function showTrial(tid) {
    state.trial = tid;
    markSelected();
    const t = await api(`${base}/trials/${encodeURIComponent(tid)}`);
    const link = (other) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); showTrial(other).catch(showError); } },
      `trial ${other}`);
    const last = t.history && t.history.length ? t.history[t.history.length - 1].metrics : null;
    el.trial.replaceChildren(h("div", { id: "trial", dataset: { trial: t.id } },
      h("h3", {}, `Trial ${t.id} `, badge(t.status)),
      h("div", { className: "facts" },
        ...[["score", fmt(t.score)], ["epochs", `${t.initial_epoch} → ${t.epochs}`],
          ["round", t.round], ["from", t.parent_trial_id ? link(t.parent_trial_id) : "sampled"],
          ["worker", t.worker_id || "–"], ["runs", t.runs]]
          .map(([k, v]) => h("div", {}, h("span", {}, k), v))),
      h("pre", {}, JSON.stringify({ hyperparameters: t.hyperparameters,
        metrics: t.metrics || last, error: t.error }, null, 1))));
  }

  function drawBest(best) {
    const start = Date.parse(state.study.created_at);
    const minutes = (iso) => (Date.parse(iso) - start) / 60000;
    const points = best.points;
    if (!points.length) {
      Charts.lines(el.bestTime, { series: [] });
      el.bestEpochs.replaceChildren();
      return;
    }
    const last = points[points.length - 1];
    const byTime = points.map((p) => [minutes(p.finished_at), p.score]);
    byTime.push([minutes(best.last_finished_at), last.score]);
    const byEpochs = points.map((p) => [p.epochs_trained, p.score]);
    byEpochs.push([best.epochs_trained, last.score]);
    const label = `best ${state.objective.label}`;
    Charts.lines(el.bestTime, { series: [{ label: "best so far", points: byTime }], step: true,
      xLabel: "minutes since the study was created", yLabel: label, height: 200 });
    Charts.lines(el.bestEpochs, { series: [{ label: "best so far", points: byEpochs }],
      step: true, xLabel: "epochs trained", yLabel: label, height: 200 });
  }

  async function drawHyperparameters() {
    const trials = await allPages(`${base}/trials`, { status: "completed", history: false },
      CHART_TRIALS);
    const scored = trials.filter((t) => t.score !== null);
    const { better } = state.objective;
    const ranked = [...scored].sort((a, b) => better(a.score, b.score));
    const rank = new Map(ranked.map((t, i) => [t.id, i / Math.max(1, ranked.length - 1)]));
    const rows = scored.map((t) => ({ ...t, color: Charts.ramp(rank.get(t.id)),
      title: `trial ${t.id}: score ${fmt(t.score)}` }));
    const columns = [];
    for (const hp of state.study.hyperparameters) {
      if (hp.type === "fixed") continue;
      const numeric = hp.type === "int" || hp.type === "float" ||
        (hp.type === "choice" && hp.values.every((v) => typeof v === "number"));
      const log = numeric && hp.sampling === "log";
      columns.push({
        name: log ? `log10 ${hp.name}` : hp.name,
        hp: hp.name,
        categories: numeric ? null : (hp.type === "boolean" ? ["false", "true"]
          : hp.values.map(String)),
        value: (t) => {
          const v = t.hyperparameters[hp.name];
          if (v === undefined || v === null) return null;
          return numeric ? (log ? Math.log10(v) : v) : String(v);
        },
      });
    }
    Charts.parallel(el.parallel, { axes: [...columns, { name: "score", value: (t) => t.score }],
      rows });
    el.scatter.replaceChildren(...columns.map((col) => {
      const box = h("div", { className: "scatter", dataset: { hp: col.hp } });
      const points = rows.filter((t) => col.value(t) !== null).map((t) => ({
        x: col.value(t), y: t.score, title: t.title,
        color: Charts.PALETTE[t.round % Charts.PALETTE.length] }));
      Charts.scatter(box, { points, xLabel: col.name, yLabel: "score",
        categories: col.categories });
      return box;
    }));
  }

  function drawWorkers(running) {
    const lease = state.study.settings.lease_seconds;
    const rows = running.map((t) => {
      const contact = new Date(Date.parse(t.lease_expires_at) - lease * 1000).toISOString();
      return h("tr", { dataset: { worker: t.worker_id, trial: t.id } },
        h("td", {}, t.worker_id), h("td", {}, `trial ${t.id}`),
        h("td", {}, `${t.iteration} / ${t.bracket} / ${t.round}`),
        h("td", {}, `${t.initial_epoch} → ${t.epochs}`),
        h("td", {}, ago(contact)), h("td", {}, ago(t.lease_expires_at)));
    });
    el.workers.replaceChildren(rows.length ? h("table", { id: "workers-table" },
      h("thead", {}, h("tr", {}, ...["worker", "holds", "iteration / bracket / round", "epochs",
        "last contact", "lease expires"].map((t) => h("th", {}, t)))), h("tbody", {}, rows))
      : h("p", { className: "empty" }, "no worker holds a trial now"));
  }

  return {
    async refresh(first) {
      const [study, best, running] = await Promise.all([api(base), api(`${base}/best-so-far`),
        allPages(`${base}/trials`, { status: "running", history: false })]);
      state.study = study;
      state.objective = objectiveOf(study);
      if (!state.selected) {
        const b = study.progress.best_trial || study.progress.brackets[0];
        if (b) state.selected = `${b.iteration}/${b.bracket}`;
      }
      drawHead();
      drawLadder();
      drawBest(best);
      drawWorkers(running);
      await drawBracket();
      const completed = study.summary.trials.completed;
      const wait = completed > 500 ? HYPERPARAMETER_MS : 0;
      if (first || (completed !== state.hpCompleted && Date.now() - state.hpAt > wait)) {
        state.hpAt = Date.now();
        state.hpCompleted = completed;
        await drawHyperparameters();
      }
      await table.refresh(first);
    },
  };
}

// The trial table: filters by status, iteration, bracket and round (in the API), sorts the
// rows it has loaded, loads more a page at a time, and exports every matching trial.
function trialTable(base, study) {
  const columns = [["id", "trial"], ["status", "status"], ["iteration", "iteration"],
    ["bracket", "bracket"], ["round", "round"], ["epochs", "epochs"],
    ["initial_epoch", "initial epoch"], ["parent_trial_id", "from"], ["score", "score"],
    ["worker_id", "worker"], ["finished_at", "finished"]];
  const state = { rows: [], cursor: null, sort: null, descending: false };
  const select = (name, options) => h("select", { name, onchange: () => reload() },
    h("option", { value: "" }, `any ${name}`), ...options.map((o) => h("option", { value: o }, o)));
  const filters = {
    status: select("status", STATUSES),
    iteration: h("input", { name: "iteration", type: "number", min: 0, placeholder: "iteration",
      onchange: () => reload() }),
    bracket: select("bracket", []),
    round: select("round", []),
  };
  const body = h("tbody");
  const head = h("tr", {}, ...columns.map(([key, label]) => h("th", {
    className: "sortable", dataset: { key },
    onclick: () => {
      state.descending = state.sort === key ? !state.descending : false;
      state.sort = key;
      draw();
    },
  }, label)));
  const more = h("button", { type: "button", id: "more", onclick: () => load(false).catch(showError) },
    "load more");
  const exportAs = (format) => () => exportTrials(format).catch(showError);
  const exportTrials = async (format) => {
    const trials = await allPages(`${base}/trials`, { ...params(), history: format === "json" });
    const name = `${study().name}-trials.${format}`;
    if (format === "json") download(name, JSON.stringify(trials, null, 1) + "\n", "application/json");
    else download(name, toCsv(trials), "text/csv");
  };
  const count = h("span", { className: "muted" });
  const section = h("section", { id: "trials" }, h("h2", {}, "Trials"),
    h("div", { className: "toolbar" }, ...Object.values(filters),
      h("button", { type: "button", id: "export-csv", onclick: exportAs("csv") }, "Export CSV"),
      h("button", { type: "button", id: "export-json", onclick: exportAs("json") }, "Export JSON"),
      count),
    h("table", { id: "trial-table" }, h("thead", {}, head), body), more);

  function params() {
    const out = { history: false };
    for (const [key, input] of Object.entries(filters)) if (input.value !== "") out[key] = input.value;
    return out;
  }

  function compare(a, b) {
    const x = a[state.sort], y = b[state.sort];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    const nx = Number(x), ny = Number(y);
    const order = Number.isNaN(nx) || Number.isNaN(ny) ? String(x).localeCompare(String(y)) : nx - ny;
    return state.descending ? -order : order;
  }

  function draw() {
    const rows = state.sort ? [...state.rows].sort(compare) : state.rows;
    for (const th of head.children) {
      th.classList.toggle("sorted-asc", th.dataset.key === state.sort && !state.descending);
      th.classList.toggle("sorted-desc", th.dataset.key === state.sort && state.descending);
    }
    body.replaceChildren(...rows.map((t) => h("tr", { dataset: { trial: t.id } },
      ...columns.map(([key]) => h("td", { dataset: { key } },
        key === "status" ? badge(t.status) : key === "finished_at" ? ago(t[key]) : fmt(t[key]))))));
    more.hidden = !state.cursor;
    count.textContent = `${state.rows.length} shown${state.cursor ? ", more to load" : ""}`;
  }

  async function load(first) {
    const page = await api(`${base}/trials`, { ...params(), limit: 100,
      cursor: first ? null : state.cursor });
    state.rows = first ? page.items : [...state.rows, ...page.items];
    state.cursor = page.next_cursor;
    draw();
  }

  function reload() { load(true).catch(showError); }

  function fillChoices() {
    const s = study();
    const brackets = new Set(s.progress.brackets.map((b) => b.bracket));
    const rounds = Math.max(0, ...s.progress.brackets.map((b) => b.rounds.length));
    for (const [input, values] of [[filters.bracket, [...brackets].sort((a, b) => a - b)],
      [filters.round, Array.from({ length: rounds }, (_, r) => r)]]) {
      if (input.options.length - 1 === values.length) continue;
      const keep = input.value;
      input.replaceChildren(input.options[0], ...values.map((v) => h("option", { value: v }, v)));
      input.value = keep;
    }
  }

  return {
    section,
    async refresh(first) {
      fillChoices();
      if (first || state.rows.length <= 100) await load(true); // a longer list stays as it is
    },
  };
}

// -- routing, polling, the token ----------------------------------------------------------------

let view = null;
let generation = 0;
let timer = null;

function showError(error) {
  if (error instanceof NeedsToken) return askForToken(error.message);
  live.textContent = `error: ${error.message}`;
  live.classList.add("error");
}

function askForToken(message) {
  clearTimeout(timer);
  main.hidden = true;
  signin.hidden = false;
  document.getElementById("signin-error").textContent = message;
  document.getElementById("token").focus();
}

async function tick(first) {
  const mine = generation;
  if (document.hidden && !first) { // a hidden tab asks nothing
    timer = setTimeout(() => tick(false), POLL_MS);
    return;
  }
  try {
    await view.refresh(first);
    if (mine !== generation) return;
    signin.hidden = true;
    main.hidden = false;
    forget.hidden = !sessionStorage.getItem(TOKEN_KEY);
    live.classList.remove("error");
    live.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (mine !== generation) return;
    showError(error);
    if (error instanceof NeedsToken) return;
  }
  timer = setTimeout(() => tick(false), POLL_MS);
}

function route() {
  clearTimeout(timer);
  generation += 1;
  const match = location.hash.match(/^#\/studies\/([^/]+)$/);
  view = match ? studyView(decodeURIComponent(match[1])) : studiesView();
  tick(true);
}

signin.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  route();
});
forget.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
});
window.addEventListener("hashchange", route);
route();
