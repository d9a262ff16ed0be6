// The workflow view: the workflow's steps drawn as an SVG graph (boxes coloured by
// state, an arrow from each step to the steps that wait on it), kept live over
// Server-Sent Events (GET /api/workflows/<id>/events). Plain browser JavaScript
// with no dependencies; data is only ever inserted as text, never as markup.
(function () {
  "use strict";

  // The helpers every dashboard page shares (common.js, loaded first).
  var svg = window.taskrelay.svg;
  var setText = window.taskrelay.setText;
  // A box's size and the gaps between boxes, in SVG user units (pixels).
  var BOX_WIDTH = 150;
  var BOX_HEIGHT = 44;
  var COLUMN_GAP = 50;
  var ROW_GAP = 14;
  var MARGIN = 8;
  var OUTCOMES = ["SUCCESS", "FAILURE", "REVOKED"];
  var RECONNECT_MS = 2000;

  var workflowId = document.body.dataset.workflowId;
  var base = "/api/workflows/" + encodeURIComponent(workflowId);
  var graph = document.getElementById("workflow-graph");
  var shown = null; // the workflow document drawn last

  // Each step's column: one past the furthest step it waits on, so a chain runs
  // left to right and a group's steps stand in one column before their callback.
  function columnsOf(steps) {
    var column = {};
    steps.forEach(function (step) {
      var deepest = -1;
      step.depends_on.forEach(function (dep) {
        deepest = Math.max(deepest, column[dep] === undefined ? 0 : column[dep]);
      });
      column[step.index] = deepest + 1;
    });
    return column;
  }

  function layout(steps) {
    var column = columnsOf(steps);
    var rows = {};
    var place = {};
    steps.forEach(function (step) {
      var col = column[step.index];
      var row = rows[col] || 0;
      rows[col] = row + 1;
      place[step.index] = {
        x: MARGIN + col * (BOX_WIDTH + COLUMN_GAP),
        y: MARGIN + row * (BOX_HEIGHT + ROW_GAP),
      };
    });
    var columns = Object.keys(rows).length;
    var tallest = 0;
    Object.keys(rows).forEach(function (col) {
      tallest = Math.max(tallest, rows[col]);
    });
    return {
      place: place,
      width: 2 * MARGIN + columns * BOX_WIDTH + Math.max(0, columns - 1) * COLUMN_GAP,
      height: 2 * MARGIN + tallest * BOX_HEIGHT + Math.max(0, tallest - 1) * ROW_GAP,
    };
  }

  function stepLabel(step) {
    return "Step " + step.index + ", " + step.task;
  }

  function drawGraph(doc) {
    var shape = layout(doc.steps);
    graph.setAttribute("viewBox", "0 0 " + shape.width + " " + shape.height);
    graph.setAttribute("width", shape.width);
    graph.setAttribute("height", shape.height);
    var marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
    marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }));
    var defs = svg("defs", {});
    defs.appendChild(marker);
    var parts = [defs];
    doc.steps.forEach(function (step) {
      var to = shape.place[step.index];
      step.depends_on.forEach(function (dep) {
        var from = shape.place[dep];
        if (!from) return;
        var x1 = from.x + BOX_WIDTH;
        var y1 = from.y + BOX_HEIGHT / 2;
        var x2 = to.x;
        var y2 = to.y + BOX_HEIGHT / 2;
        var bend = (x2 - x1) / 2;
        parts.push(
          svg("path", {
            d: "M" + x1 + "," + y1 + " C" + (x1 + bend) + "," + y1 + " " + (x2 - bend) + "," + y2 + " " + x2 + "," + y2,
            class: "step-edge",
            "marker-end": "url(#arrow)",
            "data-from": dep,
            "data-to": step.index,
          })
        );
      });
    });
    doc.steps.forEach(function (step) {
      var at = shape.place[step.index];
      var box = svg("g", { class: "step-box", "data-step": step.index, "data-state": step.state || "" });
      box.appendChild(svg("title", {}, stepLabel(step) + ": " + step.state));
      box.appendChild(svg("rect", { x: at.x, y: at.y, width: BOX_WIDTH, height: BOX_HEIGHT, rx: 4 }));
      box.appendChild(svg("text", { x: at.x + 8, y: at.y + 18, "data-field": "task" }, "#" + step.index + " " + step.task));
      box.appendChild(svg("text", { x: at.x + 8, y: at.y + 35, "data-field": "state" }, step.state));
      parts.push(box);
    });
    graph.replaceChildren.apply(graph, parts);
    setText(
      document.getElementById("workflow-graph-caption"),
      "The workflow's " + doc.steps.length + " steps as a graph: " +
        doc.steps
          .map(function (step) {
            return "#" + step.index + " " + step.task + " " + step.state;
          })
          .join("; ") +
        "."
    );
  }

  function drawTable(doc) {
    var body = document.getElementById("workflow-steps");
    body.replaceChildren.apply(
      body,
      doc.steps.map(function (step) {
        var row = document.createElement("tr");
        row.dataset.step = step.index;
        var head = document.createElement("th");
        head.scope = "row";
        head.textContent = "#" + step.index;
        var task = document.createElement("td");
        task.textContent = step.task;
        var deps = document.createElement("td");
        deps.textContent = step.depends_on.length
          ? step.depends_on.map(function (dep) {
              return "#" + dep;
            }).join(", ")
          : "–";
        var state = document.createElement("td");
        var badge = document.createElement("span");
        badge.className = "state";
        badge.dataset.state = step.state || "";
        badge.textContent = step.state;
        state.appendChild(badge);
        var id = document.createElement("td");
        var link = document.createElement("a");
        link.href = "/api/tasks/" + encodeURIComponent(step.task_id);
        link.textContent = step.task_id.slice(0, 8);
        link.setAttribute("aria-label", "Task document of step " + step.index);
        id.appendChild(link);
        row.append(head, task, deps, state, id);
        return row;
      })
    );
  }

  function drawSummary(doc) {
    var state = document.getElementById("workflow-state");
    state.dataset.state = doc.state;
    setText(state, doc.state);
    setText(document.getElementById("workflow-progress"), doc.steps_finished + " of " + doc.steps_total + " steps finished");
  }

  function applyWorkflow(doc) {
    shown = doc;
    drawSummary(doc);
    drawGraph(doc);
    drawTable(doc);
  }

  function applyStep(step) {
    if (!shown) return;
    shown.steps[step.index] = step;
    drawGraph(shown);
    drawTable(shown);
  }

  function follow() {
    var status = document.getElementById("workflow-status");
    var source = new EventSource(base + "/events");
    source.addEventListener("open", function () {
      setText(status, "Live.");
    });
    source.addEventListener("workflow", function (event) {
      var doc = JSON.parse(event.data);
      applyWorkflow(doc);
      if (OUTCOMES.indexOf(doc.state) !== -1) {
        // The stream ends with the workflow; do not let the browser reopen it.
        source.close();
        setText(status, "Finished: " + doc.state + ".");
      }
    });
    source.addEventListener("step", function (event) {
      applyStep(JSON.parse(event.data));
    });
    source.addEventListener("error", function () {
      if (shown && OUTCOMES.indexOf(shown.state) !== -1) return;
      source.close();
      // The stream's first event is the whole document, so a new stream misses nothing.
      fetch(base, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(
        function (response) {
          if (response.status === 404) {
            setText(status, "No such workflow (or its record expired).");
            return;
          }
          if (response.status === 401 && document.body.dataset.readsNeedToken === "true") {
            window.location.assign(document.body.dataset.signInUrl);
            return;
          }
          setText(status, "Disconnected; reconnecting…");
          window.setTimeout(follow, RECONNECT_MS);
        },
        function () {
          setText(status, "The server cannot be reached; reconnecting…");
          window.setTimeout(follow, RECONNECT_MS);
        }
      );
    });
    current = source;
  }

  var current = null; // the open stream
  window.addEventListener("pagehide", function () {
    if (current) current.close();
  });
  follow();
})();
