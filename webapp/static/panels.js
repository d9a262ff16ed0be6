// Two read-only panels of the dashboard: the workers, from their liveness beacons
// (GET /api/workers), and per task name the last hour's throughput, drawn as an
// inline SVG bar chart, with wait and run time percentiles (GET /api/tasks/stats).
// Both are read again every few seconds while the tab is visible: the server
// keeps the figures, so the page only draws them.
(function () {
  "use strict";

  var t = window.taskrelay;
  var WORKERS_INTERVAL_MS = 5000;
  var STATS_INTERVAL_MS = 15000;
  var STATS_WINDOW_S = 3600;
  // The throughput chart's size in SVG user units (pixels at 1:1).
  var CHART = { width: 360, height: 90, left: 30, bottom: 16, top: 6 };

  // ---- workers -------------------------------------------------------------------

  function workerRow(worker, now) {
    var row = document.createElement("tr");
    row.dataset.worker = worker.name;
    row.dataset.alive = worker.alive ? "true" : "false";
    var name = document.createElement("th");
    name.scope = "row";
    name.textContent = worker.name;
    var queues = document.createElement("td");
    queues.textContent = (worker.queues || []).join(", ");
    var running = document.createElement("td");
    running.className = "number";
    running.textContent = worker.running == null ? "" : String(worker.running);
    // Alive or not, then how long ago it beat; the time itself is the element's title.
    var beat = document.createElement("td");
    beat.className = "beat";
    var mark = document.createElement("span");
    mark.className = worker.alive ? "worker-alive" : "worker-stale";
    mark.textContent = worker.alive ? "alive" : "stopped beating";
    var beatAt = t.timeOf(worker.last_beat);
    var beatTime = t.timeElement(worker.last_beat);
    if (beatAt != null) beatTime.textContent = t.duration(Math.max(0, now - beatAt)) + " ago";
    beat.append(mark, ", ", beatTime);
    row.append(name, queues, running, beat);
    return row;
  }

  function refreshWorkers() {
    return t.api("GET", "/api/workers").then(function (answer) {
      var empty = t.$("#worker-empty");
      if (!answer.ok) {
        t.setText(empty, answer.status === 404 ? "Workers are not listed by this server." : t.errorOf(answer).message);
        t.show(empty, true);
        return;
      }
      var workers = answer.body.workers || [];
      var now = Date.now();
      var rows = t.$("#worker-rows");
      rows.replaceChildren.apply(
        rows,
        workers.map(function (worker) {
          return workerRow(worker, now);
        })
      );
      t.setText(empty, "No worker has sent a beacon lately.");
      t.show(empty, workers.length === 0);
    });
  }

  // ---- per-task throughput and latency ------------------------------------------------

  function throughputChart(stats, windowS, bucketS, captionId) {
    var width = CHART.width;
    var plotWidth = width - CHART.left;
    var plotHeight = CHART.height - CHART.bottom - CHART.top;
    var slots = Math.max(1, Math.round(windowS / bucketS));
    var slotWidth = plotWidth / slots;
    var end = Math.floor(Date.now() / 1000 / bucketS) * bucketS + bucketS; // end of this minute
    var start = end - slots * bucketS;
    var peak = 1;
    stats.throughput.forEach(function (bucket) {
      peak = Math.max(peak, (bucket.succeeded || 0) + (bucket.failed || 0));
    });
    var chart = t.svg("svg", {
      class: "throughput",
      role: "img",
      "aria-labelledby": captionId,
      viewBox: "0 0 " + width + " " + CHART.height,
      preserveAspectRatio: "xMidYMid meet",
    });
    var baseline = CHART.top + plotHeight;
    chart.append(
      t.svg("line", { x1: CHART.left, y1: baseline, x2: width, y2: baseline, class: "axis" }),
      t.svg("text", { x: CHART.left - 4, y: CHART.top + 8, class: "label end" }, String(peak)),
      t.svg("text", { x: CHART.left - 4, y: baseline, class: "label end" }, "0"),
      t.svg("text", { x: CHART.left, y: CHART.height - 3, class: "label" }, "-" + Math.round(windowS / 60) + " min"),
      t.svg("text", { x: width, y: CHART.height - 3, class: "label end" }, "now")
    );
    stats.throughput.forEach(function (bucket) {
      var at = t.timeOf(bucket.at);
      if (at == null) return;
      var slot = Math.floor((at / 1000 - start) / bucketS);
      if (slot < 0 || slot >= slots) return;
      var x = CHART.left + slot * slotWidth + 0.5;
      var barWidth = Math.max(1, slotWidth - 1);
      var succeeded = ((bucket.succeeded || 0) / peak) * plotHeight;
      var failed = ((bucket.failed || 0) / peak) * plotHeight;
      var group = t.svg("g", { class: "bucket" });
      group.appendChild(t.svg("title", {}, t.clock(bucket.at) + ": " + (bucket.succeeded || 0) + " succeeded, " + (bucket.failed || 0) + " failed"));
      if (succeeded > 0) {
        group.appendChild(t.svg("rect", { x: x, y: baseline - succeeded, width: barWidth, height: succeeded, class: "bar-succeeded" }));
      }
      if (failed > 0) {
        group.appendChild(t.svg("rect", { x: x, y: baseline - succeeded - failed, width: barWidth, height: failed, class: "bar-failed" }));
      }
      chart.appendChild(group);
    });
    return chart;
  }

  function percentileTable(name, stats) {
    var table = document.createElement("table");
    table.className = "percentiles";
    var caption = document.createElement("caption");
    caption.textContent = "Wait and run time of " + name;
    caption.className = "visually-hidden";
    var head = document.createElement("tr");
    ["", "p50", "p95", "p99"].forEach(function (text, index) {
      var th = document.createElement("th");
      th.scope = "col";
      if (index === 0) {
        var hidden = document.createElement("span");
        hidden.className = "visually-hidden";
        hidden.textContent = "Time";
        th.appendChild(hidden);
      } else {
        th.textContent = text;
      }
      head.appendChild(th);
    });
    var thead = document.createElement("thead");
    thead.appendChild(head);
    var tbody = document.createElement("tbody");
    [
      ["Wait", stats.wait_ms],
      ["Run", stats.run_ms],
    ].forEach(function (pair) {
      var row = document.createElement("tr");
      row.dataset.measure = pair[0].toLowerCase();
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = pair[0];
      row.appendChild(th);
      ["p50", "p95", "p99"].forEach(function (key) {
        var td = document.createElement("td");
        td.className = "number";
        var value = pair[1] ? pair[1][key] : null;
        td.textContent = value == null ? "–" : t.duration(value);
        row.appendChild(td);
      });
      tbody.appendChild(row);
    });
    table.append(caption, thead, tbody);
    return table;
  }

  function taskChart(name, stats, index, windowS, bucketS) {
    var figure = document.createElement("figure");
    figure.className = "task-chart";
    figure.dataset.task = name;
    var captionId = "task-chart-" + index + "-caption";
    var succeeded = 0;
    var failed = 0;
    stats.throughput.forEach(function (bucket) {
      succeeded += bucket.succeeded || 0;
      failed += bucket.failed || 0;
    });
    var caption = document.createElement("figcaption");
    caption.id = captionId;
    var title = document.createElement("strong");
    title.textContent = name;
    caption.append(
      title,
      ": " + t.count(succeeded) + " succeeded, " + t.count(failed) + " failed in the last " +
        Math.round(windowS / 60) + " minutes, per minute"
    );
    figure.append(caption, throughputChart(stats, windowS, bucketS, captionId), percentileTable(name, stats));
    return figure;
  }

  function refreshStats() {
    return t.api("GET", "/api/tasks/stats?window=" + STATS_WINDOW_S).then(function (answer) {
      var empty = t.$("#charts-empty");
      if (!answer.ok) {
        t.setText(empty, answer.status === 404 ? "Task statistics are not kept by this server." : t.errorOf(answer).message);
        t.show(empty, true);
        return;
      }
      var body = answer.body;
      var windowS = body.window_s || STATS_WINDOW_S;
      var bucketS = body.bucket_s || 60;
      var names = Object.keys(body.tasks || {}).sort();
      var holder = t.$("#task-charts");
      holder.replaceChildren.apply(
        holder,
        names.map(function (name, index) {
          var stats = body.tasks[name];
          stats.throughput = stats.throughput || [];
          return taskChart(name, stats, index, windowS, bucketS);
        })
      );
      t.setText(empty, "No task finished in the last " + Math.round(windowS / 60) + " minutes.");
      t.show(empty, names.length === 0);
    });
  }

  // ---- polling while visible ------------------------------------------------------------

  function poll(read, intervalMs) {
    var next = function () {
      window.setTimeout(run, intervalMs);
    };
    var run = function () {
      if (document.hidden) {
        next();
        return;
      }
      read().then(next, next);
    };
    run();
  }

  if (t.$("#worker-rows")) poll(refreshWorkers, WORKERS_INTERVAL_MS);
  if (t.$("#task-charts")) poll(refreshStats, STATS_INTERVAL_MS);
})();
