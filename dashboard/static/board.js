/* The live alarm board: open alarms by priority then time, live over WebSocket. */
"use strict";

(function () {
  const alarms = new Map(); // id → alarm row (open alarms only)
  const user = HW.config.user;
  const rows = document.getElementById("alarm-rows");
  const status = document.getElementById("live-status");
  const NEW_ACTIONS = new Set(["raise", "escalate", "reactivate"]);
  let socket = null;
  let retryMs = 1000;

  function compare(a, b) {
    return a.priority - b.priority
      || Date.parse(b.raised_at) - Date.parse(a.raised_at)
      || b.id - a.id;
  }

  function valueCell(alarm) {
    const unit = alarm.unit ? " " + alarm.unit : "";
    const cell = HW.el("td", { class: "value" });
    cell.append(HW.el("strong", {}, HW.fmtNumber(alarm.value) + unit));
    if (alarm.limit_value != null) {
      cell.append(HW.el("span", { class: "limit" }, " / " + HW.fmtNumber(alarm.limit_value) + unit));
    }
    return cell;
  }

  function actionCell(alarm) {
    const cell = HW.el("td", { class: "actions" });
    const open = alarm.state === "UNACK" || alarm.state === "RTN_UNACK";
    if (user.can_acknowledge && open) {
      const button = HW.el("button", { type: "button", class: "ack", dataset: { alarmId: alarm.id } }, HW.t("ack"));
      button.addEventListener("click", function (event) {
        event.stopPropagation();
        acknowledge(alarm.id, "");
      });
      cell.append(button);
    } else if (!user.can_acknowledge) {
      cell.append(HW.el("span", { class: "muted" }, HW.t("read_only")));
    } else if (alarm.acked_by) {
      cell.append(HW.el("span", { class: "muted" }, alarm.acked_by));
    }
    return cell;
  }

  function renderRow(alarm) {
    const tr = HW.el("tr", {
      class: "alarm p" + alarm.priority + " state-" + alarm.state,
      dataset: { alarmId: alarm.id, state: alarm.state, priority: alarm.priority },
    });
    const source = alarm.hazard_source_name + " · " + HW.gradeLabel(alarm.hazard_grade);
    const tag = HW.el("td", { class: "tag" });
    tag.append(HW.el("strong", {}, alarm.tag_code), HW.el("span", {}, " " + alarm.tag_name));
    tr.append(
      HW.el("td", { class: "priority" }, HW.t("priority_" + alarm.priority)),
      HW.el("td", { class: "time" }, HW.fmtTime(alarm.raised_at)),
      HW.el("td", { class: "enterprise", title: alarm.enterprise_code }, alarm.enterprise_name),
      HW.el("td", { class: "source" }, source),
      tag,
      HW.el("td", { class: "condition" }, HW.conditionLabel(alarm)),
      valueCell(alarm),
      HW.el("td", { class: "state" }, HW.stateLabel(alarm.state)),
      actionCell(alarm),
    );
    tr.addEventListener("click", function () { HWDetail.open(alarms.get(alarm.id) || alarm); });
    if (HWDetail.current() === alarm.id) tr.classList.add("selected");
    return tr;
  }

  function render(flashId) {
    const sorted = Array.from(alarms.values()).sort(compare);
    const fragment = document.createDocumentFragment();
    for (const alarm of sorted) {
      const tr = renderRow(alarm);
      if (alarm.id === flashId) {
        tr.classList.add("flash");
        document.body.classList.add("flash-p1");
        setTimeout(function () { document.body.classList.remove("flash-p1"); }, 6000);
      }
      fragment.append(tr);
    }
    rows.replaceChildren(fragment);
    document.getElementById("alarm-count").textContent = HW.t("count", { n: alarms.size });
    const message = document.getElementById("board-message");
    if (["sysadmin", "secadmin", "auditor"].includes(user.role)) {
      message.textContent = HW.t("admin_no_alarms");
      message.hidden = false;
    } else if (!alarms.size) {
      message.textContent = HW.t("no_alarms");
      message.hidden = false;
    } else {
      message.hidden = true;
    }
  }

  function upsert(alarm) {
    if (alarm.state === "NORMAL") alarms.delete(alarm.id);
    else alarms.set(alarm.id, alarm);
  }

  async function load() {
    const data = await HW.api("GET", "/api/v1/alarms?state=open&limit=1000");
    alarms.clear();
    for (const alarm of data.alarms) alarms.set(alarm.id, alarm);
    render(null);
  }

  async function acknowledge(alarmId, comment) {
    try {
      const data = await HW.api("POST", "/api/v1/alarms/" + alarmId + "/ack", { comment: comment });
      upsert(data.alarm);
      render(null);
      HWDetail.changed(alarmId);
      return data.alarm;
    } catch (err) {
      if (err.status === 409 || err.status === 404) {
        await load();
        HWDetail.changed(alarmId);
        return null;
      }
      window.alert(HW.t("ack_failed") + ": " + err.message);
      return null;
    }
  }

  function setStatus(kind) {
    status.className = "live live-" + kind;
    status.textContent = HW.t("live_" + kind);
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    if (message.type === "alarm") {
      const alarm = message.alarm;
      const isNew = alarm.priority === 1 && NEW_ACTIONS.has(message.action);
      upsert(alarm);
      render(isNew ? alarm.id : null);
      HWDetail.changed(alarm.id);
    } else if (message.type === "resync") {
      load();
    } else if (message.type === "hello") {
      setStatus("ok");
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/api/v1/live");
    socket.addEventListener("open", function () {
      retryMs = 1000;
      load(); // anything that happened while we were away
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      setStatus("down");
      if (event.code === 1008) { window.location.assign("/login"); return; }
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    });
  }

  document.getElementById("logout").addEventListener("click", async function () {
    try { await HW.api("POST", "/api/v1/logout"); } finally { window.location.assign("/login"); }
  });

  HWDetail.init(acknowledge);
  document.body.dataset.ready = "1";
  load().then(function () { document.body.dataset.loaded = "1"; });
  connect();
})();
