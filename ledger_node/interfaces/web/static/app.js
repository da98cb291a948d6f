// meterledger node screens: small progressive enhancements, no framework.
// Countdowns: <span class="countdown" data-until="UNIX_SECONDS" data-closed="TEXT">.
(function () {
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var left = Math.floor(Number(el.dataset.until) - now);
      if (left <= 0) { el.textContent = el.dataset.closed || "0:00:00"; return; }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = h + ":" + pad(m) + ":" + pad(s);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
// File inputs with data-max-bytes: a file over the limit is refused before it is sent,
// with the input's data-too-large text in its form's [data-file-error] element (the node
// refuses such a body at the door anyway, with a page that says less).
(function () {
  function check(input) {
    var file = input.files && input.files[0];
    var tooLarge = file && file.size > Number(input.dataset.maxBytes);
    var text = tooLarge ? input.dataset.tooLarge : "";
    input.setCustomValidity(text);
    input.setAttribute("aria-invalid", tooLarge ? "true" : "false");
    var out = input.parentNode.querySelector("[data-file-error]");
    if (out) { out.textContent = text; }
    return !tooLarge;
  }
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("input[type=file][data-max-bytes]")) { check(e.target); }
  });
  document.addEventListener("submit", function (e) {
    e.target.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
      if (!check(input)) { e.preventDefault(); }
    });
  });
})();
