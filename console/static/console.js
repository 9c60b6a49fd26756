// Switchyard console: the little the pages need beyond htmx. No inline
// script anywhere (the Content-Security-Policy forbids it); event data
// never reaches innerHTML here: the server renders and escapes it.
(function () {
  "use strict";

  var colors = {
    accepted: "#2e8b57", duplicate: "#8a8f98", rejected: "#c0392b",
    delivered: "#2e8b57", failed: "#d68910", dead: "#c0392b"
  };

  // Draw the charts of a part of the page: each .chart holds its data
  // in data-chart, {"x": [unix seconds], "series": {name: [counts]}}.
  function drawCharts(root) {
    if (typeof uPlot === "undefined") { return; }
    var els = (root || document).querySelectorAll(".chart[data-chart]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i], data;
      try { data = JSON.parse(el.getAttribute("data-chart")); } catch (e) { continue; }
      var names = Object.keys(data.series || {}).sort();
      var series = [{}], rows = [data.x];
      for (var j = 0; j < names.length; j++) {
        series.push({ label: names[j], stroke: colors[names[j]] || "#2456c9", width: 2, points: { show: false } });
        rows.push(data.series[names[j]]);
      }
      el.textContent = "";
      var width = Math.max(240, el.clientWidth || el.parentNode.clientWidth || 400);
      new uPlot({ width: width, height: 170, series: series, axes: [{}, { size: 40 }], legend: { live: false },
                  cursor: { drag: { x: false, y: false } } }, rows, el);
    }
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawCharts(e.target); });
  document.addEventListener("htmx:sseMessage", function (e) { drawCharts(e.target); });

  // "/" jumps to the first filter, as in most consoles.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) { return; }
    var t = e.target && e.target.tagName;
    if (t === "INPUT" || t === "TEXTAREA" || t === "SELECT") { return; }
    var first = document.querySelector("form.filters input, form.filters select, form.playground input[name=event]");
    if (first) { e.preventDefault(); first.focus(); }
  });

})();
