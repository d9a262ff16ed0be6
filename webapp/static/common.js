// What the dashboard's pages share: the JSON API client (with the page's token),
// small DOM helpers, SVG building, and how times, durations and progress read.
// Exposed as window.taskrelay for the page scripts loaded after it. Plain browser
// JavaScript with no dependencies; data is only ever inserted as text.
(function () {
  "use strict";

  var STATES = ["QUEUED", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED"];
  var TERMINAL_STATES = ["SUCCESS", "FAILURE", "REVOKED"];
  var SVG_NS = "http://www.w3.org/2000/svg";
  var TOKEN_KEY = "taskrelay-api-token";

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function $all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }

  function isTerminal(state) {
    return TERMINAL_STATES.indexOf(state) !== -1;
  }

  function setText(element, text) {
    var value = text == null ? "" : String(text);
    // Writing the same text again still costs a layout; skip it.
    if (element && element.textContent !== value) element.textContent = value;
  }

  function show(element, visible) {
    if (element && element.hidden === visible) element.hidden = !visible;
  }

  function prettyJson(value) {
    return JSON.stringify(value, null, 2);
  }

  function apiToken() {
    var input = $("#api-token");
    if (!input) return "";
    if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
    return input.value || sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    var token = apiToken();
    if (token) headers.Authorization = "Bearer " + token;
    var options = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) options.body = JSON.stringify(body);
    return fetch(path, options).then(
      function (response) {
        // A read refused for want of a token: the sign-in cookie expired or was
        // revoked, so sign in again rather than show errors everywhere.
        if (response.status === 401 && method === "GET" && document.body.dataset.readsNeedToken === "true") {
          window.location.assign(document.body.dataset.signInUrl);
        }
        if (response.status === 204) return { ok: true, status: 204, body: null };
        return response.json().then(
          function (payload) {
            return { ok: response.ok, status: response.status, body: payload };
          },
          function () {
            return { ok: response.ok, status: response.status, body: null };
          }
        );
      },
      function () {
        return {
          ok: false,
          status: 0,
          body: { error: { code: "network", message: "The server cannot be reached; try again shortly." } },
        };
      }
    );
  }

  function errorOf(answer) {
    var error = answer.body && answer.body.error;
    if (error && error.message) return error;
    return { code: "http_" + answer.status, message: "The server answered " + answer.status + "." };
  }

  function svg(name, attributes, text) {
    var element = document.createElementNS(SVG_NS, name);
    Object.keys(attributes).forEach(function (key) {
      element.setAttribute(key, String(attributes[key]));
    });
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function progressPercent(doc) {
    if (doc.state === "SUCCESS") return 100;
    var progress = doc.progress || {};
    if (typeof progress.current !== "number" || typeof progress.total !== "number" || progress.total <= 0) {
      return 0;
    }
    return Math.max(0, Math.min(100, Math.round((progress.current / progress.total) * 100)));
  }

  function progressText(doc) {
    var message = doc.progress && doc.progress.message;
    return progressPercent(doc) + "%" + (message ? ", " + message : "");
  }

  // Milliseconds since the epoch, or null for a missing or unreadable time.
  function timeOf(iso) {
    if (!iso) return null;
    var ms = Date.parse(iso);
    return Number.isFinite(ms) ? ms : null;
  }

  // "850 ms", "12.4 s", "3 min 5 s", "2 h 4 min": short enough for a table cell.
  function duration(ms) {
    if (ms == null || !Number.isFinite(ms) || ms < 0) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    var seconds = Math.round(ms / 1000);
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  }

  // Formatters are built once: toLocaleString and its kin build one on every call,
  // which costs tens of times the formatting (a live table formats thousands).
  var TIME_OF_DAY = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  var DAY = new Intl.DateTimeFormat([], { month: "short", day: "numeric" });
  var COUNT = new Intl.NumberFormat("en");

  // A timestamp as the operator's clock shows it: the time today, else date and time.
  function clock(iso) {
    var ms = timeOf(iso);
    if (ms == null) return "";
    var when = new Date(ms);
    var time = TIME_OF_DAY.format(when);
    if (when.toDateString() === new Date().toDateString()) return time;
    return DAY.format(when) + " " + time;
  }

  // A count with its thousands separated: 12,345.
  function count(value) {
    return COUNT.format(value);
  }

  // A <time> element for an ISO timestamp: readable text, the exact value in datetime.
  function timeElement(iso, className) {
    var element = document.createElement("time");
    if (className) element.className = className;
    element.setAttribute("datetime", iso || "");
    element.title = iso || "";
    element.textContent = clock(iso);
    return element;
  }

  // A task's run time: from start to its end, or to now while it runs.
  function runTime(doc, now) {
    var started = timeOf(doc.started_at);
    if (started == null) return "";
    var finished = timeOf(doc.finished_at);
    if (finished == null && isTerminal(doc.state)) return "";
    return duration((finished == null ? now : finished) - started);
  }

  function stateBadge(state) {
    var badge = document.createElement("span");
    badge.className = "state";
    badge.dataset.state = state || "";
    badge.textContent = state || "";
    return badge;
  }

  window.taskrelay = {
    STATES: STATES,
    $: $,
    $all: $all,
    api: api,
    clock: clock,
    count: count,
    duration: duration,
    errorOf: errorOf,
    isTerminal: isTerminal,
    prettyJson: prettyJson,
    progressPercent: progressPercent,
    progressText: progressText,
    runTime: runTime,
    setText: setText,
    show: show,
    stateBadge: stateBadge,
    svg: svg,
    timeElement: timeElement,
    timeOf: timeOf,
  };
})();
