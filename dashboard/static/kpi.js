/* The ISA-18.2 KPIs of the user's region (or one enterprise) from GET /api/v1/kpi: figures,
   the priority split against its target, response times, bad actors, and the trend per day
   or week (one request per bucket), all drawn as inline SVG. */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const DAY_MS = 86400000;
  const MAX_ENTERPRISES = 12;
  let enterprises = [];

  function message(text) {
    $("kpi-message").textContent = text;
    $("kpi-message").hidden = !text;
  }

  function query(from, to, code) {
    const params = new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString() });
    const division = $("kpi-division").value.trim();
    if (code) params.set("enterprise", code);
    else if (/^[0-9]{1,6}$/.test(division)) params.set("division", division);
    return "/api/v1/kpi?" + params.toString();
  }

  async function fetchKpi(from, to, code) {
    const data = await HW.api("GET", query(from, to, code));
    return data.kpi || data.kpis || data;
  }

  function tile(label, value, bad, key) {
    const box = HW.el("div", { class: "tile" + (bad ? " bad" : ""), dataset: { kpi: key } });
    box.append(HW.el("div", { class: "tile-value" }, value), HW.el("div", { class: "tile-label" }, label));
    return box;
  }

  function pct(v) {
    return v == null ? "—" : HW.fmtNumber(v) + " %";
  }

  function tiles(k) {
    const online = k.online ? k.online.rate : null;
    const list = [
      tile(HW.t("kpi_alarms"), k.alarms, false, "alarms"),
      tile(HW.t("kpi_per_10min"), HW.fmtNumber(k.per_10min_avg), k.per_10min_avg > 1, "per_10min_avg"),
      tile(HW.t("kpi_peak_10min"), k.per_10min_peak, k.per_10min_peak > 10, "per_10min_peak"),
      tile(HW.t("kpi_per_day"), HW.fmtNumber(k.per_day_avg), false, "per_day_avg"),
      tile(HW.t("kpi_flood_pct"), pct(k.flood_time_pct), k.flood_time_pct > 1, "flood_time_pct"),
      tile(HW.t("kpi_floods"), (k.floods || []).length, (k.floods || []).length > 0, "floods"),
      tile(HW.t("kpi_top10_share"), pct(k.bad_actor_share_pct), k.bad_actor_share_pct > 5, "bad_actor_share_pct"),
      tile(HW.t("kpi_chattering"), (k.chattering || []).length, (k.chattering || []).length > 0, "chattering"),
      tile(HW.t("kpi_fleeting"), k.fleeting, false, "fleeting"),
      tile(HW.t("kpi_stale"), (k.stale || []).length, (k.stale || []).length > 0, "stale"),
      tile(HW.t("kpi_online"), HW.fmtPercent(online), online != null && online < 0.95, "online"),
    ];
    $("kpi-tiles").replaceChildren(...list);
  }

  function distributionBars(title, d, key) {
    const items = [
      { label: "p50", value: d.p50 }, { label: "p90", value: d.p90 }, { label: "max", value: d.max },
    ];
    return HWCharts.bars(title, items, { dataset: { chart: key }, note: HW.t("kpi_pending", { n: d.pending || 0 }) });
  }

  function summaryCharts(k) {
    const pctOf = k.priority_pct || {};
    const targets = { 1: 5, 2: 15, 3: 80 };
    const priority = [1, 2, 3].map((p) => ({
      label: HW.t("priority_" + p), value: pctOf[String(p)] || 0, cls: "p" + p, target: targets[p],
    }));
    // as the board names them: the subject's code and the condition in the page's language
    const bad = (k.bad_actors || []).map((b) => ({
      label: b.subject_code + " " + HW.conditionLabel({ condition_code: b.condition }) + " · " + b.enterprise_code,
      value: b.alarms,
    }));
    return [
      HWCharts.bars(HW.t("kpi_priority"), priority, { format: (v) => HW.fmtNumber(v) + "%", note: HW.t("kpi_priority_target"), dataset: { chart: "priority" } }),
      distributionBars(HW.t("kpi_tta"), k.time_to_ack || {}, "tta"),
      distributionBars(HW.t("kpi_ttf"), k.time_to_feedback || {}, "ttf"),
      HWCharts.hbars(HW.t("kpi_bad_actors"), bad, { dataset: { chart: "bad_actors" } }),
    ];
  }

  async function trend(days, code) {
    const end = Date.now();
    const weekly = days > 14;
    const step = weekly ? 7 * DAY_MS : DAY_MS;
    const count = Math.max(1, Math.round((days * DAY_MS) / step));
    const buckets = [];
    for (let i = count - 1; i >= 0; i--) buckets.push([end - (i + 1) * step, end - i * step]);
    const results = await Promise.all(buckets.map((b) => fetchKpi(b[0], b[1], code)));
    const points = results.map((k, i) => ({ label: HW.fmtTime(buckets[i][1]).slice(5, 10), value: k.alarms }));
    return HWCharts.line(HW.t(weekly ? "kpi_weekly" : "kpi_daily"), points, {
      dataset: { chart: "trend" }, target: weekly ? 7 * 144 : 144, note: HW.t("kpi_target_rate"),
    });
  }

  async function perEnterprise(from, to) {
    const division = $("kpi-division").value.trim();
    const chosen = enterprises.filter((e) => e.division.startsWith(division)).slice(0, MAX_ENTERPRISES);
    if (chosen.length < 2) return [];
    const results = await Promise.all(chosen.map((e) => fetchKpi(from, to, e.code)));
    // an enterprise that acknowledged nothing has no p90: "—", not 0 s
    const tta = chosen.map((e, i) => ({ label: e.name, value: (results[i].time_to_ack || {}).p90 ?? null }));
    const count = chosen.map((e, i) => ({ label: e.name, value: results[i].alarms || 0 }));
    return [
      HWCharts.hbars(HW.t("kpi_alarms") + " · " + HW.t("col_enterprise"), count, { dataset: { chart: "per_enterprise" } }),
      HWCharts.hbars(HW.t("kpi_tta") + " p90 · " + HW.t("col_enterprise"), tta, { dataset: { chart: "tta_enterprise" } }),
    ];
  }

  let generation = 0; // a newer load makes an older one's answers moot

  async function load() {
    const mine = ++generation;
    const days = Number($("kpi-days").value);
    const code = $("kpi-enterprise").value;
    const to = Date.now();
    const from = to - days * DAY_MS;
    document.body.dataset.loaded = "0";
    try {
      const k = await fetchKpi(from, to, code);
      const charts = summaryCharts(k);
      charts.push(await trend(days, code));
      if (!code) charts.push(...(await perEnterprise(from, to)));
      if (mine !== generation) return;
      message("");
      tiles(k);
      $("kpi-charts").replaceChildren(...charts);
    } catch (err) {
      if (mine !== generation) return;
      $("kpi-tiles").replaceChildren();
      $("kpi-charts").replaceChildren();
      message(err.status === 404 || err.status === 405 ? HW.t("kpi_unavailable") : err.message);
    } finally {
      if (mine === generation) document.body.dataset.loaded = "1";
    }
  }

  async function init() {
    try {
      const data = await HW.api("GET", "/api/v1/enterprises");
      enterprises = data.enterprises;
      for (const e of enterprises) $("kpi-enterprise").append(HW.el("option", { value: e.code }, e.name));
    } catch (err) {
      /* the region as a whole only */
    }
    await load();
  }

  $("kpi-days").addEventListener("change", load);
  $("kpi-enterprise").addEventListener("change", load);
  $("kpi-division").addEventListener("change", load);
  init();
})();
