// The lineage graph: draws the nodes and edges the page passes through json_script ("lineage-data") with
// cytoscape (static/vendor). Clicking a version or dataset opens its page. The table under the graph lists the
// same nodes, so nothing depends on this script.
(function () {
  "use strict";
  const holder = document.getElementById("lineage-graph");
  const source = document.getElementById("lineage-data");
  if (!holder || !source || typeof window.cytoscape !== "function") return;
  const data = JSON.parse(source.textContent);
  const css = getComputedStyle(document.documentElement);
  function colour(name, fallback) { return (css.getPropertyValue(name) || "").trim() || fallback; }
  const stages = {
    draft: colour("--draft", "#6b7785"),
    staging: colour("--staging", "#b25e09"),
    production: colour("--production", "#137a3a"),
    archived: colour("--archived", "#8a6f9e"),
  };

  function text(node) {
    return node.kind === "version" ? node.label + "\n" + node.stage : node.label;
  }
  function width(label) {
    const longest = Math.max.apply(null, label.split("\n").map(function (line) { return line.length; }));
    return Math.max(60, Math.min(260, longest * 6.6 + 18));
  }

  // A layered layout: every edge points down. cytoscape's own breadthfirst layout with `maximal: true` fails on
  // 3.35 (it sorts a level that still holds null placeholders), and plain breadthfirst puts a version and its
  // parent on one level when both read the same dataset.
  function layered(nodes, edges) {
    const incoming = {}, outgoing = {}, rank = {}, size = {};
    nodes.forEach(function (node) { incoming[node.id] = []; outgoing[node.id] = []; size[node.id] = width(text(node)); });
    edges.forEach(function (edge) { outgoing[edge.source].push(edge.target); incoming[edge.target].push(edge.source); });
    // rank = longest path from a source (Kahn's order); the graph is acyclic, leftovers (none expected) go on top
    const waiting = {}, queue = [];
    nodes.forEach(function (node) { waiting[node.id] = incoming[node.id].length; rank[node.id] = 0; if (!waiting[node.id]) queue.push(node.id); });
    while (queue.length) {
      const id = queue.shift();
      outgoing[id].forEach(function (next) {
        rank[next] = Math.max(rank[next], rank[id] + 1);
        if (--waiting[next] === 0) queue.push(next);
      });
    }
    // sources (datasets, code, environments, the oldest versions) sit just above the first node they feed
    nodes.forEach(function (node) {
      if (!incoming[node.id].length && outgoing[node.id].length) {
        rank[node.id] = Math.min.apply(null, outgoing[node.id].map(function (id) { return rank[id]; })) - 1;
      }
    });
    const levels = [];
    nodes.forEach(function (node) { (levels[rank[node.id] + 1] = levels[rank[node.id] + 1] || []).push(node.id); });
    const rows = levels.filter(Boolean);
    // order each level by the mean position of its neighbours above, then below (barycentre sweeps)
    const position = {};
    function index(row) { row.forEach(function (id, i) { position[id] = i / Math.max(1, row.length - 1); }); }
    rows.forEach(index);
    function sweep(row, neighbours) {
      const score = {};
      row.forEach(function (id) {
        const near = neighbours[id].filter(function (other) { return other in position; });
        score[id] = near.length ? near.reduce(function (sum, other) { return sum + position[other]; }, 0) / near.length : position[id];
      });
      row.sort(function (a, b) { return score[a] - score[b] || (a < b ? -1 : 1); });
      index(row);
    }
    for (let round = 0; round < 4; round++) {
      for (let i = 1; i < rows.length; i++) sweep(rows[i], incoming);
      for (let i = rows.length - 2; i >= 0; i--) sweep(rows[i], outgoing);
    }
    // place: levels top to bottom; a very wide level (a big fan-out) wraps onto several lines
    const perLine = 12, gapX = 28, lineHeight = 64, gapY = 44, points = {};
    let y = 0;
    rows.forEach(function (row) {
      for (let start = 0; start < row.length; start += perLine) {
        const line = row.slice(start, start + perLine);
        const total = line.reduce(function (sum, id) { return sum + size[id]; }, 0) + gapX * (line.length - 1);
        let x = -total / 2;
        line.forEach(function (id) { points[id] = { x: x + size[id] / 2, y: y }; x += size[id] + gapX; });
        y += lineHeight;
      }
      y += gapY;
    });
    return points;
  }
  const points = layered(data.nodes, data.edges);
  // fit the box to the drawing: small lineages need no 560 px of empty space
  const ys = Object.keys(points).map(function (id) { return points[id].y; });
  const drawn = ys.length ? Math.max.apply(null, ys) - Math.min.apply(null, ys) : 0;
  holder.style.height = Math.max(220, Math.min(640, drawn + 140)) + "px";

  const elements = [];
  data.nodes.forEach(function (node) {
    const label = text(node);
    elements.push({
      group: "nodes",
      data: Object.assign({}, node, { display: label, w: width(label), h: label.indexOf("\n") >= 0 ? 38 : 26 }),
      classes: [node.kind, node.direction, node.url ? "link" : ""].join(" "),
      position: points[node.id],
    });
  });
  data.edges.forEach(function (edge) {
    // code and environment edges need no words: the node's shape and colour say what it is
    const quiet = edge.label === "code" || edge.label === "environment";
    elements.push({ group: "edges", data: Object.assign({}, edge, { text: quiet ? "" : edge.label }), classes: edge.indirect ? "indirect" : "" });
  });
  const labelEdges = data.edges.length <= 30;  // past that, repeated words only clutter; the table has them

  const style = [
    { selector: "node", style: {
      "label": "data(display)", "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
      "font-size": 11, "font-family": "system-ui, sans-serif", "width": "data(w)", "height": "data(h)",
      "shape": "round-rectangle", "background-color": "#eef1f5", "border-width": 1, "border-color": "#c5ccd6", "color": "#1f2933",
    } },
    { selector: "node.dataset", style: { "shape": "barrel", "background-color": "#e8eefc", "border-color": "#2457c5", "color": "#1d3d80" } },
    { selector: "node.code", style: { "shape": "cut-rectangle", "background-color": "#f3f0fa", "border-color": "#8a6f9e" } },
    { selector: "node.environment", style: { "shape": "rectangle", "background-color": "#fff8e6", "border-color": "#c27803" } },
    { selector: "node.version", style: { "color": "#fff", "font-weight": 600, "border-width": 0 } },
    { selector: "node.self", style: { "border-width": 4, "border-color": "#1b2430", "font-size": 12 } },
    { selector: "edge", style: {
      "curve-style": "bezier", "width": 1.5, "line-color": "#9aa5b1", "target-arrow-color": "#9aa5b1",
      "target-arrow-shape": "triangle", "arrow-scale": 0.9,
    } },
    { selector: "edge.indirect", style: { "line-style": "dashed" } },
    { selector: "node.link:active, node.link.hover", style: { "overlay-opacity": 0.12, "overlay-color": "#2457c5" } },
  ];
  Object.keys(stages).forEach(function (stage) {
    style.push({ selector: 'node.version[stage = "' + stage + '"]', style: { "background-color": stages[stage] } });
  });
  if (labelEdges) {
    style.push({ selector: "edge", style: {
      "label": "data(text)", "font-size": 9, "color": "#6b7785", "text-rotation": "autorotate",
      "text-background-color": "#fff", "text-background-opacity": 0.85, "text-background-padding": 1,
    } });
  }

  const cy = window.cytoscape({
    container: holder,
    elements: elements,
    style: style,
    minZoom: 0.05,
    maxZoom: 2.5,
    layout: { name: "preset", fit: true, padding: 24 },
  });
  if (cy.zoom() > 1.4) { cy.zoom(1.4); cy.center(); }
  cy.on("tap", "node", function (event) {
    const url = event.target.data("url");
    if (url) window.location.assign(url);
  });
  cy.on("mouseover", "node", function (event) {
    event.target.addClass("hover");
    holder.style.cursor = event.target.data("url") ? "pointer" : "default";
  });
  cy.on("mouseout", "node", function (event) {
    event.target.removeClass("hover");
    holder.style.cursor = "";
  });
  window.lineageGraph = cy;  // for the browser console and tests
})();
