// Keyboard triage: j/k move, enter/o open, a assign, r reply, d dismiss.
(function () {
  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var items = Array.prototype.slice.call(document.querySelectorAll("#items .item"));
    var index = items.length ? 0 : -1;
    function select(i) {
      if (!items.length) return;
      index = Math.max(0, Math.min(items.length - 1, i));
      items.forEach(function (el) { el.classList.remove("selected"); });
      items[index].classList.add("selected");
      items[index].scrollIntoView({ block: "nearest" });
    }
    if (items.length) select(0);
    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      var detail = document.querySelector("article.detail");
      if (e.key === "j") { select(index + 1); e.preventDefault(); }
      else if (e.key === "k") { select(index - 1); e.preventDefault(); }
      else if ((e.key === "Enter" || e.key === "o") && index >= 0 && items.length) {
        window.location.href = items[index].getAttribute("data-href");
      } else if (detail && e.key === "a") { document.getElementById("assign-user").focus(); e.preventDefault(); }
      else if (detail && e.key === "r") { document.getElementById("reply-text").focus(); e.preventDefault(); }
      else if (detail && e.key === "d") { document.getElementById("dismiss-form").submit(); }
      else if (!detail && index >= 0 && items.length && (e.key === "a" || e.key === "r" || e.key === "d")) {
        window.location.href = items[index].getAttribute("data-href") + "#" + e.key;
      }
    });
    if (document.querySelector("article.detail") && window.location.hash) {
      var key = window.location.hash.slice(1);
      if (key === "a") document.getElementById("assign-user").focus();
      if (key === "r") document.getElementById("reply-text").focus();
    }
  });
})();
