// Lethe web UI: the one script. Pages work without it; it only keeps the training
// progress of a model page current while a job runs (polls a JSON view, then reloads
// once the job ends so the stage grid shows the result).
(function () {
  "use strict";
  var POLL_MS = 3000;

  function poll(section) {
    var url = section.getAttribute("data-poll-url");
    var bar = section.querySelector("[data-progress-bar]");
    function set(name, value) {
      var el = section.querySelector('[data-field="' + name + '"]');
      if (el && value !== null && value !== undefined) { el.textContent = String(value); }
    }
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (body) {
          var job = body.job;
          if (!job) { return; }
          set("stages_done", job.stages_done);
          set("stages_total", job.stages_total);
          set("status", job.status);
          if (job.current_loss !== null) { set("current_loss", job.current_loss.toFixed(4)); }
          if (bar) {
            bar.max = Math.max(job.stages_total, 1);
            bar.value = job.stages_done;
            bar.textContent = job.percent + "%";
          }
          section.setAttribute("data-status", job.status);
          if (job.active) {
            window.setTimeout(tick, POLL_MS);
          } else {
            window.location.reload();
          }
        })
        .catch(function () { window.setTimeout(tick, POLL_MS * 4); });
    }
    window.setTimeout(tick, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var sections = document.querySelectorAll("[data-poll-url]");
    for (var i = 0; i < sections.length; i++) { poll(sections[i]); }
  });
})();
