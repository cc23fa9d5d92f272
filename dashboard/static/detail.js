/* The detail of one alarm (a panel on the board, or the alarm's own page): fields, acknowledge,
   shelve, the "why" (condition, value against limit, the data that raised it), a video
   snapshot, the live trend, disposal feedback with its review, and the journal. */
"use strict";

window.HWDetail = (function () {
  const TREND_EVERY_MS = 10000;
  const MASKED = new Set(["SHELVED", "SUPPRESSED", "OUT_OF_SERVICE"]);
  const SNAPSHOT_ID = /^[A-Za-z0-9._-]{1,128}$/;
  const $ = (id) => document.getElementById(id);
  const panel = () => $("detail");
  const user = HW.config.user;
  let current = null; // alarm id shown
  let alarm = null; // the alarm row shown
  let timer = null;
  let hooks = { acknowledge: null, changed: null, closed: null };

  function field(list, label, value) {
    list.append(HW.el("dt", {}, label), HW.el("dd", {}, value == null ? "—" : value));
  }

  function renderFields(a) {
    const list = $("detail-fields");
    list.replaceChildren();
    field(list, HW.t("col_priority"), HW.t("priority_" + a.priority));
    field(list, HW.t("col_enterprise"), a.enterprise_name + " (" + a.enterprise_code + ")");
    if (a.hazard_source_name) {
      field(list, HW.t("col_hazard_source"), a.hazard_source_name + " · " + HW.gradeLabel(a.hazard_grade));
    }
    if (a.equipment_name) field(list, HW.t("equipment"), a.equipment_name + " (" + a.equipment_code + ")");
    field(list, HW.t("col_tag"), HW.subjectText(a));
    field(list, HW.t("col_condition"), HW.conditionLabel(a));
    field(list, HW.t("col_value"), HW.valueText(a));
    field(list, HW.t("raised_at"), HW.fmtTime(a.raised_at));
    field(list, HW.t("col_state"), HW.stateLabel(a.state));
    if (a.acked_by) field(list, HW.t("acked_by"), a.acked_by + " · " + HW.fmtTime(a.acked_at));
    if (a.cleared_at) field(list, HW.t("cleared_at"), HW.fmtTime(a.cleared_at));
    if (a.closed_at) field(list, HW.t("col_closed"), HW.fmtTime(a.closed_at));
    field(list, HW.t("col_disposition"), HW.t("disp_" + a.disposition));
    panel().dataset.state = a.state;
    panel().dataset.disposition = a.disposition;
    $("detail-link").href = "/alarms/" + a.id;
    $("detail-link").hidden = document.body.dataset.page === "alarm";
    renderActions(a);
    renderWhy(a);
  }

  /** "yes", "priority" (the policy keeps this priority on the board) or "no". */
  function shelving(a) {
    const policy = HW.config.shelving || { roles: [], priorities: [] };
    if (!policy.roles.includes(user.role) || MASKED.has(a.state) || a.state === "NORMAL") return "no";
    return policy.priorities.includes(a.priority) ? "yes" : "priority";
  }

  function renderActions(a) {
    $("detail-ack").hidden = !(user.can_acknowledge && (a.state === "UNACK" || a.state === "RTN_UNACK"));
    const policy = HW.config.shelving || { roles: [] };
    const may = shelving(a);
    $("shelve-form").hidden = may === "no";
    $("shelve-fields").hidden = may !== "yes";
    $("shelve-button").disabled = may !== "yes";
    $("shelve-note").hidden = may !== "priority";
    $("shelve-note").textContent = may === "priority" ? HW.t("shelve_not_priority", { p: HW.t("priority_" + a.priority) }) : "";
    const shelved = a.state === "SHELVED";
    $("unshelve-box").hidden = !(shelved && policy.roles.includes(user.role));
    $("shelved-info").textContent = shelved
      ? HW.t("shelved_info", { by: a.shelved_by || "", until: HW.fmtTime(a.shelved_until), reason: a.shelve_reason || "" })
      : "";
  }

  function renderWhy(a) {
    const list = $("why-fields");
    list.replaceChildren();
    field(list, HW.t("why_condition"), HW.conditionLabel(a) + " · " + HW.t("kind_" + a.kind));
    const unit = a.unit ? " " + a.unit : a.condition === "CLOCK_AHEAD" ? " s" : "";  // its lead on our clock
    if (a.value != null) field(list, HW.t("value"), HW.fmtNumber(a.value) + unit);
    const detail = a.detail || {};
    if (detail.score != null) field(list, HW.t("why_score"), HW.fmtNumber(detail.score) + (detail.suspected ? " · " + HW.t("why_suspected") : ""));
    if (detail.zone) field(list, HW.t("why_zone"), detail.zone);
    if (Array.isArray(detail.devices) && detail.devices.length) field(list, HW.t("why_devices"), detail.devices.join(", "));
    if (Array.isArray(detail.tags) && detail.tags.length) field(list, HW.t("why_tags_ahead"), detail.tags.join(", "));
    if (a.limit_value != null) {
      field(list, HW.t("limit"), HW.fmtNumber(a.limit_value) + unit);
      if (a.value != null && (a.condition === "HIGH" || a.condition === "LOW")) {  // a prediction is not beyond it yet
        const diff = a.value - a.limit_value;
        const span = a.range_high != null && a.range_low != null ? a.range_high - a.range_low : 0;
        const pct = span > 0 ? " (" + HW.fmtNumber((100 * diff) / span) + " % " + HW.t("of_span") + ")" : "";
        field(list, HW.t("why_margin"), (diff >= 0 ? "+" : "") + HW.fmtNumber(diff) + unit + pct);
      }
    }
    if (a.ll != null || a.l != null || a.h != null || a.hh != null) {
      const parts = [["LL", a.ll], ["L", a.l], ["H", a.h], ["HH", a.hh]]
        .filter((p) => p[1] != null).map((p) => p[0] + " " + HW.fmtNumber(p[1]));
      field(list, HW.t("why_limits"), parts.join(" · ") + unit);
    }
    if (a.range_low != null) field(list, HW.t("why_range"), HW.fmtNumber(a.range_low) + " … " + HW.fmtNumber(a.range_high) + unit);
    $("why-json").textContent = JSON.stringify(detail, null, 2);
    $("why-detail").hidden = !Object.keys(detail).length;
    renderSnapshot(detail);
  }

  function snapshotId(detail) {
    let id = detail.snapshot_id;
    if (id == null && detail.snapshot != null) {
      id = typeof detail.snapshot === "object" ? detail.snapshot.id : detail.snapshot;
    }
    id = id == null ? "" : String(id);
    return SNAPSHOT_ID.test(id) ? id : null;
  }

  function renderSnapshot(detail) {
    const id = snapshotId(detail);
    const figure = $("snapshot");
    const img = $("snapshot-img");
    figure.hidden = id == null;
    const src = id == null ? "" : "/api/v1/snapshots/" + encodeURIComponent(id);
    if (id != null && img.getAttribute("src") !== src) img.src = src;
    if (id == null) img.removeAttribute("src");
  }

  function renderJournal(entries) {
    const body = $("journal-rows");
    body.replaceChildren();
    for (const entry of entries.slice().reverse()) {
      const row = HW.el("tr", { dataset: { action: entry.action } });
      row.append(
        HW.el("td", { class: "time" }, HW.fmtTime(entry.at)),
        HW.el("td", {}, entry.actor),
        HW.el("td", {}, HW.t("act_" + entry.action)),
        HW.el("td", {}, HW.stateLabel(entry.to_state)),
        HW.el("td", {}, entry.comment || ""),
      );
      body.append(row);
    }
  }

  function renderFeedback(a, items) {
    const list = $("feedback-list");
    list.replaceChildren();
    for (const item of items) {
      const li = HW.el("li", { class: "feedback review-" + item.review, dataset: { feedbackId: item.id, review: item.review } });
      const head = HW.el("div", { class: "feedback-head" });
      head.append(
        HW.el("strong", {}, HW.t("reason_" + item.reason)),
        HW.el("span", { class: "muted" }, " · " + item.filed_by + " · " + HW.fmtTime(item.filed_at)),
        HW.el("span", { class: "badge review-badge" }, HW.t("review_" + item.review)),
      );
      li.append(head, HW.el("p", { class: "measures" }, item.measures));
      if (item.attachment_url) {
        const link = HW.el("a", { href: item.attachment_url, class: "attachment", download: item.attachment_name },
          HW.t("attachment") + ": " + item.attachment_name);
        li.append(link);
      }
      if (item.review !== "pending") {
        li.append(HW.el("p", { class: "review-note" },
          HW.t("reviewed_by", { by: item.reviewed_by || "", at: HW.fmtTime(item.reviewed_at) })
          + (item.review_comment ? " — " + item.review_comment : "")));
      }
      list.append(li);
    }
    const status = a.feedback_required ? HW.t("disp_" + a.disposition) : HW.t("feedback_not_required");
    $("feedback-status").textContent = items.length ? status : HW.t("feedback_none") + " · " + status;
    const mine = user.role === "enterprise";
    $("feedback-form").hidden = !(mine && (a.disposition === "due" || a.disposition === "returned") && a.state !== "UNACK" && a.state !== "RTN_UNACK");
    const pending = items.some((i) => i.review === "pending");
    $("review-form").hidden = !(user.role === "regulator" && pending);
    // a real abnormality confirmed in feedback may open a hidden-danger rectification (隐患)
    const real = items.some((i) => i.reason === "real_handled" && i.review !== "returned");
    $("danger-form").hidden = !(real && (user.role === "regulator" || user.role === "enterprise"));
  }

  async function refreshAlarm() {
    if (current == null) return;
    const id = current;
    try {
      const [data, fb] = await Promise.all([
        HW.api("GET", "/api/v1/alarms/" + id),
        HW.api("GET", "/api/v1/alarms/" + id + "/feedback"),
      ]);
      if (id !== current) return;
      show(data.alarm, fb.feedback);
    } catch (err) {
      if (err.status === 404) close(err);
    }
  }

  function show(a, feedback) {
    alarm = a;
    renderFields(a);
    if (a.journal) renderJournal(a.journal);
    if (feedback) renderFeedback(a, feedback);
    panel().dataset.tagId = a.tag_id == null ? "" : String(a.tag_id);
    panel().dataset.loaded = String(a.id);
  }

  async function refreshTrend() {
    const tagId = panel().dataset.tagId;
    const canvas = $("trend");
    canvas.hidden = !tagId;
    $("trend-title").hidden = !tagId;
    if (current == null || !tagId) return;
    try {
      const data = await HW.api("GET", "/api/v1/tags/" + tagId + "/trend");
      if (panel().dataset.tagId === tagId) HWTrend.draw(canvas, data);
    } catch (err) {
      /* keep the last drawing; the next tick retries */
    }
  }

  function fillDurations() {
    const select = $("shelve-minutes");
    const maxMinutes = ((HW.config.shelving || {}).max_hours || 8) * 60;
    select.replaceChildren();
    for (const minutes of [15, 30, 60, 120, 240, 480, 720, 1440]) {
      if (minutes > maxMinutes) continue;
      const label = minutes < 60 ? HW.t("minutes", { n: minutes }) : HW.t("hours", { n: minutes / 60 });
      select.append(HW.el("option", { value: String(minutes) }, label));
    }
  }

  async function open(a) {
    current = a.id;
    panel().hidden = false;
    panel().dataset.alarmId = String(a.id);
    delete panel().dataset.loaded;
    for (const id of ["shelve-error", "feedback-error", "review-error", "danger-error", "danger-message"]) $(id).hidden = true;
    $("feedback-list").replaceChildren();
    $("journal-rows").replaceChildren();
    $("ack-comment").value = "";
    $("shelve-reason").value = "";
    $("feedback-measures").value = "";
    $("feedback-file").value = "";
    $("review-comment").value = "";
    show(a, null);
    clearInterval(timer);
    timer = setInterval(refreshTrend, TREND_EVERY_MS);
    await Promise.all([refreshAlarm(), refreshTrend()]);
  }

  function close(reason) {
    current = null;
    alarm = null;
    clearInterval(timer);
    timer = null;
    panel().hidden = true;
    delete panel().dataset.alarmId;
    if (hooks.closed) hooks.closed(reason);
  }

  /** The board tells the panel that an alarm changed (live push or an action). */
  function changed(alarmId) {
    if (alarmId === current) refreshAlarm();
  }

  function showError(id, err) {
    $(id).textContent = (err && err.message) || String(err);
    $(id).hidden = false;
  }

  async function after(changedAlarm) {
    if (changedAlarm && hooks.changed) hooks.changed(changedAlarm);
    await refreshAlarm();
  }

  async function acknowledge() {
    if (current == null) return;
    const comment = $("ack-comment").value.trim();
    const a = await hooks.acknowledge(current, comment);
    if (a) show(a, null);
    await refreshAlarm();
  }

  async function shelve(event) {
    event.preventDefault();
    if (current == null) return;
    $("shelve-error").hidden = true;
    const reason = $("shelve-reason").value.trim();
    if (!reason) { showError("shelve-error", HW.t("shelve_reason_required")); return; }
    try {
      const data = await HW.api("POST", "/api/v1/alarms/" + current + "/shelve",
        { reason: reason, minutes: Number($("shelve-minutes").value) });
      await after(data.alarm);
    } catch (err) {
      showError("shelve-error", err);
    }
  }

  async function unshelve() {
    if (current == null) return;
    try {
      const data = await HW.api("POST", "/api/v1/alarms/" + current + "/unshelve", {});
      await after(data.alarm);
    } catch (err) {
      showError("shelve-error", err);
    }
  }

  async function fileFeedback(event) {
    event.preventDefault();
    if (current == null) return;
    $("feedback-error").hidden = true;
    const measures = $("feedback-measures").value.trim();
    if (!measures) { showError("feedback-error", HW.t("feedback_measures_required")); return; }
    const form = new FormData();
    form.append("reason", $("feedback-reason").value);
    form.append("measures", measures);
    const file = $("feedback-file").files[0];
    if (file) form.append("attachment", file, file.name);
    $("feedback-button").disabled = true;
    try {
      const data = await HW.upload("/api/v1/alarms/" + current + "/feedback", form);
      $("feedback-measures").value = "";
      $("feedback-file").value = "";
      await after(data.alarm);
    } catch (err) {
      showError("feedback-error", err);
    } finally {
      $("feedback-button").disabled = false;
    }
  }

  async function review(accept) {
    if (current == null) return;
    $("review-error").hidden = true;
    const comment = $("review-comment").value.trim();
    if (!accept && !comment) { showError("review-error", HW.t("review_comment_required")); return; }
    try {
      const data = await HW.api("POST", "/api/v1/alarms/" + current + "/review", { accept: accept, comment: comment });
      $("review-comment").value = "";
      await after(data.alarm);
    } catch (err) {
      showError("review-error", err);
    }
  }

  async function openDanger(event) {
    event.preventDefault();
    if (current == null) return;
    $("danger-error").hidden = true;
    $("danger-message").hidden = true;
    const description = $("danger-description").value.trim();
    const deadline = HW.zonedToIso($("danger-deadline").value);
    if (!description || !deadline) { showError("danger-error", HW.t("danger_required")); return; }
    $("danger-button").disabled = true;
    try {
      const data = await HW.api("POST", "/api/v1/alarms/" + current + "/hidden-dangers",
        { description: description, deadline: deadline });
      $("danger-description").value = "";
      $("danger-deadline").value = "";
      const danger = data.hidden_danger || data;
      $("danger-message").textContent = HW.t("danger_opened", { deadline: HW.fmtTime(danger.deadline) });
      $("danger-message").hidden = false;
      await refreshAlarm();
    } catch (err) {
      showError("danger-error", err);
    } finally {
      $("danger-button").disabled = false;
    }
  }

  /** ``options``: acknowledge(id, comment) → alarm | null; changed(alarm); closed(reason). */
  function init(options) {
    hooks = Object.assign(hooks, options || {});
    fillDurations();
    $("detail-close").addEventListener("click", function () { close(null); });
    $("detail-ack-button").addEventListener("click", acknowledge);
    $("shelve-form").addEventListener("submit", shelve);
    $("unshelve-button").addEventListener("click", unshelve);
    $("feedback-form").addEventListener("submit", fileFeedback);
    $("review-accept").addEventListener("click", function () { review(true); });
    $("review-return").addEventListener("click", function () { review(false); });
    $("danger-form").addEventListener("submit", openDanger);
  }

  return { init, open, close, changed, shelving, current: () => current, alarm: () => alarm };
})();
