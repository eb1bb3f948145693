// Rung's charts: small SVG drawings with no library. Each function takes a container
// element and the data, empties the container and draws into it; styling is in style.css
// (presentation attributes only: the page's Content-Security-Policy allows no inline style).
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7",
    "#a463f2", "#97bbf5", "#9c6b4e", "#9498a0"];

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function frame(container, width, height, className) {
    container.replaceChildren();
    return svg("svg", { viewBox: `0 0 ${width} ${height}`, class: `chart ${className}`,
      role: "img" }, container);
  }

  function empty(container, message) {
    container.replaceChildren();
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = message;
    container.appendChild(p);
  }

  // A linear scale from the domain [lo, hi] to the range [a, b], padded when flat.
  function scale(lo, hi, a, b) {
    if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
    const f = (v) => a + ((v - lo) / (hi - lo)) * (b - a);
    f.domain = [lo, hi];
    return f;
  }

  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return lo <= hi ? [lo, hi] : [0, 1];
  }

  function ticks(lo, hi, count) {
    const step0 = (hi - lo) / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(step0 || 1)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= step0) || step0;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }

  function format(v) {
    if (typeof v !== "number") return String(v);
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }

  // A colour from a value in [0, 1]: dark blue (good) to yellow (bad).
  function ramp(t) {
    const x = Math.min(1, Math.max(0, t));
    return `hsl(${Math.round(230 - 180 * x)}, 70%, ${Math.round(35 + 25 * x)}%)`;
  }

  function axes(root, x, y, box, labels) {
    const g = svg("g", { class: "axes" }, root);
    svg("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }, g);
    svg("line", { x1: box.left, x2: box.left, y1: box.top, y2: box.bottom }, g);
    for (const t of x.domain ? ticks(...x.domain, 5) : []) {  // none for a categorical x
      svg("line", { class: "tick", x1: x(t), x2: x(t), y1: box.bottom, y2: box.bottom + 4 }, g);
      svg("text", { x: x(t), y: box.bottom + 16, "text-anchor": "middle" }, g).textContent =
        format(t);
    }
    for (const t of ticks(...y.domain, 4)) {
      svg("line", { class: "grid", x1: box.left, x2: box.right, y1: y(t), y2: y(t) }, g);
      svg("text", { x: box.left - 6, y: y(t) + 4, "text-anchor": "end" }, g).textContent =
        format(t);
    }
    svg("text", { class: "label", x: (box.left + box.right) / 2, y: box.bottom + 32,
      "text-anchor": "middle" }, g).textContent = labels.x;
    svg("text", { class: "label", x: 12, y: (box.top + box.bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${(box.top + box.bottom) / 2})` }, g).textContent = labels.y;
  }

  // Lines: series = [{label, color, points: [[x, y], ...], joinFrom: [x, y] | null}].
  // `step`: draw steps (a best-so-far curve). `joinFrom` starts a series at a point of
  // another (a promoted trial continues its parent's curve).
  function lines(container, { series, xLabel, yLabel, step = false, width = 560, height = 260,
    onClick = null }) {
    const drawn = series.filter((s) => s.points.length);
    if (!drawn.length) return empty(container, "nothing to draw yet");
    const root = frame(container, width, height, "lines");
    const box = { left: 56, right: width - 12, top: 10, bottom: height - 40 };
    const all = drawn.flatMap((s) => (s.joinFrom ? [s.joinFrom, ...s.points] : s.points));
    const x = scale(...extent(all.map((p) => p[0])), box.left, box.right);
    const y = scale(...extent(all.map((p) => p[1])), box.bottom, box.top);
    axes(root, x, y, box, { x: xLabel, y: yLabel });
    for (const s of drawn) {
      const points = s.joinFrom ? [s.joinFrom, ...s.points] : s.points;
      let d = "";
      points.forEach(([px, py], i) => {
        if (i === 0) d += `M${x(px)},${y(py)}`;
        else if (step) d += `H${x(px)}V${y(py)}`;
        else d += `L${x(px)},${y(py)}`;
      });
      const path = svg("path", { class: "series", d, stroke: s.color || PALETTE[0],
        "data-series": s.label }, root);
      svg("title", {}, path).textContent = s.label;
      if (onClick) path.addEventListener("click", () => onClick(s));
      for (const [px, py] of s.points) {
        svg("circle", { class: "dot", cx: x(px), cy: y(py), r: 2.5,
          fill: s.color || PALETTE[0] }, root);
      }
    }
    return root;
  }

  // Points: [{x, y, color, title}]; `categories` (a list) places x on a band per value.
  function scatter(container, { points, xLabel, yLabel, categories = null, width = 260,
    height = 200 }) {
    if (!points.length) return empty(container, "no completed trials yet");
    const root = frame(container, width, height, "scatter");
    const box = { left: 50, right: width - 8, top: 8, bottom: height - 40 };
    const y = scale(...extent(points.map((p) => p.y)), box.bottom, box.top);
    let x;
    if (categories) {
      const band = (box.right - box.left) / categories.length;
      x = (v) => box.left + band * (categories.indexOf(String(v)) + 0.5);
      x.domain = null;
      axes(root, x, y, box, { x: xLabel, y: yLabel });
      categories.forEach((c, i) => {
        svg("text", { x: box.left + band * (i + 0.5), y: box.bottom + 16,
          "text-anchor": "middle" }, root).textContent = c;
      });
    } else {
      x = scale(...extent(points.map((p) => p.x)), box.left, box.right);
      axes(root, x, y, box, { x: xLabel, y: yLabel });
    }
    for (const p of points) {
      const c = svg("circle", { class: "point", cx: x(p.x), cy: y(p.y), r: 3,
        fill: p.color || PALETTE[0] }, root);
      if (p.title) svg("title", {}, c).textContent = p.title;
    }
    return root;
  }

  // Parallel coordinates: axes = [{name, value: (row) => number|string, categories?}],
  // rows = [{color, title, ...}]. A categorical axis spreads its values evenly.
  function parallel(container, { axes: columns, rows, width = 900, height = 280 }) {
    if (!rows.length) return empty(container, "no completed trials yet");
    const root = frame(container, width, height, "parallel");
    const box = { left: 40, right: width - 40, top: 24, bottom: height - 20 };
    const gap = columns.length > 1 ? (box.right - box.left) / (columns.length - 1) : 0;
    const scales = columns.map((col) => {
      if (col.categories) {
        const n = col.categories.length;
        return (v) => box.bottom - ((col.categories.indexOf(String(v)) + 0.5) / n) *
          (box.bottom - box.top);
      }
      const [lo, hi] = extent(rows.map(col.value));
      const s = scale(lo, hi, box.bottom, box.top);
      s.lo = lo; s.hi = hi;
      return s;
    });
    const g = svg("g", { class: "lines" }, root);
    for (const row of rows) {
      const d = columns.map((col, i) => {
        const v = col.value(row);
        const yv = v === undefined || v === null ? box.bottom : scales[i](v);
        return `${i ? "L" : "M"}${box.left + gap * i},${yv}`;
      }).join("");
      const path = svg("path", { class: "line", d, stroke: row.color }, g);
      if (row.title) svg("title", {}, path).textContent = row.title;
    }
    columns.forEach((col, i) => {
      const ax = svg("g", { class: "axes" }, root);
      const xPos = box.left + gap * i;
      svg("line", { x1: xPos, x2: xPos, y1: box.top, y2: box.bottom }, ax);
      svg("text", { class: "label", x: xPos, y: box.top - 10, "text-anchor": "middle" }, ax)
        .textContent = col.name;
      const marks = col.categories
        ? col.categories.map((c) => [scales[i](c), c])
        : [[box.bottom, format(scales[i].lo)], [box.top, format(scales[i].hi)]];
      for (const [yv, text] of marks) {
        svg("text", { x: xPos + 4, y: yv + 4 }, ax).textContent = text;
      }
    });
    return root;
  }

  // The promotions of one bracket: a column per round, a node per trial (best at the top),
  // a link from each promoted trial to its continuation. nodes = [{id, round, rank, title,
  // status}], links = [{from, to}].
  function ladder(container, { rounds, nodes, links, onClick, width = 900 }) {
    if (!nodes.length) return empty(container, "no trials in this bracket yet");
    const perColumn = Math.max(1, ...rounds.map((r) => nodes.filter((n) => n.round === r).length));
    const rowHeight = 22, top = 30;
    const height = top + rowHeight * perColumn + 10;
    const root = frame(container, width, height, "ladder-graph");
    const gap = (width - 120) / Math.max(1, rounds.length - 1 || 1);
    const place = new Map();
    rounds.forEach((r, i) => {
      const x = 60 + gap * i;
      svg("text", { class: "label", x, y: 14, "text-anchor": "middle" }, root).textContent =
        `round ${r}`;
      nodes.filter((n) => n.round === r).forEach((n) => {
        place.set(n.id, [x, top + rowHeight * n.rank + rowHeight / 2]);
      });
    });
    const g = svg("g", { class: "links" }, root);
    for (const link of links) {
      const a = place.get(link.from), b = place.get(link.to);
      if (!a || !b) continue;
      svg("path", { class: "promotion", d: `M${a[0] + 18},${a[1]}L${b[0] - 18},${b[1]}`,
        "data-from": link.from, "data-to": link.to }, g);
    }
    for (const n of nodes) {
      const [x, y] = place.get(n.id);
      const node = svg("g", { class: `node ${n.status}`, "data-trial": n.id, tabindex: 0 }, root);
      svg("rect", { x: x - 18, y: y - 9, width: 36, height: 18, rx: 4 }, node);
      svg("text", { x, y: y + 4, "text-anchor": "middle" }, node).textContent = n.id;
      svg("title", {}, node).textContent = n.title;
      node.addEventListener("click", () => onClick(n.id));
    }
    return root;
  }

  return { PALETTE, ramp, format, lines, scatter, parallel, ladder };
})();
