// The dashboard's task table: state tabs with live counts, a task-name filter, id
// search and pages over GET /api/tasks, kept live by one Server-Sent Events stream
// for every task (GET /api/tasks/events). Events are queued as they arrive and
// applied together once per animation frame, so a burst of thousands of changes
// costs one DOM update per frame, bounded by the rows shown, not by the events.
// Exposed as window.taskrelay.taskTable for the rest of the page.
(function () {
  "use strict";

  var t = window.taskrelay;
  var PAGE_SIZE = 50;
  // A state tab's first page is read again after tasks enter or leave its state,
  // at most this often: which task belongs where is the server's to say.
  var REFRESH_MIN_MS = 1000;
  // Live counts are moved by each event, then read again from the server once the
  // stream has been quiet this long (events and the last read may overlap) ...
  var COUNTS_QUIET_MS = 1000;
  // ... at least this often while a task of unknown earlier state changed ...
  var COUNTS_UNCERTAIN_MS = 3000;
  // ... and this often anyway: records that expire send no event.
  var COUNTS_MAX_AGE_MS = 30000;
  var TICK_MS = 1000;
  // A hidden tab draws no frames; its queued events are applied this often instead.
  var HIDDEN_FLUSH_MS = 1000;
  // One frame reads queued events for at most this long; the rest wait for the next
  // frame, so a burst of thousands never freezes the page for one long frame. A
  // hidden tab draws no frames and reads them all at once, or it would fall behind.
  var APPLY_BUDGET_MS = 8;
  // One frame builds at most this many new rows, the oldest first; the rest wait for the
  // frames after. A burst's first frame used to build a whole page of 50 at once, which
  // took most of it (34 of 43 ms) and up to 107 ms; with ten, no frame of the browser
  // test took over 17 ms. A hidden tab draws no frames and builds them all at once.
  var FRESH_PER_FRAME = 10;
  var RECONNECT_MIN_MS = 1000;
  var RECONNECT_MAX_MS = 30000;
  var SEARCH_DELAY_MS = 300;
  // The last state of every task seen since the page opened, for the count deltas;
  // forgotten past this many (the counts are then read from the server).
  var KNOWN_MAX = 200000;
  var RUNNING_STATES = ["STARTED", "PROGRESS"];

  var tbody = t.$("#task-rows");
  if (!tbody) return;

  var view = { state: "", task: "", q: "", cursor: null, next: null, stack: [], page: 1 };
  var rows = new Map(); // task id -> {doc, cells}; the rows shown, and fresh ones being added
  var unbuilt = []; // fresh entries waiting for their row, oldest first, at most a page
  var known = new Map(); // task id -> its last state seen
  var lastEvents = new Map(); // task id -> its last event, for a page read that crossed it
  var counts = {};
  var pending = []; // raw event data, oldest first
  var flushScheduled = false;
  var shifted = false; // the first page gained rows live since it was read
  var loadSeq = 0;
  var refreshTimer = null;
  var lastRefreshAt = 0;
  var countsState = { lastReadAt: 0, lastEventAt: 0, eventsSinceRead: 0, uncertain: false, reading: false };
  var stream = {
    source: null,
    lastId: null,
    retryMs: RECONNECT_MIN_MS,
    timer: null,
    changes: 0,
    firstReadAsked: false,
  };
  var finishedListeners = [];
  // What the stream has delivered and how it was applied, for anyone measuring the page.
  // longestMs is the longest frame: events are read within a budget and new rows built
  // a few a frame, so no frame, a burst's first included, should stand out.
  var applied = {
    events: 0,
    frames: 0,
    largestBatch: 0,
    scriptMs: 0,
    longestMs: 0,
  };

  // ---- rows ------------------------------------------------------------------

  function cell(row, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function buildRow(doc) {
    var tr = document.createElement("tr");
    tr.className = "task-row";
    tr.dataset.taskId = doc.id;
    var name = cell(tr, "task-name");
    name.dataset.field = "name";
    var link = document.createElement("a");
    link.className = "task-id";
    link.dataset.field = "link";
    link.href = "/tasks/" + encodeURIComponent(doc.id);
    link.title = doc.id;
    link.textContent = doc.id.slice(0, 8);
    cell(tr).appendChild(link);
    var stateCell = cell(tr);
    var state = t.stateBadge("");
    state.dataset.field = "state";
    var dead = document.createElement("span");
    dead.className = "dead-letter-mark";
    dead.dataset.field = "dead-letter";
    dead.textContent = "dead letter";
    dead.hidden = true;
    stateCell.append(state, " ", dead);
    var progressCell = cell(tr, "progress-cell");
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0; // a bar with no value is drawn as busy, not empty
    bar.dataset.field = "bar";
    var progressText = document.createElement("span");
    progressText.className = "progress-text";
    progressText.dataset.field = "progress-text";
    progressCell.append(bar, " ", progressText);
    var retries = cell(tr, "number");
    retries.dataset.field = "retries";
    var worker = cell(tr, "worker");
    worker.dataset.field = "worker";
    var submitted = t.timeElement(doc.submitted_at);
    submitted.dataset.field = "submitted";
    cell(tr).appendChild(submitted);
    var runTime = cell(tr, "number");
    runTime.dataset.field = "run-time";
    var revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "revoke";
    revoke.dataset.action = "revoke";
    revoke.textContent = "Revoke";
    cell(tr).appendChild(revoke);
    return {
      tr: tr,
      name: name,
      state: state,
      dead: dead,
      bar: bar,
      progressText: progressText,
      retries: retries,
      worker: worker,
      submitted: submitted,
      runTime: runTime,
      revoke: revoke,
      label: null,
    };
  }

  function drawRow(entry, now) {
    var doc = entry.doc;
    var cells = entry.cells;
    var label = (doc.task || "task") + " " + doc.id.slice(0, 8);
    cells.tr.dataset.state = doc.state;
    t.setText(cells.name, doc.task);
    if (cells.state.dataset.state !== doc.state) cells.state.dataset.state = doc.state;
    t.setText(cells.state, doc.state);
    t.show(cells.dead, Boolean(doc.dead_letter));
    var percent = t.progressPercent(doc);
    if (cells.bar.value !== percent) cells.bar.value = percent;
    t.setText(cells.progressText, t.progressText(doc));
    t.setText(cells.retries, doc.retries || 0);
    t.setText(cells.worker, doc.worker || "");
    if (cells.submitted.getAttribute("datetime") !== (doc.submitted_at || "")) {
      cells.submitted.setAttribute("datetime", doc.submitted_at || "");
      cells.submitted.title = doc.submitted_at || "";
      t.setText(cells.submitted, t.clock(doc.submitted_at));
    }
    t.setText(cells.runTime, t.runTime(doc, now));
    if (cells.label !== label) {
      cells.label = label;
      cells.bar.setAttribute("aria-label", "Progress of " + label);
      cells.revoke.setAttribute("aria-label", "Revoke " + label);
    }
    t.show(cells.revoke, !t.isTerminal(doc.state));
  }

  function newEntry(doc) {
    var entry = { doc: doc, cells: null };
    rows.set(doc.id, entry);
    return entry;
  }

  function showRows(docs) {
    var now = Date.now();
    var previous = rows;
    rows = new Map();
    var trs = docs.map(function (doc) {
      // Every change is an event, in order: a page read that disagrees with the last
      // event applied was read before it (or its own event is on the way and corrects it).
      var event = lastEvents.get(doc.id);
      if (event && event.state !== doc.state) merge(doc, event);
      var entry = newEntry(doc);
      var old = previous.get(doc.id);
      entry.cells = old && old.cells ? old.cells : buildRow(doc);
      drawRow(entry, now);
      return entry.cells.tr;
    });
    var focused = document.activeElement;
    tbody.replaceChildren.apply(tbody, trs);
    // A row kept across a refresh keeps the focus of the control in it.
    if (focused && focused !== document.activeElement && tbody.contains(focused)) focused.focus();
    t.show(t.$("#task-list-empty"), docs.length === 0);
  }

  // Merges a stream event into a task's document, as GET /api/tasks/<id> would show it.
  function merge(doc, event) {
    doc.state = event.state;
    if (event.task) doc.task = event.task;
    if (event.retries != null) doc.retries = event.retries;
    doc.progress = event.progress || null;
    if (event.worker) doc.worker = event.worker;
    if (event.state === "QUEUED" && !doc.submitted_at) doc.submitted_at = event.at;
    if (event.state === "STARTED") doc.started_at = event.at;
    if (t.isTerminal(event.state)) doc.finished_at = event.at;
  }

  // ---- which tasks belong on the page ----------------------------------------

  function matchesTaskFilter(task) {
    return !view.task || task === view.task;
  }

  function takesNewTasks(event) {
    return (
      view.page === 1 &&
      (view.state === "" || view.state === event.state) &&
      matchesTaskFilter(event.task) &&
      (!view.q || event.id.indexOf(view.q) === 0)
    );
  }

  // New tasks for the top of the page, oldest first; their rows are built by buildFresh.
  function queueFresh(fresh) {
    fresh.forEach(function (entry) {
      // Remembered so that a page read already on its way, which cannot hold this
      // task, keeps the row rather than drop it (see rowsNewerThanRead).
      entry.addedDuringRead = loadSeq;
      unbuilt.push(entry);
    });
    // Only the newest page's worth can be shown; the rest would be trimmed at once.
    if (unbuilt.length > PAGE_SIZE) {
      unbuilt.splice(0, unbuilt.length - PAGE_SIZE).forEach(function (entry) {
        rows.delete(entry.doc.id);
      });
    }
  }

  // Builds the rows of at most limit waiting tasks, the oldest first, and puts them on
  // top: a later frame puts the newer ones above them, so the order is the same as if
  // they had been built at once.
  function buildFresh(limit) {
    var shown = unbuilt.splice(0, Math.min(limit, unbuilt.length));
    if (!shown.length) return;
    var fragment = document.createDocumentFragment();
    var now = Date.now();
    for (var i = shown.length - 1; i >= 0; i--) {
      var entry = shown[i];
      entry.cells = buildRow(entry.doc);
      drawRow(entry, now);
      fragment.appendChild(entry.cells.tr);
    }
    tbody.insertBefore(fragment, tbody.firstElementChild);
    while (tbody.children.length > PAGE_SIZE) {
      var last = tbody.lastElementChild;
      rows.delete(last.dataset.taskId);
      tbody.removeChild(last);
    }
    shifted = true;
    t.show(t.$("#task-list-empty"), false);
    drawPager();
  }

  // ---- counts ------------------------------------------------------------------

  function countTransition(previous, state) {
    if (previous === state) return;
    if (previous === undefined) {
      if (state === "QUEUED") {
        counts.QUEUED = (counts.QUEUED || 0) + 1;
        counts.all = (counts.all || 0) + 1;
      } else {
        countsState.uncertain = true; // a task from before the page opened
      }
      return;
    }
    counts[previous] = Math.max(0, (counts[previous] || 0) - 1);
    counts[state] = (counts[state] || 0) + 1;
  }

  function drawCounts() {
    t.$all("#state-tabs [data-count]").forEach(function (span) {
      var value = counts[span.dataset.count];
      t.setText(span, value == null ? "…" : t.count(value));
    });
  }

  function setCounts(fresh) {
    if (!fresh) return;
    counts = {};
    Object.keys(fresh).forEach(function (key) {
      counts[key] = fresh[key];
    });
    countsState.lastReadAt = Date.now();
    countsState.eventsSinceRead = 0;
    countsState.uncertain = false;
    drawCounts();
  }

  function readCounts() {
    if (countsState.reading) return;
    countsState.reading = true;
    var task = view.task;
    var path = "/api/tasks/counts" + (task ? "?task=" + encodeURIComponent(task) : "");
    t.api("GET", path).then(function (answer) {
      countsState.reading = false;
      if (answer.ok && task === view.task) setCounts(answer.body.counts || answer.body);
    });
  }

  function countsDue(now) {
    var state = countsState;
    if (now - state.lastReadAt > COUNTS_MAX_AGE_MS) return true;
    if (state.eventsSinceRead > 0 && now - state.lastEventAt > COUNTS_QUIET_MS) return true;
    return state.uncertain && now - state.lastReadAt > COUNTS_UNCERTAIN_MS;
  }

  // ---- applying the stream, once per frame ---------------------------------------

  function scheduleFlush() {
    if (flushScheduled) return;
    flushScheduled = true;
    if (document.hidden) window.setTimeout(flush, HIDDEN_FLUSH_MS);
    else window.requestAnimationFrame(flush);
  }

  function flush() {
    var began = performance.now();
    applyPending();
    var took = performance.now() - began;
    applied.scriptMs += took;
    applied.longestMs = Math.max(applied.longestMs, took);
  }

  function applyPending() {
    flushScheduled = false;
    var batch = pending;
    var began = performance.now();
    var budgeted = !document.hidden;
    var changed = new Set();
    var fresh = [];
    var membershipChanged = false;
    var finished = [];
    var i = 0;
    for (; i < batch.length; i++) {
      if (budgeted && i > 0 && i % 16 === 0 && performance.now() - began > APPLY_BUDGET_MS) break;
      var event;
      try {
        event = JSON.parse(batch[i]);
      } catch (notJson) {
        continue;
      }
      var previous = known.get(event.id);
      if (matchesTaskFilter(event.task)) countTransition(previous, event.state);
      if (known.size >= KNOWN_MAX) {
        known.clear();
        lastEvents.clear();
      }
      known.set(event.id, event.state);
      lastEvents.set(event.id, event);
      if (previous !== event.state && t.isTerminal(event.state)) finished.push(event);
      var entry = rows.get(event.id);
      if (!entry && previous === undefined && event.state === "QUEUED" && takesNewTasks(event)) {
        entry = newEntry({ id: event.id, task: event.task, state: "QUEUED", retries: 0 });
        fresh.push(entry);
      }
      if (entry) {
        merge(entry.doc, event);
        if (entry.cells) changed.add(entry);
        if (view.state && event.state !== view.state) membershipChanged = true;
      } else if (view.state && event.state === view.state && view.page === 1 && matchesTaskFilter(event.task)) {
        membershipChanged = true; // a task entered this tab's state
      }
    }
    pending = batch.slice(i);
    applied.events += i;
    applied.frames += 1;
    applied.largestBatch = Math.max(applied.largestBatch, i);
    if (fresh.length) queueFresh(fresh);
    buildFresh(budgeted ? FRESH_PER_FRAME : PAGE_SIZE);
    if (pending.length || unbuilt.length) scheduleFlush();
    var now = Date.now();
    changed.forEach(function (entry) {
      if (rows.get(entry.doc.id) === entry) drawRow(entry, now);
    });
    drawCounts();
    if (membershipChanged && view.page === 1) refreshSoon();
    if (finished.length) {
      finishedListeners.forEach(function (listener) {
        listener(finished);
      });
    }
  }

  function refreshSoon() {
    if (refreshTimer) return;
    var wait = Math.max(0, lastRefreshAt + REFRESH_MIN_MS - Date.now());
    refreshTimer = window.setTimeout(function () {
      refreshTimer = null;
      load({ quiet: true });
    }, wait);
  }

  // ---- the stream --------------------------------------------------------------------

  function connect() {
    var url = "/api/tasks/events";
    if (stream.lastId) url += "?last_event_id=" + encodeURIComponent(stream.lastId);
    var source = new EventSource(url);
    stream.source = source;
    source.addEventListener("open", function () {
      var resumed = stream.retryMs !== RECONNECT_MIN_MS || stream.reconnecting;
      stream.retryMs = RECONNECT_MIN_MS;
      stream.reconnecting = false;
      drawLiveStatus();
      if (firstRead()) return;
      // Whatever the stream could not replay is read again.
      if (resumed) load({ quiet: true });
    });
    source.addEventListener("task", function (event) {
      if (event.lastEventId) stream.lastId = event.lastEventId;
      pending.push(event.data);
      stream.changes += 1;
      countsState.lastEventAt = Date.now();
      countsState.eventsSinceRead += 1;
      scheduleFlush();
    });
    source.addEventListener("error", function () {
      // Reconnect here rather than leave it to the browser, which gives up for
      // good on an answer such as 429 or 503; resume after the last event applied.
      source.close();
      if (stream.source !== source) return;
      firstRead(); // the page shows its tasks even while the stream is down
      stream.reconnecting = true;
      t.setText(t.$("#live-status"), "The task stream was interrupted; reconnecting…");
      stream.timer = window.setTimeout(connect, stream.retryMs);
      stream.retryMs = Math.min(stream.retryMs * 2, RECONNECT_MAX_MS);
    });
  }

  // The first page is read once the stream is open: the server opens it at the end of
  // the task stream, so a change made before that is in the read, one after it in the
  // stream. Read as the stream was being asked for, a task submitted between the read's
  // answer and the stream's opening was in neither.
  function firstRead() {
    if (stream.firstReadAsked) return false;
    stream.firstReadAsked = true;
    load();
    return true;
  }

  function drawLiveStatus() {
    if (stream.reconnecting) return;
    var rate = stream.changes;
    stream.changes = 0;
    t.setText(
      t.$("#live-status"),
      "Live: following every task" + (rate ? " (" + t.count(rate) + " changes in the last second)." : ".")
    );
  }

  function tick() {
    var now = Date.now();
    rows.forEach(function (entry) {
      if (entry.cells && RUNNING_STATES.indexOf(entry.doc.state) !== -1) {
        t.setText(entry.cells.runTime, t.runTime(entry.doc, now));
      }
    });
    if (stream.source && stream.source.readyState === EventSource.OPEN) drawLiveStatus();
    if (!document.hidden && countsDue(now)) readCounts();
  }

  // ---- reading a page --------------------------------------------------------------

  function query(cursor) {
    var params = new URLSearchParams();
    if (view.state) params.set("state", view.state);
    if (view.task) params.set("task", view.task);
    if (view.q) params.set("q", view.q);
    if (cursor) params.set("cursor", cursor);
    params.set("limit", String(PAGE_SIZE));
    return "/api/tasks?" + params.toString();
  }

  function load(options) {
    var quiet = options && options.quiet;
    var seq = ++loadSeq;
    lastRefreshAt = Date.now();
    var status = t.$("#task-list-status");
    var table = t.$("#task-table");
    if (!quiet) {
      t.setText(status, "Loading…");
      table.setAttribute("aria-busy", "true");
    }
    return t.api("GET", query(view.cursor)).then(function (answer) {
      if (seq !== loadSeq) return;
      table.setAttribute("aria-busy", "false");
      if (!answer.ok) {
        var error = t.errorOf(answer);
        if (error.field === "q") showSearchError(error.message);
        t.setText(status, "Tasks could not be read: " + error.message);
        return;
      }
      showSearchError(null);
      var docs = answer.body.tasks || [];
      docs.forEach(function (doc) {
        if (!known.has(doc.id)) known.set(doc.id, doc.state);
      });
      view.next = answer.body.next_cursor || null;
      var newer = view.page === 1 ? rowsNewerThanRead(seq, docs) : [];
      // The rows still to be built are in newer, in the answer, or no longer belong on
      // the page: the rows shown are replaced either way.
      unbuilt = [];
      if (view.page === 1) shifted = newer.length > 0;
      showRows(newer.concat(docs).slice(0, PAGE_SIZE));
      setCounts(answer.body.counts);
      drawPager();
      t.setText(status, quiet ? status.textContent.replace(/^Loading…$/, "") : "");
    });
  }

  // The live rows added while read number seq was on its way and missing from its
  // answer, newest first: the read was served before their tasks were submitted,
  // and their first event has passed, so nothing else would bring them back.
  function rowsNewerThanRead(seq, docs) {
    var inAnswer = new Set(
      docs.map(function (doc) {
        return doc.id;
      })
    );
    var newer = [];
    // Rows not built yet are newer than every row shown.
    for (var i = unbuilt.length - 1; i >= 0; i--) {
      var waiting = unbuilt[i];
      if (waiting.addedDuringRead >= seq && !inAnswer.has(waiting.doc.id)) newer.push(waiting.doc);
    }
    Array.prototype.forEach.call(tbody.children, function (tr) {
      var entry = rows.get(tr.dataset.taskId);
      if (entry && entry.addedDuringRead >= seq && !inAnswer.has(entry.doc.id)) newer.push(entry.doc);
    });
    return newer;
  }

  function drawPager() {
    t.$("#page-newer").disabled = view.page === 1;
    t.$("#page-older").disabled = !(view.next || (view.page === 1 && shifted));
    var filters = [];
    if (view.state) filters.push(view.state);
    if (view.task) filters.push(view.task);
    if (view.q) filters.push("id " + view.q + "…");
    t.setText(
      t.$("#task-page-label"),
      "Page " + view.page + (view.page === 1 ? ", newest, live" : "") + (filters.length ? " · " + filters.join(", ") : "")
    );
  }

  function resetPaging() {
    view.cursor = null;
    view.next = null;
    view.stack = [];
    view.page = 1;
  }

  function goNewer() {
    if (view.page === 1) return;
    view.cursor = view.stack.pop() || null;
    view.page -= 1;
    load();
  }

  function goOlder() {
    var go = function (nextCursor) {
      if (!nextCursor) return;
      view.stack.push(view.cursor);
      view.cursor = nextCursor;
      view.page += 1;
      load();
    };
    if (view.page === 1 && shifted) {
      // Rows were added live, so the first read's cursor no longer follows the
      // last row shown: read the first page again for a cursor that does.
      t.api("GET", query(null)).then(function (answer) {
        if (answer.ok) go(answer.body.next_cursor);
      });
      return;
    }
    go(view.next);
  }

  // ---- controls --------------------------------------------------------------------

  function tabs() {
    return t.$all("#state-tabs [role=tab]");
  }

  function selectTab(tab, focus) {
    tabs().forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      other.tabIndex = selected ? 0 : -1;
    });
    t.$("#task-panel").setAttribute("aria-labelledby", tab.id);
    if (focus) tab.focus();
    if (view.state === tab.dataset.state) return;
    view.state = tab.dataset.state;
    resetPaging();
    rememberView();
    load();
  }

  // Arrow keys move along the tabs and choose one, as in any tab list.
  function onTabKey(event) {
    var all = tabs();
    var index = all.indexOf(document.activeElement);
    if (index === -1) return;
    var target = null;
    if (event.key === "ArrowRight") target = all[(index + 1) % all.length];
    if (event.key === "ArrowLeft") target = all[(index - 1 + all.length) % all.length];
    if (event.key === "Home") target = all[0];
    if (event.key === "End") target = all[all.length - 1];
    if (!target) return;
    event.preventDefault();
    selectTab(target, true);
  }

  function showSearchError(message) {
    var box = t.$("#task-search-error");
    var input = t.$("#task-search");
    t.setText(box, message || "");
    t.show(box, Boolean(message));
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  var searchTimer = null;

  function applySearch() {
    window.clearTimeout(searchTimer);
    var q = t.$("#task-search").value.trim();
    if (q === view.q) return;
    view.q = q;
    resetPaging();
    rememberView();
    load();
  }

  // The view is part of the address, so a reload or a shared link shows the same list.
  function rememberView() {
    var url = new URL(window.location.href);
    [
      ["state", view.state],
      ["task", view.task],
      ["q", view.q],
    ].forEach(function (pair) {
      if (pair[1]) url.searchParams.set(pair[0], pair[1]);
      else url.searchParams.delete(pair[0]);
    });
    window.history.replaceState(null, "", url);
  }

  function restoreView() {
    var params = new URL(window.location.href).searchParams;
    var state = params.get("state") || "";
    var tab = tabs().filter(function (candidate) {
      return candidate.dataset.state === state;
    })[0];
    if (tab) {
      view.state = state;
      selectTab(tab, false);
    }
    var task = params.get("task") || "";
    var filter = t.$("#task-filter");
    if (task && Array.prototype.some.call(filter.options, function (option) { return option.value === task; })) {
      filter.value = task;
      view.task = task;
    }
    view.q = (params.get("q") || "").trim();
    t.$("#task-search").value = view.q;
  }

  function revoke(button) {
    var tr = button.closest("tr.task-row");
    var status = t.$("#task-list-status");
    t.setText(status, "Revoking " + tr.dataset.taskId.slice(0, 8) + "…");
    t.api("DELETE", "/api/tasks/" + encodeURIComponent(tr.dataset.taskId)).then(function (answer) {
      if (!answer.ok) {
        t.setText(status, t.errorOf(answer).message);
        return;
      }
      t.setText(status, "Revoked " + answer.body.id.slice(0, 8) + ".");
      noteTask(answer.body);
      // The button is gone with the task's end; the row's link keeps the keyboard's place.
      if (document.activeElement === document.body || document.activeElement === button) {
        var link = tr.querySelector("a[data-field='link']");
        if (link && tr.isConnected) link.focus();
      }
    });
  }

  // ---- for the rest of the page ----------------------------------------------------

  // A task this page just submitted, revoked or replayed: shown at once, without
  // waiting for its first event. Its state only moves forward from what the
  // stream already said.
  function noteTask(doc) {
    var previous = known.get(doc.id);
    var entry = rows.get(doc.id);
    if (previous === undefined) {
      if (matchesTaskFilter(doc.task)) countTransition(undefined, "QUEUED");
      known.set(doc.id, "QUEUED");
      previous = "QUEUED";
      drawCounts();
    }
    if (doc.state !== previous && t.isTerminal(doc.state)) {
      if (matchesTaskFilter(doc.task)) countTransition(previous, doc.state);
      known.set(doc.id, doc.state);
      drawCounts();
    }
    var current = known.get(doc.id);
    if (entry) {
      Object.keys(doc).forEach(function (key) {
        if (key !== "state" && key !== "links" && doc[key] != null) entry.doc[key] = doc[key];
      });
      entry.doc.state = current;
      if (entry.cells) drawRow(entry, Date.now());
      return;
    }
    var copy = {};
    Object.keys(doc).forEach(function (key) {
      if (key !== "links") copy[key] = doc[key];
    });
    copy.state = current;
    if (!takesNewTasks(copy)) return;
    queueFresh([newEntry(copy)]);
    // Shown at once unless older new rows wait ahead of it: it goes above them.
    if (unbuilt.length === 1) buildFresh(1);
    else scheduleFlush();
  }

  function markDeadLetters(ids) {
    var now = Date.now();
    ids.forEach(function (id) {
      var entry = rows.get(id);
      if (entry && entry.cells && !entry.doc.dead_letter) {
        entry.doc.dead_letter = true;
        drawRow(entry, now);
      }
    });
  }

  function onFinished(listener) {
    finishedListeners.push(listener);
  }

  function start() {
    restoreView();
    t.$("#state-tabs").addEventListener("click", function (event) {
      var tab = event.target.closest("[role=tab]");
      if (tab) selectTab(tab, false);
    });
    t.$("#state-tabs").addEventListener("keydown", onTabKey);
    t.$("#task-filter").addEventListener("change", function (event) {
      view.task = event.currentTarget.value;
      resetPaging();
      rememberView();
      counts = {};
      drawCounts();
      load();
    });
    t.$("#task-filter-form").addEventListener("submit", function (event) {
      event.preventDefault();
      applySearch();
    });
    t.$("#task-search").addEventListener("input", function () {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(applySearch, SEARCH_DELAY_MS);
    });
    t.$("#page-newer").addEventListener("click", goNewer);
    t.$("#page-older").addEventListener("click", goOlder);
    tbody.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action='revoke']");
      if (button) revoke(button);
    });
    window.addEventListener("pagehide", function () {
      if (stream.source) stream.source.close();
      window.clearTimeout(stream.timer);
      stream.source = null;
    });
    // The stream first; the first read follows once it is open (firstRead).
    connect();
    window.setInterval(tick, TICK_MS);
  }

  t.taskTable = { noteTask: noteTask, markDeadLetters: markDeadLetters, onFinished: onFinished, applied: applied };
  start();
})();
