// genreg UI: the only script. Enables "Compare selected" once exactly two runs are ticked.
// Everything works without it (the form submits the ticked runs; the server checks there are two).
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
