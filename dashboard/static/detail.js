/* The detail panel of one alarm: fields, acknowledge, the journal and a live trend. */
"use strict";

window.HWDetail = (function () {
  const TREND_EVERY_MS = 10000;
  const panel = () => document.getElementById("detail");
  let current = null; // alarm id shown
  let timer = null;
  let onAcked = null;

  function field(list, label, value) {
    list.append(HW.el("dt", {}, label), HW.el("dd", {}, value));
  }

  function renderFields(alarm) {
    const list = document.getElementById("detail-fields");
    list.replaceChildren();
    field(list, HW.t("col_priority"), HW.t("priority_" + alarm.priority));
    field(list, HW.t("col_enterprise"), alarm.enterprise_name + " (" + alarm.enterprise_code + ")");
    field(list, HW.t("col_hazard_source"), alarm.hazard_source_name + " · " + HW.gradeLabel(alarm.hazard_grade));
    field(list, HW.t("equipment"), alarm.equipment_name + " (" + alarm.equipment_code + ")");
    field(list, HW.t("col_tag"), alarm.tag_code + " " + alarm.tag_name);
    field(list, HW.t("col_condition"), HW.conditionLabel(alarm));
    field(list, HW.t("col_value"), valueText(alarm));
    field(list, HW.t("raised_at"), HW.fmtTime(alarm.raised_at));
    field(list, HW.t("col_state"), HW.stateLabel(alarm.state));
    if (alarm.acked_by) field(list, HW.t("acked_by"), alarm.acked_by + " · " + HW.fmtTime(alarm.acked_at));
    const ack = document.getElementById("detail-ack");
    const canAck = HW.config.user.can_acknowledge && (alarm.state === "UNACK" || alarm.state === "RTN_UNACK");
    ack.hidden = !canAck;
    panel().dataset.state = alarm.state;
  }

  function valueText(alarm) {
    const unit = alarm.unit ? " " + alarm.unit : "";
    const limit = alarm.limit_value == null ? "" : " / " + HW.fmtNumber(alarm.limit_value) + unit;
    return HW.fmtNumber(alarm.value) + unit + limit;
  }

  function renderJournal(entries) {
    const body = document.getElementById("journal-rows");
    body.replaceChildren();
    for (const entry of entries.slice().reverse()) {
      const row = HW.el("tr", { dataset: { action: entry.action } });
      row.append(
        HW.el("td", {}, HW.fmtTime(entry.at)),
        HW.el("td", {}, entry.actor),
        HW.el("td", {}, HW.t("act_" + entry.action)),
        HW.el("td", {}, HW.stateLabel(entry.to_state)),
        HW.el("td", {}, entry.comment || ""),
      );
      body.append(row);
    }
  }

  async function refreshAlarm() {
    if (current == null) return;
    const id = current;
    try {
      const data = await HW.api("GET", "/api/v1/alarms/" + id);
      if (id !== current) return;
      renderFields(data.alarm);
      renderJournal(data.alarm.journal);
      panel().dataset.tagId = String(data.alarm.tag_id);
    } catch (err) {
      if (err.status === 404) close();
    }
  }

  async function refreshTrend() {
    const tagId = panel().dataset.tagId;
    if (current == null || !tagId) return;
    try {
      const data = await HW.api("GET", "/api/v1/tags/" + tagId + "/trend");
      if (panel().dataset.tagId === tagId) HWTrend.draw(document.getElementById("trend"), data);
    } catch (err) {
      /* keep the last drawing; the next tick retries */
    }
  }

  async function open(alarm) {
    current = alarm.id;
    panel().hidden = false;
    panel().dataset.alarmId = String(alarm.id);
    panel().dataset.tagId = String(alarm.tag_id);
    renderFields(alarm);
    document.getElementById("journal-rows").replaceChildren();
    document.getElementById("ack-comment").value = "";
    clearInterval(timer);
    timer = setInterval(refreshTrend, TREND_EVERY_MS);
    await Promise.all([refreshAlarm(), refreshTrend()]);
  }

  function close() {
    current = null;
    clearInterval(timer);
    timer = null;
    panel().hidden = true;
    delete panel().dataset.alarmId;
  }

  /** The board tells the panel that an alarm changed (live push or acknowledge). */
  function changed(alarmId) {
    if (alarmId === current) refreshAlarm();
  }

  async function acknowledge() {
    if (current == null) return;
    const comment = document.getElementById("ack-comment").value.trim();
    const alarm = await onAcked(current, comment);
    if (alarm) {
      renderFields(alarm);
      renderJournal(alarm.journal || []);
    }
  }

  function init(ackHandler) {
    onAcked = ackHandler;
    document.getElementById("detail-close").addEventListener("click", close);
    document.getElementById("detail-ack-button").addEventListener("click", acknowledge);
  }

  return { init, open, close, changed, current: () => current };
})();
