// The audience of a segment, counted as its criteria change. A file of its own: the
// Content-Security-Policy allows no inline script. The answer is built with DOM methods
// (textContent), never as HTML.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    var output = document.getElementById("segment-audience");
    if (!output) { return; }
    var form = output.closest("form");
    var button = document.getElementById("segment-audience-count");
    var timer = null;
    var latest = 0;

    function show(lines) {
      output.replaceChildren();
      var list = document.createElement("ul");
      lines.forEach(function (line) {
        var item = document.createElement("li");
        item.textContent = line;
        list.appendChild(item);
      });
      output.appendChild(list);
    }

    function count() {
      var params = new URLSearchParams(new FormData(form));
      params.delete("csrfmiddlewaretoken");
      var ticket = ++latest;
      output.setAttribute("aria-busy", "true");
      fetch(output.dataset.url + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json().then(function (body) { return [response.ok, body]; }); })
        .then(function (answer) {
          if (ticket !== latest) { return; }
          var ok = answer[0], body = answer[1];
          if (!ok) {
            var problems = [];
            Object.keys(body.errors || {}).forEach(function (field) {
              problems.push(field + ": " + body.errors[field].join(" "));
            });
            show(problems.length ? problems : ["These criteria cannot be counted."]);
            return;
          }
          show(body.audience.map(function (row) {
            return row.purpose + ": " + row.customers.toLocaleString() + (row.customers === 1 ? " customer" : " customers");
          }));
        })
        .catch(function () { if (ticket === latest) { show(["Could not count the audience (connection lost?)."]); } })
        .finally(function () { output.removeAttribute("aria-busy"); });
    }

    function soon() {
      clearTimeout(timer);
      timer = setTimeout(count, 400);
    }
    form.addEventListener("change", soon);
    form.addEventListener("input", soon);
    if (button) { button.addEventListener("click", count); }
    count();
  });
})();
