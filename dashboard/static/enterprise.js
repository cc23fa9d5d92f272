/* One enterprise: its hazard sources (GB 18218 grade, live risk colour, today's commitment, open
   alarms, overdue feedback) and the ledger browser (tags with limits, equipment, gateways, cameras). */
"use strict";

(function () {
  const REFRESH_MS = 30000;
  const $ = (id) => document.getElementById(id);
  const enterpriseId = HW.config.page.enterprise_id;
  let data = null;
  let view = "tags";

  function field(list, label, value) {
    list.append(HW.el("dt", {}, label), HW.el("dd", {}, value == null || value === "" ? "—" : value));
  }

  function commitmentText(c) {
    if (!c) return HW.t("commitment_missing");
    const ops = Object.entries(c.special_operations || {}).filter((p) => p[1] > 0)
      .map((p) => HW.t("op_" + p[0]) + " " + p[1]);
    const parts = [HW.t("unit_" + c.unit_status), HW.riskLabel(c.risk_level)];
    if (c.startup) parts.push(HW.t("startup"));
    if (c.trial_production) parts.push(HW.t("trial_production"));
    if (ops.length) parts.push(HW.t("special_ops") + ": " + ops.join("、"));
    return parts.join(" · ") + " — " + c.principal + " " + HW.fmtTime(c.filed_at);
  }

  function sourceCard(hs) {
    const card = HW.el("article", { class: "card risk-border-" + hs.risk_level, dataset: { hazardSourceId: hs.id, risk: hs.risk_level } });
    const head = HW.el("header", {});
    head.append(
      HW.el("span", { class: "risk-badge risk-" + hs.risk_level }, HW.riskLabel(hs.risk_level)),
      HW.el("strong", {}, " " + hs.name),
      HW.el("span", { class: "muted" }, " " + hs.code),
    );
    const list = HW.el("dl", { class: "fields" });
    field(list, HW.t("col_grade"), HW.gradeLabel(hs.grade) + " (R = " + HW.fmtNumber(hs.r) + ", S = " + HW.fmtNumber(hs.s) + ")"
      + (hs.grade_terms ? " · R = " + hs.grade_terms : ""));
    field(list, HW.t("col_open_alarms"), hs.open_alarms + (hs.open_p1 ? " (" + HW.t("priority_1") + " " + hs.open_p1 + ")" : ""));
    field(list, HW.t("col_overdue"), hs.overdue_feedback);
    field(list, HW.t("commitment_today"), commitmentText(hs.commitment));
    field(list, HW.t("responsible"), hs.principal + " / " + hs.technical + " / " + hs.operational);
    const links = HW.el("p", { class: "card-links" });
    links.append(HW.el("a", { href: "/history?enterprise=" + encodeURIComponent(data.code) + "&hazard_source=" + encodeURIComponent(hs.code) }, HW.t("nav_history")));
    if (HW.config.user.role === "enterprise") {
      const file = HW.el("button", { type: "button", class: "secondary file-commitment", dataset: { code: hs.code } },
        hs.commitment ? HW.t("commitment_revise") : HW.t("commitment_file"));
      file.addEventListener("click", function () { openCommitment(hs); });
      links.append(" ", file);
    }
    card.append(head, list, links);
    return card;
  }

  const COLUMNS = {
    tags: [
      ["col_tag", (t) => t.code], ["name", (t) => t.name], ["equipment", (t) => equipmentName(t.equipment_id)],
      ["unit_col", (t) => t.unit], ["range_col", (t) => HW.fmtNumber(t.range_low) + " … " + HW.fmtNumber(t.range_high)],
      ["LL", (t) => HW.fmtNumber(t.ll)], ["L", (t) => HW.fmtNumber(t.l)], ["H", (t) => HW.fmtNumber(t.h)], ["HH", (t) => HW.fmtNumber(t.hh)],
      ["latest", (t) => t.latest_at == null ? "—" : HW.fmtNumber(t.latest_value) + " · " + HW.fmtTime(t.latest_at)],
      ["in_service", (t) => t.in_service ? HW.t("yes") : HW.t("no") + (t.oos_reason ? " (" + t.oos_reason + ")" : "")],
      ["col_open_alarms", (t) => t.open_alarms],
    ],
    equipment: [
      ["code", (q) => q.code], ["name", (q) => q.name], ["kind_col", (q) => q.kind], ["col_hazard_source", (q) => sourceName(q.hazard_source_id)],
    ],
    gateways: [
      ["code", (g) => g.code], ["name", (g) => g.name], ["status", (g) => HW.t("gw_" + g.status)],
      ["last_seen", (g) => HW.fmtTime(g.last_seen_at) || "—"],
    ],
    cameras: [
      ["code", (c) => c.code], ["name", (c) => c.name], ["col_hazard_source", (c) => sourceName(c.hazard_source_id)],
      ["status", (c) => c.status == null ? "—" : HW.t("gw_" + c.status)],
    ],
  };

  let committing = null;

  function openCommitment(hs) {
    committing = hs;
    $("commitment-title").textContent = HW.t("commitment_file_title") + " · " + hs.name;
    const c = hs.commitment;
    $("c-unit-status").value = c ? c.unit_status : "running";
    for (const input of document.querySelectorAll("#commitment-form [data-op]")) {
      input.value = String((c && c.special_operations && c.special_operations[input.dataset.op]) || 0);
    }
    $("c-startup").checked = !!(c && c.startup);
    $("c-trial").checked = !!(c && c.trial_production);
    $("c-hidden").value = String(c ? c.major_hidden_dangers : 0);
    $("c-risk").value = String(c ? c.risk_level : 4);
    if (c) $("c-text").value = c.commitment;
    $("c-principal").value = c ? c.principal : hs.principal;
    $("commitment-error").hidden = true;
    $("commitment-form").hidden = false;
    $("commitment-form").scrollIntoView({ block: "nearest" });
  }

  async function fileCommitment(event) {
    event.preventDefault();
    if (!committing) return;
    const ops = {};
    for (const input of document.querySelectorAll("#commitment-form [data-op]")) {
      const n = Number(input.value || 0);
      if (n > 0) ops[input.dataset.op] = n;
    }
    const body = {
      hazard_source: committing.code,
      unit_status: $("c-unit-status").value,
      special_operations: ops,
      startup: $("c-startup").checked,
      trial_production: $("c-trial").checked,
      major_hidden_dangers: Number($("c-hidden").value || 0),
      risk_level: Number($("c-risk").value),
      commitment: $("c-text").value.trim(),
      principal: $("c-principal").value.trim() || null,
    };
    $("commitment-submit").disabled = true;
    try {
      await HW.api("POST", "/api/v1/commitments", body);
      $("commitment-form").hidden = true;
      committing = null;
      await load();
    } catch (err) {
      $("commitment-error").textContent = err.message || String(err);
      $("commitment-error").hidden = false;
    } finally {
      $("commitment-submit").disabled = false;
    }
  }

  function equipmentName(id) {
    const q = data.equipment.find((x) => x.id === id);
    return q ? q.name + " (" + q.code + ")" : "—";
  }

  function sourceName(id) {
    const hs = data.hazard_sources.find((x) => x.id === id);
    return hs ? hs.name : "—";
  }

  function renderLedger() {
    const columns = COLUMNS[view];
    const head = HW.el("tr", {});
    for (const [key] of columns) head.append(HW.el("th", {}, HW.t(key)));
    $("ledger-head").replaceChildren(head);
    const rows = data[view] || [];
    const body = $("ledger-rows");
    body.replaceChildren();
    for (const item of rows) {
      const tr = HW.el("tr", { dataset: { id: item.id } });
      if (view === "tags" && !item.in_service) tr.classList.add("muted");
      for (const [, value] of columns) tr.append(HW.el("td", {}, value(item)));
      body.append(tr);
    }
    if (!rows.length) {
      const tr = HW.el("tr", {});
      tr.append(HW.el("td", { colspan: String(columns.length), class: "muted" }, HW.t("ledger_empty")));
      body.append(tr);
    }
    $("ledger-table").dataset.view = view;
  }

  function render() {
    document.title = data.name + " · " + HW.t("app_name");
    $("enterprise-name").textContent = data.name;
    const badge = $("enterprise-risk");
    badge.className = "risk-badge risk-" + data.risk_level;
    badge.textContent = HW.riskLabel(data.risk_level);
    const list = $("enterprise-fields");
    list.replaceChildren();
    field(list, HW.t("code"), data.code);
    field(list, HW.t("credit_code"), data.credit_code);
    field(list, HW.t("col_division"), data.division);
    field(list, HW.t("address"), data.address);
    field(list, HW.t("col_online"), HW.fmtPercent(data.online_rate));
    field(list, HW.t("col_open_alarms"), data.open_alarms);
    field(list, HW.t("col_overdue"), data.overdue_feedback);
    $("source-cards").replaceChildren(...data.hazard_sources.map(sourceCard));
    renderLedger();
  }

  async function load() {
    try {
      const answer = await HW.api("GET", "/api/v1/enterprises/" + enterpriseId);
      data = answer.enterprise;
      render();
    } catch (err) {
      $("enterprise-message").textContent = err.status === 404 ? HW.t("enterprise_not_found") : err.message;
      $("enterprise-message").hidden = false;
    } finally {
      document.body.dataset.loaded = "1";
    }
  }

  for (const b of document.querySelectorAll("[data-ledger]")) {
    b.addEventListener("click", function () {
      view = b.dataset.ledger;
      for (const other of document.querySelectorAll("[data-ledger]")) {
        other.classList.toggle("current", other === b);
        other.setAttribute("aria-selected", other === b ? "true" : "false");
      }
      if (data) renderLedger();
    });
  }
  $("commitment-form").addEventListener("submit", fileCommitment);
  $("commitment-cancel").addEventListener("click", function () { $("commitment-form").hidden = true; committing = null; });
  load();
  setInterval(load, REFRESH_MS);
})();
