/* One alarm on its own page (linked from the history and the enterprise view): the same
   detail as the board's panel, refreshed every few seconds. */
"use strict";

(function () {
  const REFRESH_MS = 10000;
  const alarmId = HW.config.page.alarm_id;

  async function acknowledge(id, comment) {
    try {
      const data = await HW.api("POST", "/api/v1/alarms/" + id + "/ack", { comment: comment });
      return data.alarm;
    } catch (err) {
      window.alert(HW.t("ack_failed") + ": " + err.message);
      return null;
    }
  }

  function closed(reason) {
    const main = document.querySelector("main");
    const text = reason && reason.status === 404 ? HW.t("alarm_not_found") : HW.t("alarm_closed_panel");
    main.replaceChildren(HW.el("p", { class: "message", id: "alarm-message" }, text));
    const back = HW.el("a", { href: "/history" }, HW.t("nav_history"));
    main.append(back);
  }

  HWDetail.init({ acknowledge: acknowledge, closed: closed });
  document.getElementById("detail-close").hidden = true;
  HW.api("GET", "/api/v1/alarms/" + alarmId)
    .then(function (data) { return HWDetail.open(data.alarm); })
    .catch(closed)
    .finally(function () { document.body.dataset.loaded = "1"; });
  setInterval(function () { HWDetail.changed(alarmId); }, REFRESH_MS);
})();
