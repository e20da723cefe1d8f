// FlowMonkey explorer: the little behaviour htmx does not give (no inline scripts: the
// pages' Content-Security-Policy allows scripts from /ui/static only).
(function () {
  "use strict";
  // A form with data-confirm asks before it is sent (htmx's hx-confirm does the same for
  // htmx requests; this covers plain forms, which work without htmx too).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !form.hasAttribute("hx-post")) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    }
  }, true);
  // A range input with data-target-output shows its value next to it while it moves.
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (input instanceof HTMLInputElement && input.type === "range" && input.dataset.output) {
      var out = document.getElementById(input.dataset.output);
      if (out) { out.textContent = input.value; }
    }
  });
})();
