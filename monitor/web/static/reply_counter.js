// Live character count for reply boxes with a platform limit (data-max-length); the server checks again.
(function () {
  "use strict";
  function bind(counter) {
    var box = document.getElementById(counter.getAttribute("data-for"));
    var used = counter.querySelector(".used");
    if (!box || !used) return;
    var max = parseInt(box.getAttribute("data-max-length"), 10);
    function update() {
      // Count code points, as the platforms do, not UTF-16 units.
      var n = Array.from(box.value).length;
      used.textContent = String(n);
      counter.classList.toggle("over", n > max);
    }
    box.addEventListener("input", update);
    update();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".char-count[data-for]").forEach(bind);
  });
})();
