/* Small SVG charts drawn here (no library): vertical bars, horizontal bars and a line. */
"use strict";

window.HWCharts = (function () {
  const W = 440;
  const H = 220;
  const PAD = { left: 48, right: 12, top: 12, bottom: 40 };

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= value) return m * power;
    return 10 * power;
  }

  function frame(title, dataset) {
    const box = HW.el("figure", { class: "chart", dataset: dataset || {} });
    box.append(HW.el("h3", {}, title));
    const svg = HW.svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
    box.append(svg);
    return { box, svg };
  }

  function yAxis(svg, top, fmt) {
    const h = H - PAD.top - PAD.bottom;
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      const y = PAD.top + h - (h * i) / 4;
      svg.append(HW.svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "gridline" }));
      svg.append(HW.svg("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, fmt(v)));
    }
    svg.append(HW.svg("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: PAD.top + h, class: "axis" }));
  }

  /** items: [{label, value, cls, target}] — bars with an optional dashed target per bar. */
  function bars(title, items, options) {
    const opts = options || {};
    const fmt = opts.format || HW.fmtNumber;
    const { box, svg } = frame(title, opts.dataset);
    const top = niceMax(Math.max.apply(null, items.map((i) => Math.max(i.value || 0, i.target || 0)).concat([0])));
    yAxis(svg, top, fmt);
    const w = W - PAD.left - PAD.right;
    const h = H - PAD.top - PAD.bottom;
    const slot = w / Math.max(1, items.length);
    items.forEach(function (item, i) {
      const x = PAD.left + i * slot + slot * 0.15;
      const bh = (h * (item.value || 0)) / top;
      const shown = item.value == null ? "—" : fmt(item.value);  // no data is no bar, not a zero
      const bar = HW.svg("rect", { x: x, y: PAD.top + h - bh, width: slot * 0.7, height: Math.max(0, bh), class: "bar " + (item.cls || "") });
      bar.append(HW.svg("title", {}, item.label + ": " + shown));
      svg.append(bar);
      svg.append(HW.svg("text", { x: x + slot * 0.35, y: PAD.top + h - bh - 4, "text-anchor": "middle", class: item.value == null ? "no-value" : "" }, shown));
      if (item.target != null) {
        const ty = PAD.top + h - (h * item.target) / top;
        svg.append(HW.svg("line", { x1: x - 4, x2: x + slot * 0.7 + 4, y1: ty, y2: ty, class: "target" }));
      }
      svg.append(HW.svg("text", { x: x + slot * 0.35, y: H - PAD.bottom + 16, "text-anchor": "middle" }, item.label));
    });
    if (opts.note) box.append(HW.el("figcaption", { class: "muted small-text" }, opts.note));
    return box;
  }

  /** items: [{label, value}] — one horizontal bar per item, longest first. */
  function hbars(title, items, options) {
    const opts = options || {};
    const fmt = opts.format || HW.fmtNumber;
    const rowH = 20;
    const height = Math.max(60, PAD.top + items.length * rowH + 10);
    const box = HW.el("figure", { class: "chart", dataset: opts.dataset || {} });
    box.append(HW.el("h3", {}, title));
    const svg = HW.svg("svg", { viewBox: "0 0 " + W + " " + height, role: "img", "aria-label": title });
    box.append(svg);
    const left = 200;
    const top = niceMax(Math.max.apply(null, items.map((i) => i.value).concat([0])));
    items.forEach(function (item, i) {
      const y = PAD.top + i * rowH;
      const bw = ((W - left - 50) * (item.value || 0)) / top;
      svg.append(HW.svg("text", { x: left - 6, y: y + 13, "text-anchor": "end" }, item.label.length > 30 ? item.label.slice(0, 29) + "…" : item.label));
      if (item.value != null) svg.append(HW.svg("rect", { x: left, y: y + 3, width: Math.max(1, bw), height: rowH - 6, class: "bar" }));
      svg.append(HW.svg("text", { x: left + bw + 4, y: y + 13, class: item.value == null ? "no-value" : "" }, item.value == null ? "—" : fmt(item.value)));
    });
    if (!items.length) svg.append(HW.svg("text", { x: W / 2, y: 36, "text-anchor": "middle" }, HW.t("no_data")));
    return box;
  }

  /** points: [{label, value}] in time order — a line with dots, and an optional target line. */
  function line(title, points, options) {
    const opts = options || {};
    const fmt = opts.format || HW.fmtNumber;
    const { box, svg } = frame(title, opts.dataset);
    const top = niceMax(Math.max.apply(null, points.map((p) => p.value).concat([opts.target || 0, 0])));
    yAxis(svg, top, fmt);
    const w = W - PAD.left - PAD.right;
    const h = H - PAD.top - PAD.bottom;
    const sx = (i) => PAD.left + (points.length > 1 ? (w * i) / (points.length - 1) : w / 2);
    const sy = (v) => PAD.top + h - (h * v) / top;
    if (opts.target != null) {
      svg.append(HW.svg("line", { x1: PAD.left, x2: W - PAD.right, y1: sy(opts.target), y2: sy(opts.target), class: "target" }));
    }
    svg.append(HW.svg("polyline", { points: points.map((p, i) => sx(i) + "," + sy(p.value)).join(" "), class: "line" }));
    const every = Math.max(1, Math.ceil(points.length / 8));
    points.forEach(function (p, i) {
      const dot = HW.svg("circle", { cx: sx(i), cy: sy(p.value), r: 3, class: "bar" });
      dot.append(HW.svg("title", {}, p.label + ": " + fmt(p.value)));
      svg.append(dot);
      if (i % every === 0) svg.append(HW.svg("text", { x: sx(i), y: H - PAD.bottom + 16, "text-anchor": "middle" }, p.label));
    });
    if (opts.note) box.append(HW.el("figcaption", { class: "muted small-text" }, opts.note));
    return box;
  }

  return { bars, hbars, line };
})();
