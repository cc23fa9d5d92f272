/* The alarm history: a search form (times in the user's zone), keyset pages and CSV export. */
"use strict";

(function () {
  const LIMIT = 50;
  const $ = (id) => document.getElementById(id);
  const FIELDS = ["division", "enterprise", "hazard_source", "tag", "priority", "kind", "state", "disposition"];
  const enterprises = new Map(); // code → {id, name}
  let cursors = [null]; // the cursor of each page seen; the last one is the page shown
  let next = null;
  let total = null;

  function input(name) {
    return $("f-" + name.replace("_", "-"));
  }

  function filters() {
    const params = new URLSearchParams();
    for (const name of FIELDS) {
      const value = input(name).value.trim();
      if (value) params.set(name, value);
    }
    const from = HW.zonedToIso($("f-from").value);
    const to = HW.zonedToIso($("f-to").value);
    if (from) params.set("from", from);
    if (to) params.set("to", to);
    return params;
  }

  function row(alarm) {
    const tr = HW.el("tr", { class: "alarm p" + alarm.priority + " state-" + alarm.state, dataset: { alarmId: alarm.id } });
    const link = HW.el("a", { href: "/alarms/" + alarm.id }, alarm.tag_code || HW.subjectText(alarm));
    const tag = HW.el("td", { class: "tag" });
    tag.append(link, HW.el("span", {}, " " + (alarm.tag_name || "")));
    tr.append(
      HW.el("td", { class: "priority" }, HW.t("priority_" + alarm.priority)),
      HW.el("td", { class: "time" }, HW.fmtTime(alarm.raised_at)),
      HW.el("td", {}, alarm.enterprise_name),
      HW.el("td", {}, alarm.hazard_source_name || "—"),
      tag,
      HW.el("td", { class: "condition" }, HW.conditionLabel(alarm)),
      HW.el("td", { class: "value" }, HW.valueText(alarm)),
      HW.el("td", { class: "state" }, HW.stateLabel(alarm.state)),
      HW.el("td", { class: "disposition" }, HW.t("disp_" + alarm.disposition)),
      HW.el("td", { class: "time" }, alarm.closed_at ? HW.fmtTime(alarm.closed_at) : "—"),
    );
    tr.addEventListener("click", function (event) {
      if (event.target.tagName !== "A") window.location.assign("/alarms/" + alarm.id);
    });
    return tr;
  }

  function showMessage(text) {
    $("history-message").textContent = text;
    $("history-message").hidden = !text;
  }

  async function fetchPage() {
    const params = filters();
    const cursor = cursors[cursors.length - 1];
    params.set("limit", String(LIMIT));
    if (cursor) params.set("cursor", cursor);
    const csv = filters();
    csv.set("lang", HW.config.lang);
    $("history-csv").href = "/api/v1/history.csv?" + csv.toString();
    showMessage("");
    document.body.dataset.searching = "1";
    try {
      const data = await HW.api("GET", "/api/v1/history?" + params.toString());
      next = data.next;
      if (data.total != null) total = { n: data.total, capped: data.total_capped };
      const body = $("history-rows");
      body.replaceChildren(...data.alarms.map(row));
      if (!data.alarms.length) showMessage(HW.t("history_none"));
      $("history-total").textContent = total == null ? ""
        : HW.t(total.capped ? "history_total_capped" : "history_total", { n: total.n });
      $("history-page").textContent = HW.t("page_n", { page: cursors.length });
      $("history-next").disabled = !next;
      $("history-first").disabled = cursors.length === 1;
    } catch (err) {
      showMessage(err.message);
    } finally {
      document.body.dataset.searching = "0";
      document.body.dataset.loaded = "1";
    }
  }

  function search(event) {
    if (event) event.preventDefault();
    cursors = [null];
    total = null;
    const shown = filters();
    window.history.replaceState(null, "", "/history" + (shown.toString() ? "?" + shown.toString() : ""));
    fetchPage();
  }

  async function loadEnterprises() {
    try {
      const data = await HW.api("GET", "/api/v1/enterprises");
      const select = $("f-enterprise");
      for (const e of data.enterprises) {
        enterprises.set(e.code, e);
        select.append(HW.el("option", { value: e.code }, e.name + " (" + e.code + ")"));
      }
    } catch (err) {
      /* the field stays "any" */
    }
  }

  async function loadSources() {
    const select = $("f-hazard-source");
    const keep = select.value || new URLSearchParams(window.location.search).get("hazard_source") || "";
    select.replaceChildren(HW.el("option", { value: "" }, HW.t("f_any")));
    const e = enterprises.get($("f-enterprise").value);
    if (!e) return;
    const data = await HW.api("GET", "/api/v1/enterprises/" + e.id);
    for (const hs of data.enterprise.hazard_sources) {
      select.append(HW.el("option", { value: hs.code }, hs.name + " (" + hs.code + ")"));
    }
    select.value = keep;
  }

  function prefill() {
    const params = new URLSearchParams(window.location.search);
    for (const name of FIELDS) if (params.has(name) && name !== "hazard_source") input(name).value = params.get(name);
    if (params.get("from")) $("f-from").value = HW.isoToZoned(params.get("from"));
    if (params.get("to")) $("f-to").value = HW.isoToZoned(params.get("to"));
  }

  $("tz-name").textContent = HW.timezone;
  $("history-form").addEventListener("submit", search);
  $("history-form").addEventListener("reset", function () { setTimeout(search, 0); });
  $("f-enterprise").addEventListener("change", function () { loadSources().catch(function () {}); });
  $("history-next").addEventListener("click", function () { if (next) { cursors.push(next); fetchPage(); } });
  $("history-first").addEventListener("click", function () { cursors = [null]; fetchPage(); });
  loadEnterprises().then(prefill).then(loadSources).catch(function () {}).then(function () { search(null); });
})();
