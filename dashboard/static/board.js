/* The live alarm board: alarms by priority then time, a page at a time, live over WebSocket.
   Tabs: on the board (open) and masked (shelved, suppressed, out of service). During a flood
   (> 10 alarms in 10 min) rows group by hazard source, the first alarm first, and no 一级
   alarm is ever folded away. A new 一级 alarm beeps, flashes and shows a banner. */
"use strict";

(function () {
  const PAGE = 200;
  const RELOAD_MS = 600;
  const FLOOD_EVERY_MS = 15000;
  const FOLD_AFTER = 3; // in a group, rows beyond the first few (一级 excepted) fold away
  const TAB_STATES = {
    open: new Set(["UNACK", "ACKED", "RTN_UNACK"]),
    masked: new Set(["SHELVED", "SUPPRESSED", "OUT_OF_SERVICE"]),
  };
  const NEW_ACTIONS = new Set(["raise", "escalate", "reactivate", "unshelve", "unsuppress", "return_to_service"]);
  const $ = (id) => document.getElementById(id);
  const user = HW.config.user;
  const isAdmin = ["sysadmin", "secadmin", "auditor"].includes(user.role);
  const alarms = new Map(); // id → alarm row of the current page
  const FLASH_MS = 6000;
  const flashUntil = new Map(); // alarm id → until when its row flashes
  const expanded = new Set(); // group keys the user unfolded
  let tab = "open";
  let offset = 0;
  let total = 0;
  let flood = { flood: false, groups: [], last_10min: 0 };
  let socket = null;
  let retryMs = 1000;
  let reloadTimer = null;
  let renderQueued = false;

  function compare(a, b) {
    return a.priority - b.priority || Date.parse(b.raised_at) - Date.parse(a.raised_at) || b.id - a.id;
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

  function button(label, cls, onClick) {
    const b = HW.el("button", { type: "button", class: cls }, label);
    b.addEventListener("click", function (event) { event.stopPropagation(); onClick(); });
    return b;
  }

  function actionCell(alarm) {
    const cell = HW.el("td", { class: "actions" });
    const unacked = alarm.state === "UNACK" || alarm.state === "RTN_UNACK";
    if (user.can_acknowledge && unacked) cell.append(button(HW.t("ack"), "ack", function () { acknowledge(alarm.id, ""); }));
    if (HWDetail.shelving(alarm) === "yes") {
      cell.append(button(HW.t("shelve"), "shelve secondary", function () { openShelve(alarm); }));
    }
    const policy = HW.config.shelving || { roles: [] };
    if (alarm.state === "SHELVED" && policy.roles.includes(user.role)) {
      cell.append(button(HW.t("unshelve"), "unshelve secondary", function () { unshelve(alarm.id); }));
    }
    if (!cell.childNodes.length) {
      if (!user.can_acknowledge) cell.append(HW.el("span", { class: "muted" }, HW.t("read_only")));
      else if (alarm.acked_by) cell.append(HW.el("span", { class: "muted" }, alarm.acked_by));
    }
    return cell;
  }

  function stateCell(alarm) {
    const cell = HW.el("td", { class: "state" }, HW.stateLabel(alarm.state));
    if (alarm.state === "SHELVED" && alarm.shelved_until) {
      cell.append(HW.el("div", { class: "muted small-text" }, HW.t("until") + " " + HW.fmtTime(alarm.shelved_until)));
    }
    if (alarm.mask_reason) cell.append(HW.el("div", { class: "muted small-text mask-reason" }, alarm.mask_reason));
    return cell;
  }

  function renderRow(alarm) {
    const tr = HW.el("tr", {
      class: "alarm p" + alarm.priority + " state-" + alarm.state,
      dataset: { alarmId: alarm.id, state: alarm.state, priority: alarm.priority },
    });
    const source = alarm.hazard_source_name ? alarm.hazard_source_name + " · " + HW.gradeLabel(alarm.hazard_grade) : "—";
    const tag = HW.el("td", { class: "tag" });
    if (alarm.tag_code) tag.append(HW.el("strong", {}, alarm.tag_code), HW.el("span", {}, " " + alarm.tag_name));
    else tag.append(HW.el("strong", {}, HW.subjectText(alarm)));
    tr.append(
      HW.el("td", { class: "priority" }, HW.t("priority_" + alarm.priority)),
      HW.el("td", { class: "time" }, HW.fmtTime(alarm.raised_at)),
      HW.el("td", { class: "enterprise", title: alarm.enterprise_code }, alarm.enterprise_name),
      HW.el("td", { class: "source" }, source),
      tag,
      HW.el("td", { class: "condition" }, HW.conditionLabel(alarm)),
      valueCell(alarm),
      stateCell(alarm),
      actionCell(alarm),
    );
    tr.addEventListener("click", function () { HWDetail.open(alarms.get(alarm.id) || alarm); });
    if (HWDetail.current() === alarm.id) tr.classList.add("selected");
    const until = flashUntil.get(alarm.id);
    if (until != null && until > Date.now()) tr.classList.add("flash");
    else if (until != null) flashUntil.delete(alarm.id);
    return tr;
  }

  function groupKey(alarm) {
    return alarm.hazard_source_id == null ? "e" + alarm.enterprise_id : "h" + alarm.hazard_source_id;
  }

  function serverGroup(key) {
    return flood.groups.find(function (g) {
      return (g.hazard_source_id == null ? "e" + g.enterprise_id : "h" + g.hazard_source_id) === key;
    });
  }

  /** Rows grouped by hazard source: the gravest groups first; in a group the first alarm first. */
  function renderGrouped(sorted, fragment) {
    const groups = new Map();
    for (const alarm of sorted) {
      const key = groupKey(alarm);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(alarm);
    }
    const ordered = Array.from(groups.entries()).map(function ([key, list]) {
      list.sort(function (a, b) { return Date.parse(a.raised_at) - Date.parse(b.raised_at) || a.id - b.id; });
      return { key: key, list: list, top: Math.min.apply(null, list.map((a) => a.priority)) };
    });
    ordered.sort(function (a, b) { return a.top - b.top || Date.parse(a.list[0].raised_at) - Date.parse(b.list[0].raised_at); });
    for (const group of ordered) {
      const first = group.list[0];
      const info = serverGroup(group.key);
      const count = info ? info.alarms : group.list.length;
      const p1 = info ? info.p1 : group.list.filter((a) => a.priority === 1).length;
      const open = expanded.has(group.key);
      const folded = group.list.filter(function (a, i) { return i >= FOLD_AFTER && a.priority !== 1; });
      const head = HW.el("tr", { class: "group-head p" + group.top, dataset: { group: group.key } });
      const cell = HW.el("td", { colspan: "9" });
      cell.append(
        HW.el("strong", {}, (first.hazard_source_name || HW.t("no_hazard_source")) + " · " + first.enterprise_name),
        HW.el("span", { class: "group-count" }, " " + HW.t("group_count", { n: count, p1: p1 })),
      );
      if (folded.length) {
        cell.append(button(open ? HW.t("group_fold") : HW.t("group_unfold", { n: folded.length }), "secondary small group-toggle",
          function () { if (open) expanded.delete(group.key); else expanded.add(group.key); queueRender(); }));
      }
      head.append(cell);
      fragment.append(head);
      group.list.forEach(function (alarm, i) {
        const tr = renderRow(alarm);
        tr.classList.add("grouped");
        if (i === 0) tr.classList.add("group-first");
        if (!open && i >= FOLD_AFTER && alarm.priority !== 1) { // folded: in the page, not shown
          tr.classList.add("folded");
          tr.hidden = true;
        }
        fragment.append(tr);
      });
    }
  }

  function render() {
    renderQueued = false;
    const sorted = Array.from(alarms.values()).sort(compare).slice(0, PAGE);
    const fragment = document.createDocumentFragment();
    const grouping = tab === "open" && flood.flood && $("flood-group").checked;
    if (grouping) renderGrouped(sorted, fragment);
    else for (const alarm of sorted) fragment.append(renderRow(alarm));
    $("alarm-rows").replaceChildren(fragment);
    $("alarm-table").classList.toggle("grouping", grouping);
    $("alarm-count").textContent = HW.t("count", { n: total });
    const pages = Math.max(1, Math.ceil(total / PAGE));
    $("page-info").textContent = HW.t("page_info", { page: Math.floor(offset / PAGE) + 1, pages: pages });
    $("page-prev").disabled = offset === 0;
    $("page-next").disabled = offset + PAGE >= total;
    const message = $("board-message");
    if (isAdmin) {
      message.textContent = HW.t("admin_no_alarms");
      message.hidden = false;
    } else if (!alarms.size) {
      message.textContent = HW.t(tab === "open" ? "no_alarms" : "no_masked");
      message.hidden = false;
    } else {
      message.hidden = true;
    }
    renderFlood();
  }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    window.requestAnimationFrame(render);
  }

  function renderFlood() {
    const banner = $("flood-banner");
    banner.hidden = !flood.flood || tab !== "open";
    document.body.classList.toggle("in-flood", !!flood.flood);
    if (flood.flood) {
      $("flood-text").textContent = HW.t("flood_text", {
        n: flood.last_10min, since: flood.since ? HW.fmtTime(flood.since) : "", groups: flood.groups.length,
      });
    }
  }

  let generation = 0; // the newest load wins: an older page's answer arriving late is dropped

  async function load() {
    if (isAdmin) { render(); return; }
    const mine = ++generation;
    const data = await HW.api("GET", "/api/v1/alarms?state=" + tab + "&limit=" + PAGE + "&offset=" + offset);
    if (mine !== generation) return;
    alarms.clear();
    for (const alarm of data.alarms) alarms.set(alarm.id, alarm);
    total = data.total;
    if (offset > 0 && offset >= total) { offset = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE); return load(); }
    render();
  }

  async function loadFlood() {
    if (isAdmin) return;
    try {
      flood = await HW.api("GET", "/api/v1/board/flood");
      queueRender();
    } catch (err) {
      /* keep the last state; the next tick retries */
    }
  }

  function scheduleReload() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(function () { load().catch(function () {}); loadFlood(); }, RELOAD_MS);
  }

  /** Apply a change to the page shown; a new alarm joins the first page only (on a later page
      it counts, and the reload that follows puts it where it sorts). */
  function upsert(alarm) {
    const had = alarms.has(alarm.id);
    if (TAB_STATES[tab].has(alarm.state)) {
      if (had || offset === 0) alarms.set(alarm.id, alarm);
      if (!had) total += 1;
    } else if (had) {
      alarms.delete(alarm.id);
      total = Math.max(0, total - 1);
    }
  }

  function announce(alarm) {
    flashUntil.set(alarm.id, Date.now() + FLASH_MS);
    HWBeep.alarm();
    const banner = $("p1-banner");
    banner.replaceChildren(
      HW.el("strong", {}, HW.t("new_p1") + " "),
      HW.el("span", {}, alarm.enterprise_name + " · " + (alarm.tag_code || "") + " " + HW.conditionLabel(alarm)
        + " · " + HW.fmtTime(alarm.raised_at)),
    );
    banner.dataset.alarmId = String(alarm.id);
    banner.hidden = false;
    document.body.classList.add("flash-p1");
    setTimeout(function () { document.body.classList.remove("flash-p1"); }, 6000);
  }

  async function acknowledge(alarmId, comment) {
    try {
      const data = await HW.api("POST", "/api/v1/alarms/" + alarmId + "/ack", { comment: comment });
      upsert(data.alarm);
      queueRender();
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

  async function unshelve(alarmId) {
    try {
      const data = await HW.api("POST", "/api/v1/alarms/" + alarmId + "/unshelve", {});
      upsert(data.alarm);
      queueRender();
      HWDetail.changed(alarmId);
    } catch (err) {
      window.alert(HW.t("unshelve_failed") + ": " + err.message);
      await load();
    }
  }

  async function openShelve(alarm) {
    await HWDetail.open(alarm);
    $("shelve-reason").focus();
    $("shelve-form").scrollIntoView({ block: "nearest" });
  }

  function setStatus(kind) {
    const status = $("live-status");
    status.className = "live live-" + kind;
    status.textContent = HW.t("live_" + kind);
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    if (message.type === "alarm") {
      const alarm = message.alarm;
      if (alarm.priority === 1 && NEW_ACTIONS.has(message.action) && alarm.state === "UNACK") announce(alarm);
      upsert(alarm);
      queueRender();
      HWDetail.changed(alarm.id);
      scheduleReload();
    } else if (message.type === "resync") {
      load();
      loadFlood();
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
      loadFlood();
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      setStatus("down");
      if (event.code === 1008) { window.location.assign("/login"); return; }
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    });
  }

  function selectTab(name) {
    tab = name;
    offset = 0;
    for (const b of document.querySelectorAll(".tabs .tab")) {
      const on = b.dataset.state === name;
      b.classList.toggle("current", on);
      b.setAttribute("aria-selected", on ? "true" : "false");
    }
    document.body.dataset.tab = name;
    load();
  }

  function soundLabel() {
    const state = HWBeep.state();
    const b = $("sound-toggle");
    b.textContent = HW.t("sound_" + state);
    b.setAttribute("aria-pressed", state === "on" ? "true" : "false");
    b.dataset.sound = state;
  }

  $("tab-open").addEventListener("click", function () { selectTab("open"); });
  $("tab-masked").addEventListener("click", function () { selectTab("masked"); });
  $("page-prev").addEventListener("click", function () { offset = Math.max(0, offset - PAGE); load(); });
  $("page-next").addEventListener("click", function () { if (offset + PAGE < total) { offset += PAGE; load(); } });
  $("flood-group").addEventListener("change", queueRender);
  $("sound-toggle").addEventListener("click", function () { HWBeep.toggle(); setTimeout(soundLabel, 50); });
  $("p1-banner").addEventListener("click", function () {
    const id = Number($("p1-banner").dataset.alarmId);
    const alarm = alarms.get(id);
    $("p1-banner").hidden = true;
    if (alarm) HWDetail.open(alarm);
  });

  HWDetail.init({
    acknowledge: acknowledge,
    changed: function (alarm) { upsert(alarm); queueRender(); scheduleReload(); },
    closed: function () { queueRender(); },
  });
  document.body.dataset.tab = tab;
  document.body.dataset.ready = "1";
  soundLabel();
  load().then(function () { document.body.dataset.loaded = "1"; });
  loadFlood();
  setInterval(loadFlood, FLOOD_EVERY_MS);
  setInterval(soundLabel, 5000);
  connect();
})();
