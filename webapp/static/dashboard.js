// The dashboard's behaviour: forms that speak the JSON API, dead letters, queue
// depths and a small throughput chart, channel messages over Server-Sent Events,
// schedules and workflows. The task table is task_table.js; the workers and the
// per-task charts are panels.js; common.js holds what they share. Plain browser
// JavaScript with no dependencies; data is only ever inserted as text, never as markup.
(function () {
  "use strict";

  var t = window.taskrelay;
  var $ = t.$;
  var $all = t.$all;
  var api = t.api;
  var errorOf = t.errorOf;
  var setText = t.setText;
  var show = t.show;
  var svg = t.svg;
  var prettyJson = t.prettyJson;
  var taskTable = t.taskTable;

  var MAX_CHANNEL_MESSAGES = 200;
  var HISTORY_PAGE_SIZE = 100;
  var HISTORY_MAX_PAGES = 10;
  // The channel list shows its first page only: the server pages it (GET /api/channels).
  var CHANNEL_LIST_LIMIT = 100;
  var STATS_INTERVAL_MS = 5000;
  // A task is filed as a dead letter just after its FAILURE is stored: the list
  // is read again this long after a failure arrives on the task stream.
  var DEAD_LETTER_DELAY_MS = 500;
  var RECONNECT_MIN_MS = 1000;
  var RECONNECT_MAX_MS = 30000;

  function field(root, name) {
    return root.querySelector('[data-field="' + name + '"]');
  }

  // ---- field errors --------------------------------------------------------

  function clearFieldErrors(form) {
    $all(".field-error", form).forEach(function (box) {
      box.hidden = true;
      box.textContent = "";
    });
    $all("[aria-invalid]", form).forEach(function (control) {
      control.removeAttribute("aria-invalid");
    });
  }

  // Shows the API's message beside the field it names; returns false when the
  // form has no such field, so the caller shows it as a form-level message.
  function showFieldError(scopes, fieldName, message) {
    for (var i = 0; i < scopes.length; i++) {
      var box = $all(".field-error", scopes[i]).filter(function (candidate) {
        return candidate.dataset.errorFor === fieldName;
      })[0];
      if (!box) continue;
      box.textContent = message;
      box.hidden = false;
      var control = box.parentElement.querySelector("input, select, textarea");
      if (control) {
        control.setAttribute("aria-invalid", "true");
        control.focus();
      }
      return true;
    }
    return false;
  }

  // ---- the submit form ---------------------------------------------------------

  var submitForm = $("#submit-form");
  var taskSelect = $("#task-select");

  function selectedParams() {
    return $all("fieldset.params[data-task]", submitForm).filter(function (set) {
      return set.dataset.task === taskSelect.value;
    })[0];
  }

  function showSelectedParams() {
    $all("fieldset.params[data-task]", submitForm).forEach(function (set) {
      var selected = set.dataset.task === taskSelect.value;
      set.hidden = !selected;
      set.disabled = !selected; // hidden fields leave the tab order too
    });
  }

  // The API is the one judge of a value: anything that is not plainly a number
  // or JSON goes as the text typed, and the API's error says what is wrong.
  function readValue(control) {
    var type = control.dataset.type;
    if (type === "boolean") return { value: control.checked };
    var text = control.value.trim();
    if (text === "") return { omit: true };
    if (type === "integer" || type === "number") {
      var number = Number(text);
      return { value: Number.isFinite(number) ? number : control.value };
    }
    if (type === "array" || type === "object") {
      try {
        return { value: JSON.parse(text) };
      } catch (notJson) {
        return { value: control.value };
      }
    }
    return { value: control.value };
  }

  function submissionBody() {
    var body = { task: taskSelect.value, kwargs: {} };
    var params = selectedParams();
    if (params) {
      $all("input, textarea, select", params).forEach(function (control) {
        var read = readValue(control);
        if (!read.omit) body.kwargs[control.name] = read.value;
      });
    }
    ["#submit-countdown", "#submit-priority"].forEach(function (selector) {
      var control = $(selector);
      var read = readValue(control);
      if (!read.omit) body[control.name] = read.value;
    });
    return body;
  }

  function onSubmitTask(event) {
    event.preventDefault();
    var status = $("#submit-status");
    clearFieldErrors(submitForm);
    setText(status, "Submitting…");
    var body = submissionBody();
    api("POST", "/api/tasks", body).then(function (answer) {
      if (answer.ok) {
        taskTable.noteTask(answer.body);
        setText(status, "Submitted " + answer.body.task + " as " + answer.body.id.slice(0, 8) + ".");
        return;
      }
      var error = errorOf(answer);
      var shown = error.field && showFieldError([selectedParams(), submitForm], error.field, error.message);
      setText(status, shown ? "Not submitted: check the highlighted field." : "Not submitted: " + error.message);
    });
  }

  // ---- dead letters ------------------------------------------------------------

  var deadLetterList = $("#dead-letter-list");

  function renderDeadLetter(entry) {
    var item = $("#dead-letter-template").content.firstElementChild.cloneNode(true);
    var shortId = entry.id.slice(0, 8);
    var label = entry.task + " " + shortId;
    item.dataset.deadLetterId = entry.id;
    setText(field(item, "name"), entry.task);
    setText(field(item, "id"), shortId);
    setText(field(item, "retries"), "retries: " + (entry.retries || 0));
    var failedAt = field(item, "failed-at");
    failedAt.setAttribute("datetime", entry.failed_at || "");
    setText(failedAt, entry.failed_at || "");
    setText(field(item, "error-message"), entry.error ? entry.error.type + ": " + entry.error.message : "");
    setText(field(item, "arguments"), prettyJson({ args: entry.args, kwargs: entry.kwargs }));
    setText(field(item, "traceback"), entry.traceback || "");
    item.querySelector('[data-action="replay"]').setAttribute("aria-label", "Replay " + label);
    item.querySelector('[data-action="discard"]').setAttribute("aria-label", "Discard " + label);
    return item;
  }

  function refreshDeadLetters() {
    api("GET", "/api/deadletters?limit=20").then(function (answer) {
      if (!answer.ok) return;
      var entries = answer.body.dead_letters;
      deadLetterList.replaceChildren.apply(deadLetterList, entries.map(renderDeadLetter));
      show($("#dead-letter-empty"), entries.length === 0);
      taskTable.markDeadLetters(
        entries.map(function (entry) {
          return entry.id;
        })
      );
    });
  }

  var deadLetterTimer = null;

  function refreshDeadLettersSoon() {
    if (deadLetterTimer) return;
    deadLetterTimer = window.setTimeout(function () {
      deadLetterTimer = null;
      refreshDeadLetters();
    }, DEAD_LETTER_DELAY_MS);
  }

  function actOnDeadLetter(item, action) {
    var id = item.dataset.deadLetterId;
    var status = $("#dead-letter-status");
    var request =
      action === "replay"
        ? api("POST", "/api/deadletters/" + encodeURIComponent(id) + "/replay", {})
        : api("DELETE", "/api/deadletters/" + encodeURIComponent(id));
    request.then(function (answer) {
      if (!answer.ok) {
        setText(status, errorOf(answer).message);
        return;
      }
      if (action === "replay") {
        taskTable.noteTask(answer.body);
        setText(status, "Replayed " + id.slice(0, 8) + " as " + answer.body.id.slice(0, 8) + ".");
      } else {
        setText(status, "Discarded " + id.slice(0, 8) + ".");
      }
      refreshDeadLetters();
    });
  }

  // ---- queues and throughput -----------------------------------------------------

  var knownDeadLetters = null;

  function drawThroughput(throughput) {
    var chart = $("#throughput-chart");
    var buckets = throughput.buckets;
    var width = 320;
    var height = 140;
    var left = 28;
    var bottom = 20;
    var top = 10;
    var plotHeight = height - bottom - top;
    var peak = 1;
    buckets.forEach(function (bucket) {
      peak = Math.max(peak, bucket.submitted, bucket.finished);
    });
    var slot = (width - left) / buckets.length;
    var barWidth = Math.max(2, slot / 2 - 2);
    var parts = [
      svg("line", { x1: left, y1: top + plotHeight, x2: width, y2: top + plotHeight, class: "axis" }),
      svg("text", { x: left - 4, y: top + 8, class: "label end" }, String(peak)),
      svg("text", { x: left - 4, y: top + plotHeight, class: "label end" }, "0"),
      svg("text", { x: left, y: height - 4, class: "label" }, "-" + (buckets.length - 1) + " min"),
      svg("text", { x: width, y: height - 4, class: "label end" }, "now"),
    ];
    buckets.forEach(function (bucket, index) {
      var x = left + index * slot + 1;
      [
        ["submitted", bucket.submitted, x],
        ["finished", bucket.finished, x + barWidth + 1],
      ].forEach(function (bar) {
        var barHeight = (bar[1] / peak) * plotHeight;
        var rect = svg("rect", {
          x: bar[2],
          y: top + plotHeight - barHeight,
          width: barWidth,
          height: barHeight,
          class: "bar bar-" + bar[0],
        });
        rect.appendChild(svg("title", {}, bar[1] + " " + bar[0]));
        parts.push(rect);
      });
    });
    chart.replaceChildren.apply(chart, parts);
    var last = buckets[buckets.length - 1];
    var finished = buckets.map(function (bucket) {
      return bucket.finished;
    });
    setText(
      $("#throughput-caption"),
      "Tasks per minute over the last " +
        buckets.length +
        " minutes; finished, oldest first: " +
        finished.join(", ") +
        ". This minute so far: " +
        last.submitted +
        " submitted, " +
        last.finished +
        " finished" +
        (throughput.sampled ? " (finished counts sampled)." : ".")
    );
  }

  function renderStats(stats) {
    var depths = $("#queue-depths");
    var items = [];
    stats.queues.forEach(function (queue) {
      var term = document.createElement("dt");
      term.textContent = queue.name;
      var value = document.createElement("dd");
      value.dataset.queue = queue.name;
      value.textContent = queue.depth == null ? "unknown" : queue.depth + " waiting";
      items.push(term, value);
    });
    depths.replaceChildren.apply(depths, items);
    drawThroughput(stats.throughput);
    var dead = stats.dead_letters;
    var deadSignature = dead.count + ":" + dead.newest_id;
    if (deadSignature !== knownDeadLetters) {
      if (knownDeadLetters !== null) refreshDeadLetters();
      knownDeadLetters = deadSignature;
    }
  }

  function pollStats() {
    var next = function () {
      window.setTimeout(pollStats, STATS_INTERVAL_MS);
    };
    if (document.hidden) {
      next();
      return;
    }
    Promise.all([
      api("GET", "/api/stats").then(function (answer) {
        if (answer.ok) renderStats(answer.body);
      }),
      refreshChannels(),
    ]).then(next, next);
  }

  // ---- channels: list, publish ---------------------------------------------------

  function refreshChannels() {
    return api("GET", "/api/channels?limit=" + CHANNEL_LIST_LIMIT).then(function (answer) {
      var rows = $("#channel-rows");
      var empty = $("#channel-empty");
      if (!answer.ok) {
        setText(empty, answer.status === 404 ? "Channels are not available on this server." : errorOf(answer).message);
        show(empty, true);
        return;
      }
      var channels = Array.isArray(answer.body) ? answer.body : answer.body.channels || [];
      rows.replaceChildren.apply(rows, channels.map(channelRow));
      setText(empty, "No channels yet: publish a message.");
      show(empty, channels.length === 0);
    });
  }

  function channelRow(channel) {
    var row = document.createElement("tr");
    var lastId = channel.last_id ? channel.last_id.slice(0, 8) : "–";
    [channel.name, channel.length, channel.subscribers, lastId].forEach(function (value, index) {
      var cell = document.createElement(index === 0 ? "th" : "td");
      if (index === 0) cell.scope = "row";
      cell.textContent = value == null ? "" : String(value);
      row.appendChild(cell);
    });
    if (channel.last_id) row.children[3].title = channel.last_id;
    var actionCell = document.createElement("td");
    var button = document.createElement("button");
    button.type = "button";
    button.dataset.action = "watch";
    button.dataset.channel = channel.name;
    button.textContent = "Watch";
    button.setAttribute("aria-label", "Watch channel " + channel.name);
    actionCell.appendChild(button);
    row.appendChild(actionCell);
    return row;
  }

  function onPublish(event) {
    event.preventDefault();
    var form = event.currentTarget;
    var status = $("#publish-status");
    clearFieldErrors(form);
    var channel = $("#publish-channel").value.trim();
    var text = $("#publish-data").value;
    var data;
    try {
      data = JSON.parse(text);
    } catch (notJson) {
      data = text; // plain text is published as a JSON string
    }
    if (!channel) {
      showFieldError([form], "channel", "Name the channel to publish on.");
      setText(status, "");
      return;
    }
    setText(status, "Publishing…");
    api("POST", "/api/channels/" + encodeURIComponent(channel) + "/messages", { data: data }).then(
      function (answer) {
        if (answer.ok) {
          setText(status, "Published " + answer.body.id + " on " + answer.body.channel + ".");
          refreshChannels();
          return;
        }
        var error = errorOf(answer);
        // A bad channel name is reported against the path; show it beside the name.
        var fieldName = error.field === "data" ? "data" : "channel";
        var shown = (error.field || answer.status === 400) && showFieldError([form], fieldName, error.message);
        setText(status, shown ? "Not published: check the highlighted field." : "Not published: " + error.message);
      }
    );
  }

  // ---- channels: the live view ------------------------------------------------------

  // The view keeps the id of the last message it showed. After any disconnect it
  // opens a new stream from that id (Last-Event-ID), so the server replays what
  // was missed from the channel's history: no gap, and no message shown twice.
  var live = { channel: null, source: null, lastId: null, seen: {}, retryMs: RECONNECT_MIN_MS, timer: null, reconnecting: false };

  function watchChannel(channel) {
    stopChannel();
    live = { channel: channel, source: null, lastId: null, seen: {}, retryMs: RECONNECT_MIN_MS, timer: null, reconnecting: false };
    $("#watch-channel").value = channel;
    $("#channel-messages").replaceChildren();
    var url = new URL(window.location.href);
    url.searchParams.set("channel", channel);
    window.history.replaceState(null, "", url);
    setText($("#watch-status"), "Loading the history of " + channel + "…");
    loadHistory(live, null, 0).then(function (ok) {
      if (ok) connectChannel(live);
    });
  }

  function loadHistory(view, after, page) {
    var path =
      "/api/channels/" + encodeURIComponent(view.channel) + "/messages?limit=" + HISTORY_PAGE_SIZE +
      (after ? "&after=" + encodeURIComponent(after) : "");
    return api("GET", path).then(function (answer) {
      if (view !== live) return false;
      if (!answer.ok) {
        if (answer.status === 404 || answer.status === 400) {
          setText($("#watch-status"), "Cannot watch " + view.channel + ": " + errorOf(answer).message);
          showFieldError([$("#watch-form")], "channel", errorOf(answer).message);
          return false;
        }
        return true; // no history now; the live stream still works
      }
      var messages = Array.isArray(answer.body) ? answer.body : answer.body.messages || [];
      messages.forEach(function (message) {
        showMessage(view, message);
      });
      if (messages.length === HISTORY_PAGE_SIZE && page + 1 < HISTORY_MAX_PAGES) {
        return loadHistory(view, messages[messages.length - 1].id, page + 1);
      }
      return true;
    });
  }

  function connectChannel(view) {
    if (view !== live) return;
    var url = "/api/channels/" + encodeURIComponent(view.channel) + "/events";
    if (view.lastId) url += "?last_event_id=" + encodeURIComponent(view.lastId);
    var source = new EventSource(url);
    view.source = source;
    if (!view.reconnecting) setText($("#watch-status"), "Connecting to " + view.channel + "…");
    source.addEventListener("open", function () {
      view.retryMs = RECONNECT_MIN_MS;
      view.reconnecting = false;
      setText($("#watch-status"), "Live: watching " + view.channel + ".");
    });
    source.addEventListener("message", function (event) {
      setText($("#watch-status"), "Live: watching " + view.channel + ".");
      showMessage(view, JSON.parse(event.data));
    });
    source.addEventListener("gap", function () {
      showNotice("Some messages were trimmed from the history before they could be shown.");
    });
    source.addEventListener("error", function () {
      // Reconnect ourselves rather than leave it to the browser, so that the
      // resume point is always the last message this view actually showed.
      source.close();
      if (view !== live) return;
      setText($("#watch-status"), "Disconnected from " + view.channel + "; reconnecting…");
      view.reconnecting = true;
      view.timer = window.setTimeout(function () {
        connectChannel(view);
      }, view.retryMs);
      view.retryMs = Math.min(view.retryMs * 2, RECONNECT_MAX_MS);
    });
  }

  function stopChannel() {
    if (live.source) live.source.close();
    if (live.timer) window.clearTimeout(live.timer);
    live.channel = null;
  }

  function showMessage(view, message) {
    if (view !== live || view.seen[message.id]) return;
    view.seen[message.id] = true;
    view.lastId = message.id;
    var list = $("#channel-messages");
    var item = document.createElement("li");
    item.dataset.messageId = message.id;
    var meta = document.createElement("span");
    meta.className = "message-meta";
    meta.textContent = message.id + (message.published_at ? " · " + message.published_at : "");
    var data = document.createElement("code");
    data.className = "message-data";
    data.textContent = JSON.stringify(message.data);
    item.append(meta, data);
    list.appendChild(item);
    while (list.children.length > MAX_CHANNEL_MESSAGES) {
      delete view.seen[list.firstElementChild.dataset.messageId];
      list.removeChild(list.firstElementChild);
    }
  }

  function showNotice(text) {
    var item = document.createElement("li");
    item.className = "notice";
    item.textContent = text;
    $("#channel-messages").appendChild(item);
  }

  function onWatch(event) {
    event.preventDefault();
    var form = event.currentTarget;
    clearFieldErrors(form);
    var channel = $("#watch-channel").value.trim();
    if (!channel) {
      showFieldError([form], "channel", "Name the channel to watch.");
      return;
    }
    watchChannel(channel);
  }

  // ---- schedules ---------------------------------------------------------------

  // Schedules have no event stream: the list is read again every few seconds
  // while the tab is visible, with each shown schedule's newest runs.
  var SCHEDULES_INTERVAL_MS = 2000;
  var SCHEDULE_LIST_LIMIT = 20;
  var SCHEDULE_RUNS_SHOWN = 5;

  function scheduleTiming(schedule) {
    if (schedule.cron) return "cron " + schedule.cron + " (" + schedule.timezone + ")";
    return "every " + schedule.every_s + " s";
  }

  function scheduleButton(action, text, schedule) {
    var button = document.createElement("button");
    button.type = "button";
    button.dataset.action = action;
    button.dataset.scheduleId = schedule.id;
    button.textContent = text;
    button.setAttribute("aria-label", text + " schedule " + schedule.name);
    return button;
  }

  function renderSchedule(schedule, runs) {
    var item = document.createElement("li");
    item.className = "schedule";
    item.dataset.scheduleId = schedule.id;
    item.dataset.enabled = schedule.enabled ? "true" : "false";
    var head = document.createElement("div");
    head.className = "task-head";
    var name = document.createElement("span");
    name.className = "task-name";
    name.textContent = schedule.name;
    var task = document.createElement("code");
    task.textContent = schedule.task + " " + JSON.stringify(schedule.args) + " " + JSON.stringify(schedule.kwargs);
    var timing = document.createElement("span");
    timing.className = "retries";
    timing.textContent = scheduleTiming(schedule) + (schedule.enabled ? "" : ", paused");
    head.append(name, task, timing);
    head.append(
      schedule.enabled ? scheduleButton("schedule-pause", "Pause", schedule) : scheduleButton("schedule-resume", "Resume", schedule),
      scheduleButton("schedule-run", "Run now", schedule),
      scheduleButton("schedule-delete", "Delete", schedule)
    );
    var next = document.createElement("p");
    next.className = "hint";
    next.dataset.field = "next-fire";
    next.textContent = schedule.next_fire_times.length ? "Next fire: " + schedule.next_fire_times[0] : "Next fire: none";
    var runList = document.createElement("ol");
    runList.className = "schedule-runs";
    runList.setAttribute("aria-label", "Last runs of " + schedule.name);
    runs.forEach(function (run) {
      var runItem = document.createElement("li");
      runItem.dataset.taskId = run.task_id;
      var link = document.createElement("a");
      link.href = run.links.task;
      link.textContent = run.task_id.slice(0, 8);
      var when = document.createElement("span");
      when.textContent = " " + (run.slot || run.fired_at || "") + " ";
      var state = document.createElement("span");
      state.className = "state";
      state.dataset.state = run.state || "";
      state.textContent = run.state || "expired";
      runItem.append(link, when, state);
      runList.appendChild(runItem);
    });
    item.append(head, next, runList);
    return item;
  }

  function refreshSchedules() {
    var list = $("#schedule-list");
    if (!list) return Promise.resolve();
    return api("GET", "/api/schedules?limit=" + SCHEDULE_LIST_LIMIT).then(function (answer) {
      if (!answer.ok) {
        setText($("#schedule-empty"), answer.status === 404 ? "Schedules are not available on this server." : errorOf(answer).message);
        show($("#schedule-empty"), true);
        return;
      }
      var schedules = answer.body.schedules;
      return Promise.all(
        schedules.map(function (schedule) {
          return api("GET", schedule.links.runs + "?limit=" + SCHEDULE_RUNS_SHOWN).then(function (runs) {
            return renderSchedule(schedule, runs.ok ? runs.body.runs : []);
          });
        })
      ).then(function (items) {
        // Keep the focus on a button that the new list draws again.
        var focused = document.activeElement;
        var focusKey = focused && focused.dataset && focused.dataset.scheduleId ? focused.dataset.scheduleId + ":" + focused.dataset.action : null;
        list.replaceChildren.apply(list, items);
        if (focusKey) {
          var again = $all("button[data-schedule-id]", list).filter(function (button) {
            return button.dataset.scheduleId + ":" + button.dataset.action === focusKey;
          })[0];
          if (again) again.focus();
        }
        setText($("#schedule-empty"), "No schedules yet: add one below.");
        show($("#schedule-empty"), schedules.length === 0);
      });
    });
  }

  function pollSchedules() {
    var next = function () {
      window.setTimeout(pollSchedules, SCHEDULES_INTERVAL_MS);
    };
    if (document.hidden) {
      next();
      return;
    }
    refreshSchedules().then(next, next);
  }

  function actOnSchedule(button) {
    var path = "/api/schedules/" + encodeURIComponent(button.dataset.scheduleId);
    var action = button.dataset.action;
    var status = $("#schedule-status");
    var request;
    if (action === "schedule-pause") request = api("PATCH", path, { enabled: false });
    if (action === "schedule-resume") request = api("PATCH", path, { enabled: true });
    if (action === "schedule-run") request = api("POST", path + "/run", {});
    if (action === "schedule-delete") request = api("DELETE", path);
    setText(status, "Working…");
    request.then(function (answer) {
      if (!answer.ok) {
        setText(status, errorOf(answer).message);
        return;
      }
      var done = {
        "schedule-pause": "Paused.",
        "schedule-resume": "Resumed.",
        "schedule-run": "Sent the task now.",
        "schedule-delete": "Deleted.",
      };
      setText(status, done[action]);
      if (action === "schedule-run") {
        api("GET", "/api/tasks/" + encodeURIComponent(answer.body.task_id)).then(function (task) {
          if (task.ok) taskTable.noteTask(task.body);
        });
      }
      refreshSchedules();
    });
  }

  function readJson(form, selector, fieldName, fallback) {
    var text = $(selector).value.trim();
    if (text === "") return { value: fallback };
    try {
      return { value: JSON.parse(text) };
    } catch (notJson) {
      showFieldError([form], fieldName, "This is not valid JSON.");
      return null;
    }
  }

  function onAddSchedule(event) {
    event.preventDefault();
    var form = event.currentTarget;
    var status = $("#schedule-form-status");
    clearFieldErrors(form);
    var args = readJson(form, "#schedule-args", "args", []);
    var kwargs = args && readJson(form, "#schedule-kwargs", "kwargs", {});
    if (!args || !kwargs) {
      setText(status, "Not added: check the highlighted field.");
      return;
    }
    var body = { name: $("#schedule-name").value.trim(), task: $("#schedule-task").value, args: args.value, kwargs: kwargs.value };
    var cron = $("#schedule-cron").value.trim();
    var every = $("#schedule-every").value.trim();
    if (cron) {
      body.cron = cron;
      body.timezone = $("#schedule-timezone").value.trim() || "UTC";
    }
    if (every) {
      var seconds = Number(every);
      body.every_s = Number.isFinite(seconds) ? seconds : every;
    }
    setText(status, "Adding…");
    api("POST", "/api/schedules", body).then(function (answer) {
      if (answer.ok) {
        setText(status, "Added schedule " + answer.body.name + ".");
        refreshSchedules();
        return;
      }
      var error = errorOf(answer);
      // The API names a field such as kwargs.steps or args[0]; show it beside its box.
      var fieldName = error.field ? String(error.field).split(/[.[]/)[0] : null;
      var shown = fieldName && showFieldError([form], fieldName, error.message);
      setText(status, shown ? "Not added: check the highlighted field." : "Not added: " + error.message);
    });
  }

  // ---- workflows -------------------------------------------------------------------

  // Workflows have no list stream: the newest are read again every few seconds
  // while the tab is visible, like the schedules.
  var WORKFLOWS_INTERVAL_MS = 2000;
  var WORKFLOW_LIST_LIMIT = 20;

  function renderWorkflow(workflow) {
    var item = document.createElement("li");
    item.className = "workflow";
    item.dataset.workflowId = workflow.id;
    item.dataset.state = workflow.state;
    var link = document.createElement("a");
    link.href = "/workflows/" + encodeURIComponent(workflow.id);
    link.textContent = workflow.id.slice(0, 8);
    link.setAttribute("aria-label", "Workflow " + workflow.id + ", " + workflow.state);
    var stateText = document.createElement("span");
    stateText.className = "state";
    stateText.dataset.state = workflow.state;
    stateText.textContent = workflow.state;
    var steps = document.createElement("span");
    steps.className = "steps";
    steps.textContent = workflow.steps_finished + "/" + workflow.steps_total + " steps";
    var submitted = document.createElement("time");
    submitted.setAttribute("datetime", workflow.submitted_at || "");
    submitted.textContent = workflow.submitted_at || "";
    item.append(link, " ", stateText, " ", steps, " ", submitted);
    return item;
  }

  function refreshWorkflows() {
    var list = $("#workflow-list");
    if (!list) return Promise.resolve();
    return api("GET", "/api/workflows?limit=" + WORKFLOW_LIST_LIMIT).then(function (answer) {
      if (!answer.ok) return;
      var workflows = answer.body.workflows;
      list.replaceChildren.apply(list, workflows.map(renderWorkflow));
      show($("#workflow-empty"), workflows.length === 0);
    });
  }

  function pollWorkflows() {
    var next = function () {
      window.setTimeout(pollWorkflows, WORKFLOWS_INTERVAL_MS);
    };
    if (document.hidden) {
      next();
      return;
    }
    refreshWorkflows().then(next, next);
  }

  function onOpenWorkflow(event) {
    event.preventDefault();
    var form = event.currentTarget;
    clearFieldErrors(form);
    var id = $("#workflow-open-id").value.trim();
    if (!id) {
      showFieldError([form], "workflow", "Enter the workflow's id.");
      return;
    }
    window.location.assign("/workflows/" + encodeURIComponent(id));
  }

  // ---- wiring --------------------------------------------------------------------

  // The article's triggers are plain links; with tokens set, a link cannot send
  // the token, so the script sends it and reloads the page as the link would.
  function runTrigger(link) {
    var status = $("#trigger-status");
    setText(status, "Running " + link.pathname + "…");
    api("GET", link.getAttribute("href")).then(function (answer) {
      if (answer.ok) {
        window.location.reload();
        return;
      }
      setText(status, link.pathname + ": " + errorOf(answer).message);
    });
  }

  function onClick(event) {
    var link = event.target.closest("a[data-action='trigger']");
    if (link && document.body.dataset.tokensRequired === "true") {
      event.preventDefault();
      runTrigger(link);
      return;
    }
    var button = event.target.closest("button[data-action]");
    if (!button) return;
    var action = button.dataset.action;
    if (action === "replay" || action === "discard") actOnDeadLetter(button.closest("li.dead-letter"), action);
    if (action.indexOf("schedule-") === 0) actOnSchedule(button);
    if (action === "watch") {
      watchChannel(button.dataset.channel);
      $("#watch-channel").focus();
    }
  }

  function start() {
    taskSelect.addEventListener("change", showSelectedParams);
    showSelectedParams();
    submitForm.addEventListener("submit", onSubmitTask);
    $("#publish-form").addEventListener("submit", onPublish);
    $("#watch-form").addEventListener("submit", onWatch);
    $("#schedule-form").addEventListener("submit", onAddSchedule);
    $("#workflow-open-form").addEventListener("submit", onOpenWorkflow);
    document.addEventListener("click", onClick);
    window.addEventListener("pagehide", function () {
      stopChannel();
    });
    taskTable.onFinished(function (events) {
      var failed = events.some(function (event) {
        return event.state === "FAILURE";
      });
      if (failed) refreshDeadLettersSoon();
    });
    var channel = new URL(window.location.href).searchParams.get("channel");
    if (channel) watchChannel(channel);
    pollStats();
    pollSchedules();
    pollWorkflows();
  }

  start();
})();
