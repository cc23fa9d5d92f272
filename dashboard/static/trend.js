/* A trend chart on <canvas>: the value line with its LL/L/H/HH limit lines. No library. */
"use strict";

window.HWTrend = (function () {
  const LIMITS = [
    ["hh", "HH", "#c62828"], ["h", "H", "#ef6c00"], ["l", "L", "#ef6c00"], ["ll", "LL", "#c62828"],
  ];
  const PAD = { left: 56, right: 40, top: 14, bottom: 28 };

  /** A round step (1, 2 or 5 × 10^k) giving about `count` intervals over `span`. */
  function niceStep(span, count) {
    const raw = span / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const unit = raw / power;
    return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
  }

  function yRange(data) {
    const values = [];
    for (const p of data.points) if (p[1] != null) values.push(p[1]);
    for (const [key] of LIMITS) if (data.limits[key] != null) values.push(data.limits[key]);
    if (!values.length) return [data.range[0], data.range[1]];
    let lo = Math.min.apply(null, values);
    let hi = Math.max.apply(null, values);
    if (hi === lo) { hi += 1; lo -= 1; }
    const pad = (hi - lo) * 0.08;
    const step = niceStep(hi - lo + 2 * pad, 4);
    return [Math.floor((lo - pad) / step) * step, Math.ceil((hi + pad) / step) * step];
  }

  function draw(canvas, data) {
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = canvas.clientWidth || canvas.width;
    const cssHeight = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(cssWidth * ratio);
    canvas.height = Math.round(cssHeight * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, cssWidth, cssHeight);

    const x0 = Date.parse(data.from);
    const x1 = Date.parse(data.to);
    const [y0, y1] = yRange(data);
    const w = cssWidth - PAD.left - PAD.right;
    const h = cssHeight - PAD.top - PAD.bottom;
    const sx = (ms) => PAD.left + ((ms - x0) / (x1 - x0)) * w;
    const sy = (v) => PAD.top + (1 - (v - y0) / (y1 - y0)) * h;

    // frame, grid and axis labels
    ctx.strokeStyle = "#cfd8dc";
    ctx.lineWidth = 1;
    ctx.strokeRect(PAD.left, PAD.top, w, h);
    ctx.fillStyle = "#455a64";
    ctx.font = "11px sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    // grid lines at the multiples of a round step inside the axis, each labelled with its own value
    const step = niceStep(y1 - y0, 4);
    const ticks = [];  // [value, y] of each labelled grid line (read by the browser tests)
    for (let k = Math.ceil(y0 / step - 1e-9); k * step <= y1 + step * 1e-9; k++) {
      const v = Number((k * step).toPrecision(12));
      const y = sy(v);
      ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(PAD.left + w, y); ctx.stroke();
      ctx.fillText(HW.fmtNumber(v), PAD.left - 6, y);
      ticks.push([v, Math.round(y * 10) / 10]);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let i = 0; i <= 6; i++) {
      const ms = x0 + ((x1 - x0) * i) / 6;
      ctx.fillText(HW.fmtClock(ms), sx(ms), PAD.top + h + 6);
    }

    // limit lines
    ctx.setLineDash([6, 4]);
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    const limitLines = [];
    let lastLabelY = -Infinity;  // HH, H, L, LL come top down: a label too close moves below the last
    for (const [key, label, colour] of LIMITS) {
      const v = data.limits[key];
      if (v == null || v < y0 || v > y1) continue;
      const y = sy(v);
      limitLines.push([label, v, Math.round(y * 10) / 10]);
      ctx.strokeStyle = colour;
      ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(PAD.left + w, y); ctx.stroke();
      ctx.fillStyle = colour;
      const labelY = Math.max(y, lastLabelY + 11);
      ctx.fillText(label, PAD.left + w + 4, labelY);
      lastLabelY = labelY;
    }
    ctx.setLineDash([]);

    // the value line (broken where a reading has no value), bad quality in grey
    ctx.strokeStyle = "#1565c0";
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let pen = false;
    for (const [ms, value] of data.points) {
      if (value == null) { pen = false; continue; }
      const x = sx(ms);
      const y = sy(value);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    }
    ctx.stroke();
    ctx.fillStyle = "#90a4ae";
    for (const [ms, value, quality] of data.points) {
      if (quality > 1) ctx.fillRect(sx(ms) - 1.5, PAD.top + h - 4, 3, 4);
    }
    if (!data.points.length) {
      ctx.fillStyle = "#78909c";
      ctx.textAlign = "center";
      ctx.font = "13px sans-serif";
      ctx.fillText(HW.t("no_data"), PAD.left + w / 2, PAD.top + h / 2);
    }
    canvas.dataset.points = String(data.points.length);
    canvas.dataset.ticks = JSON.stringify(ticks);
    canvas.dataset.limits = JSON.stringify(limitLines);
    canvas.dataset.drawn = String(Date.now());
  }

  return { draw };
})();
