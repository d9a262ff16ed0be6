// A task's page (/tasks/<id>): its facts, arguments, result or error, the timeline
// of its states (the record's bounded history) and its dead letter, with revoke,
// replay and discard. It reads GET /api/tasks/<id> and follows the task's own
// event stream until the task ends. Data is only ever inserted as text.
(function () {
  "use strict";

  var t = window.taskrelay;
  var TICK_MS = 1000;
  var RECONNECT_MIN_MS = 1000;
  var RECONNECT_MAX_MS = 30000;
  var DEAD_LETTER_DELAY_MS = 1000;

  var taskId = document.body.dataset.taskId;
  var base = "/api/tasks/" + encodeURIComponent(taskId);
  var shown = null; // the document drawn last
  var stream = { source: null, retryMs: RECONNECT_MIN_MS, timer: null };
  var reading = null;

  function field(name) {
    return document.querySelector('[data-field="' + name + '"]');
  }

  function timeOrBlank(holder, iso) {
    if (!iso) {
      holder.replaceChildren();
      return;
    }
    var current = holder.querySelector("time");
    if (current && current.getAttribute("datetime") === iso) return;
    holder.replaceChildren(t.timeElement(iso));
  }

  function errorText(error) {
    if (!error) return "";
    return (error.type || "Error") + ": " + (error.message || "");
  }

  // ---- the timeline ------------------------------------------------------------------

  function timelineEntry(entry, previousAt) {
    var item = document.createElement("li");
    item.dataset.state = entry.state || "";
    var head = document.createElement("div");
    head.className = "timeline-head";
    head.append(t.timeElement(entry.at), " ", t.stateBadge(entry.state));
    var at = t.timeOf(entry.at);
    if (previousAt != null && at != null) {
      var gap = document.createElement("span");
      gap.className = "timeline-gap";
      gap.textContent = "+" + t.duration(at - previousAt);
      head.append(" ", gap);
    }
    if (entry.worker) {
      var worker = document.createElement("span");
      worker.className = "timeline-worker";
      worker.textContent = "on " + entry.worker;
      head.append(" ", worker);
    }
    item.appendChild(head);
    var details = [];
    // An entry's retries counts the attempts before the one it belongs to.
    var attempt = (entry.retries || 0) + 1;
    if (entry.state === "RETRY") details.push("attempt " + attempt + " failed, to be retried");
    if (entry.state === "STARTED" && attempt > 1) details.push("attempt " + attempt);
    if (entry.progress) details.push("progress " + t.progressText({ state: "PROGRESS", progress: entry.progress }));
    if (details.length) {
      var note = document.createElement("p");
      note.className = "timeline-note";
      note.textContent = details.join(", ");
      item.appendChild(note);
    }
    if (entry.error) {
      var error = document.createElement("p");
      error.className = "error-message";
      error.textContent = errorText(entry.error);
      item.appendChild(error);
    }
    return item;
  }

  function drawTimeline(history) {
    var list = t.$("#timeline");
    var previousAt = null;
    var items = (history || []).map(function (entry) {
      var item = timelineEntry(entry, previousAt);
      previousAt = t.timeOf(entry.at);
      return item;
    });
    if (!items.length) {
      var empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No states recorded yet.";
      items.push(empty);
    }
    list.replaceChildren.apply(list, items);
  }

  // ---- the facts ------------------------------------------------------------------------

  function drawTimes(doc) {
    var now = Date.now();
    t.setText(field("run-time"), t.runTime(doc, now));
    var submitted = t.timeOf(doc.submitted_at);
    var started = t.timeOf(doc.started_at);
    t.setText(field("wait-time"), submitted != null && started != null ? t.duration(started - submitted) : "");
  }

  function draw(doc) {
    shown = doc;
    var label = (doc.task || "task") + " " + doc.id.slice(0, 8);
    document.title = "Task " + label + " · taskrelay";
    t.setText(field("name"), doc.task || "Task");
    var state = field("state");
    state.dataset.state = doc.state;
    t.setText(state, doc.state);
    t.show(field("dead-letter"), Boolean(doc.dead_letter));
    field("bar").value = t.progressPercent(doc);
    field("bar").setAttribute("aria-label", "Progress of " + label);
    t.setText(field("progress-text"), t.progressText(doc));
    t.setText(field("retries"), doc.retries || 0);
    t.setText(field("worker"), doc.worker || "–");
    timeOrBlank(field("submitted"), doc.submitted_at);
    timeOrBlank(field("started"), doc.started_at);
    timeOrBlank(field("finished"), doc.finished_at);
    drawTimes(doc);
    t.show(field("replay-of-term"), Boolean(doc.replay_of));
    t.show(field("replay-of"), Boolean(doc.replay_of));
    if (doc.replay_of) {
      var link = field("replay-of-link");
      link.href = "/tasks/" + encodeURIComponent(doc.replay_of);
      t.setText(link, doc.replay_of);
    }
    t.show(t.$("#revoke-button"), !t.isTerminal(doc.state));

    t.setText(field("args"), t.prettyJson(doc.args == null ? [] : doc.args));
    t.setText(field("kwargs"), t.prettyJson(doc.kwargs == null ? {} : doc.kwargs));
    var succeeded = doc.state === "SUCCESS";
    var error = doc.state === "FAILURE" || doc.state === "RETRY" ? doc.error : null;
    t.show(field("result"), succeeded && !doc.result_expired);
    t.setText(field("result"), succeeded ? t.prettyJson(doc.result) : "");
    t.show(field("result-expired"), Boolean(doc.result_expired));
    t.show(field("error"), Boolean(error));
    t.setText(field("error-message"), errorText(error));
    t.show(field("traceback-box"), Boolean(error && error.traceback));
    t.setText(field("traceback"), (error && error.traceback) || "");
    t.setText(
      field("no-outcome"),
      doc.state === "REVOKED" ? "Revoked: it has no result." : "Not finished yet."
    );
    t.show(field("no-outcome"), !succeeded && !error && !doc.result_expired);

    t.show(t.$("#dead-letter-section"), Boolean(doc.dead_letter));
    if (doc.history) drawTimeline(doc.history);
  }

  // ---- reading and following --------------------------------------------------------------

  function read() {
    if (reading) return reading;
    reading = t.api("GET", base).then(function (answer) {
      reading = null;
      if (answer.status === 404) {
        t.setText(t.$("#task-status"), "No such task: it was never submitted, or its record expired.");
        return false;
      }
      if (!answer.ok) {
        t.setText(t.$("#task-status"), "The task could not be read: " + t.errorOf(answer).message);
        return false;
      }
      draw(answer.body);
      return true;
    });
    return reading;
  }

  function follow() {
    var source = new EventSource(base + "/events");
    stream.source = source;
    source.addEventListener("open", function () {
      stream.retryMs = RECONNECT_MIN_MS;
    });
    source.addEventListener("state", function (event) {
      var doc = JSON.parse(event.data);
      // The stream's document may come without the history; the timeline is read then.
      if (doc.history) draw(doc);
      else read();
      t.setText(t.$("#task-status"), t.isTerminal(doc.state) ? "Finished: " + doc.state + "." : "Live: following this task.");
    });
    source.addEventListener("error", function () {
      source.close();
      if (stream.source !== source) return;
      if (shown && t.isTerminal(shown.state)) {
        t.setText(t.$("#task-status"), "Finished: " + shown.state + ".");
        // The last word; a dead letter is filed just after the failure is stored.
        read().then(function () {
          if (shown.state === "FAILURE" && !shown.dead_letter) window.setTimeout(read, DEAD_LETTER_DELAY_MS);
        });
        return;
      }
      t.setText(t.$("#task-status"), "The task's stream was interrupted; reconnecting…");
      stream.timer = window.setTimeout(follow, stream.retryMs);
      stream.retryMs = Math.min(stream.retryMs * 2, RECONNECT_MAX_MS);
    });
  }

  // ---- actions ---------------------------------------------------------------------------------

  function statusWithLink(element, before, id, after) {
    var link = document.createElement("a");
    link.href = "/tasks/" + encodeURIComponent(id);
    link.textContent = id.slice(0, 8);
    element.replaceChildren(before, link, after);
  }

  function act(button) {
    var action = button.dataset.action;
    var status = action === "revoke" ? t.$("#action-status") : t.$("#dead-letter-status");
    if (action === "revoke") {
      t.setText(status, "Revoking…");
      t.api("DELETE", base).then(function (answer) {
        t.setText(status, answer.ok ? "Revoked." : t.errorOf(answer).message);
        if (answer.ok) read();
      });
    }
    if (action === "replay") {
      t.setText(status, "Replaying…");
      t.api("POST", "/api/deadletters/" + encodeURIComponent(taskId) + "/replay", {}).then(function (answer) {
        if (!answer.ok) {
          t.setText(status, t.errorOf(answer).message);
          return;
        }
        statusWithLink(status, "Replayed as ", answer.body.id, ".");
      });
    }
    if (action === "discard") {
      t.setText(status, "Discarding…");
      t.api("DELETE", "/api/deadletters/" + encodeURIComponent(taskId)).then(function (answer) {
        t.setText(status, answer.ok ? "Discarded." : t.errorOf(answer).message);
      });
    }
  }

  function start() {
    document.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action]");
      if (button) act(button);
    });
    window.addEventListener("pagehide", function () {
      if (stream.source) stream.source.close();
      window.clearTimeout(stream.timer);
      stream.source = null;
    });
    window.setInterval(function () {
      if (shown && !t.isTerminal(shown.state)) drawTimes(shown);
    }, TICK_MS);
    read().then(function (found) {
      if (!found) return;
      t.setText(t.$("#task-status"), t.isTerminal(shown.state) ? "Finished: " + shown.state + "." : "Live: following this task.");
      if (!t.isTerminal(shown.state)) follow();
    });
  }

  start();
})();
