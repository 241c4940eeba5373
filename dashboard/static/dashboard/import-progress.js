// Follows a running import: asks for its progress every second and updates the bar; reloads
// the page once it has finished, to show the outcome. A file of its own: the CSP allows no inline script.
(function () {
  "use strict";
  function start() {
    var box = document.getElementById("import-progress");
    if (!box) { return; }
    var bar = document.getElementById("import-bar");
    var percent = document.getElementById("import-percent");
    var step = document.getElementById("import-step");
    var status = document.getElementById("import-status");
    function poll() {
      fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (job) {
          bar.value = job.percent;
          bar.textContent = job.percent + "%";
          percent.textContent = job.percent;
          step.textContent = job.step;
          status.textContent = job.status_label;
          if (job.finished) { location.reload(); } else { setTimeout(poll, 1000); }
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    setTimeout(poll, 1000);
  }
  if (document.readyState !== "loading") { start(); } else { document.addEventListener("DOMContentLoaded", start); }
})();
