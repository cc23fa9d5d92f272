/* The region map: enterprises at their coordinates on a longitude/latitude grid, coloured by
   risk (红/橙/黄/蓝). Inline SVG drawn here: no map tiles, nothing from the internet. */
"use strict";

(function () {
  const REFRESH_MS = 30000;
  const W = 960;
  const H = 600;
  const PAD = 48;
  const $ = (id) => document.getElementById(id);

  function niceStep(span) {
    for (const step of [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10]) if (span / step <= 8) return step;
    return 20;
  }

  function bounds(points) {
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const p of points) {
      x0 = Math.min(x0, p.lon); x1 = Math.max(x1, p.lon);
      y0 = Math.min(y0, p.lat); y1 = Math.max(y1, p.lat);
    }
    const pad = Math.max(0.05, (x1 - x0) * 0.15, (y1 - y0) * 0.15);
    // names are written to the right of their dot: leave them room on the east side
    return [x0 - pad, x1 + pad + Math.max(0.2, (x1 - x0) * 0.35), y0 - pad, y1 + pad];
  }

  function draw(list) {
    const svg = $("region-map");
    svg.replaceChildren();
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    const placed = list.filter((e) => e.lon != null && e.lat != null);
    const missing = list.filter((e) => e.lon == null || e.lat == null);
    svg.append(HW.svg("rect", { x: 0, y: 0, width: W, height: H, class: "map-bg" }));
    if (!placed.length) {
      svg.append(HW.svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "map-empty" }, HW.t("map_empty")));
    } else {
      let [x0, x1, y0, y1] = bounds(placed);
      // equirectangular, squeezed by cos(latitude) so distances look right at this latitude
      const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180);
      const scale = Math.min((W - 2 * PAD) / ((x1 - x0) * k), (H - 2 * PAD) / (y1 - y0));
      const cx = (x0 + x1) / 2;
      const cy = (y0 + y1) / 2;
      const sx = (lon) => W / 2 + (lon - cx) * k * scale;
      const sy = (lat) => H / 2 - (lat - cy) * scale;
      x0 = cx - (W / 2) / (k * scale); x1 = cx + (W / 2) / (k * scale);
      y0 = cy - (H / 2) / scale; y1 = cy + (H / 2) / scale;
      const step = niceStep(Math.max(x1 - x0, y1 - y0));
      const grid = HW.svg("g", { class: "map-grid" });
      for (let lon = Math.ceil(x0 / step) * step; lon <= x1; lon += step) {
        grid.append(HW.svg("line", { x1: sx(lon), y1: 0, x2: sx(lon), y2: H }));
        grid.append(HW.svg("text", { x: sx(lon) + 3, y: H - 6 }, lon.toFixed(2) + "°E"));
      }
      for (let lat = Math.ceil(y0 / step) * step; lat <= y1; lat += step) {
        grid.append(HW.svg("line", { x1: 0, y1: sy(lat), x2: W, y2: sy(lat) }));
        grid.append(HW.svg("text", { x: 4, y: sy(lat) - 3 }, lat.toFixed(2) + "°N"));
      }
      svg.append(grid);
      // the enterprises, gravest drawn last (on top)
      placed.sort((a, b) => (b.risk_level || 4) - (a.risk_level || 4));
      for (const e of placed) {
        const link = HW.svg("a", { href: "/enterprises/" + e.id, class: "map-site", dataset: { enterpriseId: e.id, risk: e.risk_level } });
        const r = 9 + Math.min(10, e.open_alarms || 0);
        const title = HW.svg("title", {}, e.name + " · " + HW.riskLabel(e.risk_level) + " · " + HW.t("col_open_alarms") + " " + e.open_alarms);
        link.append(
          title,
          HW.svg("circle", { cx: sx(e.lon), cy: sy(e.lat), r: r, class: "risk-fill-" + (e.risk_level || 4) + (e.open_p1 ? " pulse" : "") }),
          HW.svg("text", { x: sx(e.lon) + r + 4, y: sy(e.lat) + 4, class: "map-label" }, e.name),
        );
        svg.append(link);
      }
    }
    const info = $("map-info");
    info.textContent = missing.length ? HW.t("map_missing", { names: missing.map((e) => e.name).join("、") }) : "";
    svg.dataset.sites = String(placed.length);
  }

  async function load() {
    try {
      const data = await HW.api("GET", "/api/v1/enterprises");
      draw(data.enterprises);
      $("map-message").hidden = data.enterprises.length > 0;
      $("map-message").textContent = HW.t("no_enterprises");
    } catch (err) {
      $("map-message").textContent = err.message;
      $("map-message").hidden = false;
    } finally {
      document.body.dataset.loaded = "1";
    }
  }

  load();
  setInterval(load, REFRESH_MS);
})();
