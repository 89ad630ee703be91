// Comparison page charts (Chart.js from static/vendor): a bar chart per metric across the compared versions,
// and one metric's history across every version of the first model, with the production pointer's changes marked.
// The data comes from the page (json_script "compare-data"); without this script the tables still show everything.
(function () {
  "use strict";
  const source = document.getElementById("compare-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const css = getComputedStyle(document.documentElement);
  const cssColor = function (name, fallback) { return css.getPropertyValue(name).trim() || fallback; };
  const VERDICT = {
    better: cssColor("--better", "#137a3a"),
    worse: cssColor("--worse", "#b42318"),
    same: cssColor("--neutral", "#5b7fc7"),
    neutral: cssColor("--neutral", "#5b7fc7"),
    baseline: cssColor("--baseline", "#9aa5b1"),
  };
  const STAGE = {
    draft: cssColor("--draft", "#6b7785"),
    staging: cssColor("--staging", "#b25e09"),
    production: cssColor("--production", "#137a3a"),
    archived: cssColor("--archived", "#8a6f9e"),
  };
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;

  const format = function (value) { return Number(value).toPrecision(6).replace(/\.?0+(e|$)/, "$1"); };

  // One bar chart per metric: the baseline grey, the others coloured by the quality rule's direction.
  document.querySelectorAll("canvas.metric-bars").forEach(function (canvas) {
    const metric = data.metrics[Number(canvas.dataset.metricIndex)];
    const colours = metric.values.map(function (_, index) {
      return index === data.baseline ? VERDICT.baseline : (VERDICT[metric.verdicts[index]] || VERDICT.neutral);
    });
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.columns.map(function (column) { return column.label; }),
        datasets: [{ label: metric.name, data: metric.values, backgroundColor: colours, maxBarThickness: 48 }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (ctx) { return metric.name + ": " + format(ctx.parsed.y); } } },
        },
        scales: { x: { ticks: { autoSkip: false, maxRotation: 30 } }, y: { ticks: { callback: format } } },
      },
    });
  });

  // The history chart: x is the registration time (a linear axis of milliseconds, so no date adapter is needed).
  const history = data.history;
  const canvas = document.getElementById("history-chart");
  const select = document.getElementById("history-metric");
  if (!history || !history.default || !canvas) return;

  const times = history.points.map(function (p) { return p.t; }).concat(history.markers.map(function (m) { return m.t; }));
  const span = Math.max.apply(null, times) - Math.min.apply(null, times);
  const pad = Math.max(span * 0.03, 60 * 1000);
  // Tick labels in UTC, as precise as the span needs: seconds within an hour, minutes within two days, else days.
  const tickLabel = function (value) {
    const iso = new Date(value).toISOString();
    if (span < 3600 * 1000) return iso.slice(11, 19);
    return span < 2 * 86400 * 1000 ? iso.slice(5, 10) + " " + iso.slice(11, 16) : iso.slice(0, 10);
  };

  // Vertical dashed lines where the production pointer moved (promotions, rollbacks, retirements).
  const pointerChanges = {
    id: "pointerChanges",
    afterDatasetsDraw: function (chart, _args, options) {
      const area = chart.chartArea;
      const x = chart.scales.x;
      const ctx = chart.ctx;
      ctx.save();
      ctx.font = "11px " + Chart.defaults.font.family;
      (options.markers || []).forEach(function (marker, index) {
        const left = x.getPixelForValue(marker.t);
        if (left < area.left || left > area.right) return;
        ctx.strokeStyle = marker.kind === "promotion" ? STAGE.production : VERDICT.worse;
        ctx.fillStyle = ctx.strokeStyle;
        ctx.setLineDash([5, 4]);
        ctx.beginPath();
        ctx.moveTo(left, area.top);
        ctx.lineTo(left, area.bottom);
        ctx.stroke();
        ctx.textAlign = left > area.right - 120 ? "right" : "left";
        ctx.fillText(marker.label, left + (ctx.textAlign === "left" ? 4 : -4), area.top + 12 + (index % 3) * 13);
      });
      ctx.restore();
    },
  };

  const series = function (metric) {
    return history.points
      .filter(function (p) { return Object.prototype.hasOwnProperty.call(p.values, metric); })
      .map(function (p) { return { x: p.t, y: p.values[metric], number: p.number, stage: p.stage, chosen: p.chosen }; });
  };

  const chart = new Chart(canvas, {
    type: "line",
    data: {
      datasets: [{
        label: history.default,
        data: series(history.default),
        borderColor: "#c5ccd6",
        borderWidth: 1.5,
        pointBackgroundColor: function (ctx) { return ctx.raw ? STAGE[ctx.raw.stage] || STAGE.draft : STAGE.draft; },
        pointBorderColor: function (ctx) { return ctx.raw && ctx.raw.chosen ? "#1f2933" : "#ffffff"; },
        pointRadius: function (ctx) { return ctx.raw && ctx.raw.chosen ? 7 : 4; },
        pointHoverRadius: 8,
      }],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      layout: { padding: { top: 8 } },
      scales: {
        x: { type: "linear", min: Math.min.apply(null, times) - pad, max: Math.max.apply(null, times) + pad, ticks: { callback: tickLabel, maxTicksLimit: 8 }, title: { display: true, text: "registered (UTC)" } },
        y: { ticks: { callback: format } },
      },
      plugins: {
        legend: { display: false },
        pointerChanges: { markers: history.markers },
        tooltip: {
          callbacks: {
            title: function (items) { return "v" + items[0].raw.number + " (" + items[0].raw.stage + ")"; },
            label: function (ctx) { return ctx.dataset.label + ": " + format(ctx.raw.y) + " · registered " + new Date(ctx.raw.x).toISOString().slice(0, 16).replace("T", " ") + " UTC"; },
          },
        },
      },
    },
    plugins: [pointerChanges],
  });

  if (select) {
    select.addEventListener("change", function () {
      chart.data.datasets[0].label = select.value;
      chart.data.datasets[0].data = series(select.value);
      chart.update();
    });
  }
})();
