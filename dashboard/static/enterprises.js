/* Enterprises in the user's scope: risk colour, grade, open alarms, overdue feedback, online rate. */
"use strict";

(function () {
  const REFRESH_MS = 30000;
  const $ = (id) => document.getElementById(id);

  function riskCell(level) {
    const cell = HW.el("td", { class: "risk" });
    cell.append(HW.el("span", { class: "risk-badge risk-" + level }, HW.riskLabel(level)));
    return cell;
  }

  function row(e) {
    const tr = HW.el("tr", { class: "enterprise-row", dataset: { enterpriseId: e.id, risk: e.risk_level } });
    const name = HW.el("td", {});
    name.append(HW.el("a", { href: "/enterprises/" + e.id }, e.name), HW.el("div", { class: "muted small-text" }, e.code));
    tr.append(
      riskCell(e.risk_level),
      name,
      HW.el("td", {}, e.division),
      HW.el("td", {}, e.hazard_sources ? HW.gradeLabel(e.grade) : "—"),
      HW.el("td", { class: "num" }, e.hazard_sources),
      HW.el("td", { class: "num open-alarms" + (e.open_p1 ? " hot" : "") }, e.open_alarms + (e.open_p1 ? " (" + HW.t("priority_1") + " " + e.open_p1 + ")" : "")),
      HW.el("td", { class: "num overdue" + (e.overdue_feedback ? " hot" : "") }, e.overdue_feedback),
      HW.el("td", { class: "num online" }, HW.fmtPercent(e.online_rate)),
    );
    tr.addEventListener("click", function (event) {
      if (event.target.tagName !== "A") window.location.assign("/enterprises/" + e.id);
    });
    return tr;
  }

  async function load() {
    try {
      const data = await HW.api("GET", "/api/v1/enterprises");
      $("enterprises-rows").replaceChildren(...data.enterprises.map(row));
      const msg = $("enterprises-message");
      msg.hidden = data.enterprises.length > 0;
      msg.textContent = HW.t("no_enterprises");
    } catch (err) {
      $("enterprises-message").textContent = err.message;
      $("enterprises-message").hidden = false;
    } finally {
      document.body.dataset.loaded = "1";
    }
  }

  load();
  setInterval(load, REFRESH_MS);
})();
