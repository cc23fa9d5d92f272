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

  function conditionLabel(alarm) {
    return t("cond_" + alarm.condition_code);
  }
  function stateLabel(state) {
    return t("state_" + state);
  }
  function gradeLabel(grade) {
    return t("grade_" + grade);
  }

  return { config, t, fmtTime, fmtClock, fmtNumber, el, api, ApiError, conditionLabel, stateLabel, gradeLabel };
})();
