// genreg UI: the only script. Enables "Compare selected" once exactly two runs are ticked, and
// reloads a compare page whose CIs/p-values are still being computed once they are stored.
// Everything works without it (the form submits the ticked runs; the server checks there are
// two; a manual reload shows the finished statistics).
(function () {
  "use strict";
  var pending = document.getElementById("stats-pending");
  if (!pending) return;
  var url = pending.getAttribute("data-status");
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (j) { if (j.ready) { location.reload(); } else { setTimeout(poll, 1000); } })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
(function () {
  "use strict";
  var form = document.getElementById("compare-form");
  if (!form) return;
  var btn = document.getElementById("compare-btn");
  var hint = document.getElementById("compare-hint");
  function update() {
    var ticked = form.querySelectorAll('input[name="run"]:checked');
    btn.disabled = ticked.length !== 2;
    hint.textContent = ticked.length === 2 ? "Compare the two ticked runs (older one is the base)."
      : ticked.length > 2 ? "Tick exactly two runs." : "Tick two runs, then compare them (" + ticked.length + " of 2).";
    form.querySelectorAll("tbody tr").forEach(function (tr) {
      var cb = tr.querySelector('input[name="run"]');
      if (cb) tr.classList.toggle("picked", cb.checked);
    });
  }
  form.addEventListener("change", update);
  update();
})();
