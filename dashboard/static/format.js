/* Shared helpers of the pages: configuration, strings, time formatting, the API client. */
"use strict";

window.HW = (function () {
  const config = JSON.parse(document.getElementById("hw-config").textContent);
  const S = config.strings || {};

  function t(key, vars) {
    let text = Object.prototype.hasOwnProperty.call(S, key) ? S[key] : key;
    if (vars) {
      for (const [k, v] of Object.entries(vars)) text = text.replace("{" + k + "}", String(v));
    }
    return text;
  }

  const locale = config.lang === "en" ? "en-GB" : "zh-CN";
  const timeFmt = new Intl.DateTimeFormat(locale, {
    timeZone: config.timezone || "Asia/Shanghai",
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const clockFmt = new Intl.DateTimeFormat(locale, {
    timeZone: config.timezone || "Asia/Shanghai",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });

  function toDate(value) {
    return value instanceof Date ? value : new Date(value);
  }
  function fmtTime(value) {
    if (value == null) return "";
    const part = {};
    for (const p of timeFmt.formatToParts(toDate(value))) part[p.type] = p.value;
    return part.year + "-" + part.month + "-" + part.day + " " + part.hour + ":" + part.minute + ":" + part.second;
  }
  function fmtClock(value) {
    return clockFmt.format(toDate(value));
  }
  function fmtNumber(value) {
    if (value == null || Number.isNaN(value)) return "—";
    const abs = Math.abs(value);
    const digits = abs >= 100 ? 1 : abs >= 10 ? 2 : 3;
    return String(Number(value.toFixed(digits)));
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v);
    }
    if (text != null) node.textContent = String(text);
    return node;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || "HTTP " + status);
      this.status = status;
      this.code = body && body.error;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      if (config.csrf_token) headers["X-CSRF-Token"] = config.csrf_token;
    }
    const response = await fetch(path, {
      method: method,
      headers: headers,
      body: method === "GET" ? undefined : JSON.stringify(body || {}),
      credentials: "same-origin",
      cache: "no-store",
    });
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (response.status === 401 && path !== "/api/v1/login") {
      window.location.assign("/login");
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /** A multipart POST (a form with a file) with the CSRF token; JSON back. */
  async function upload(path, form) {
    const headers = { Accept: "application/json" };
    if (config.csrf_token) headers["X-CSRF-Token"] = config.csrf_token;
    const response = await fetch(path, {
      method: "POST", headers: headers, body: form, credentials: "same-origin", cache: "no-store",
    });
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (response.status === 401) window.location.assign("/login");
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /** The offset (ms) of the user's zone from UTC at a moment. */
  function zoneOffsetMs(ms) {
    const part = {};
    for (const p of timeFmt.formatToParts(new Date(ms))) part[p.type] = p.value;
    const asUtc = Date.UTC(+part.year, +part.month - 1, +part.day, +part.hour % 24, +part.minute, +part.second);
    return asUtc - Math.floor(ms / 1000) * 1000;
  }

  /** "2026-12-01 09:30" (or "…T09:30"; a date alone: 23:59 of that day) as a wall-clock time in
   *  the user's zone → ISO 8601 in UTC ("…Z"). The fields are text, ISO 8601 in every language: a
   *  browser's date input follows the browser's locale, not the page's (mm/dd/yyyy on a zh-CN page). */
  function zonedToIso(local) {
    if (!local) return "";
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(local.trim());
    if (!m) return "";
    const hour = m[4] == null ? 23 : +m[4];
    const minute = m[5] == null ? 59 : +m[5];
    const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], hour, minute, +(m[6] || 0));
    let ms = wall - zoneOffsetMs(wall);
    ms = wall - zoneOffsetMs(ms); // a second pass settles a DST edge
    return new Date(ms).toISOString().replace(".000Z", "Z");
  }

  /** An ISO time → "2026-12-01 09:30" in the user's zone, for a time field. */
  function isoToZoned(iso) {
    const part = {};
    for (const p of timeFmt.formatToParts(new Date(iso))) part[p.type] = p.value;
    return part.year + "-" + part.month + "-" + part.day + " " + part.hour + ":" + part.minute;
  }

  /** What an alarm is about, in words: its tag, else its camera's code, else kind and id. */
  function subjectText(alarm) {
    if (alarm.tag_code) return alarm.tag_code + " " + (alarm.tag_name || "");
    if (alarm.subject_code) {
      return t("subject_" + alarm.subject_kind) + " " + alarm.subject_code + (alarm.subject_name ? " " + alarm.subject_name : "");
    }
    const detail = alarm.detail || {};
    if (alarm.subject_kind === "camera" && detail.camera) return t("subject_camera") + " " + detail.camera;
    return t("subject_" + alarm.subject_kind) + " #" + alarm.subject_id;
  }

  function valueText(alarm) {
    const unit = alarm.unit ? " " + alarm.unit : "";
    const limit = alarm.limit_value == null ? "" : " / " + fmtNumber(alarm.limit_value) + unit;
    return fmtNumber(alarm.value) + unit + limit;
  }

  function fmtPercent(ratio) {
    return ratio == null ? "—" : (Math.round(ratio * 1000) / 10).toFixed(1) + " %";
  }

  function riskLabel(level) {
    return level == null ? "—" : t("risk_" + level);
  }

  function conditionLabel(alarm) {
    const code = alarm.condition_code || alarm.condition || "";
    return Object.prototype.hasOwnProperty.call(S, "cond_" + code) ? S["cond_" + code] : code;
  }
  function stateLabel(state) {
    return t("state_" + state);
  }
  function gradeLabel(grade) {
    // no GB 18218 grade: S < 1, not a major hazard source (非重大危险源)
    return grade == null ? t("grade_none") : t("grade_" + grade);
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.setAttribute("class", v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, String(v));
    }
    if (text != null) node.textContent = String(text);
    return node;
  }

  document.addEventListener("DOMContentLoaded", function () {
    const logout = document.getElementById("logout");
    if (!logout) return;
    logout.addEventListener("click", async function () {
      try { await api("POST", "/api/v1/logout"); } finally { window.location.assign("/login"); }
    });
  });

  return {
    config, t, fmtTime, fmtClock, fmtNumber, fmtPercent, el, svg, api, upload, ApiError, conditionLabel,
    stateLabel, gradeLabel, riskLabel, subjectText, valueText, zonedToIso, isoToZoned,
    timezone: config.timezone || "Asia/Shanghai",
  };
})();
