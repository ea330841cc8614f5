// secfoundry UI: small progressive enhancements only (the pages work without JavaScript).
(function () {
  "use strict";
  // Job pages: reload while a job is queued or running.
  var auto = document.querySelector("[data-autorefresh]");
  if (auto) {
    var secs = parseFloat(auto.getAttribute("data-autorefresh")) || 2;
    setTimeout(function () { window.location.reload(); }, secs * 1000);
  }
  // Technique chips on a report page: clicking one highlights only its spans.
  document.querySelectorAll("[data-technique-chip]").forEach(function (chip) {
    chip.addEventListener("click", function (ev) {
      if (ev.target.tagName === "A") { return; }
      var tid = chip.getAttribute("data-technique-chip");
      var on = !chip.classList.contains("sel");
      document.querySelectorAll("[data-technique-chip]").forEach(function (c) { c.classList.remove("sel"); });
      document.querySelectorAll("mark.span").forEach(function (m) {
        var ids = (m.getAttribute("data-techniques") || "").split(" ");
        m.classList.toggle("dim", on && ids.indexOf(tid) < 0);
      });
      if (on) { chip.classList.add("sel"); }
    });
  });
})();
