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
