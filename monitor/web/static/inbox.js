// Keyboard triage: j/k move, enter/o open, a assign, r reply, ctrl+enter send, d dismiss.
(function () {
  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  function focusField(id) {
    var el = document.getElementById(id);
    if (!el) return;
    el.focus();
    if (el.tagName === "TEXTAREA") el.setSelectionRange(el.value.length, el.value.length);
  }
  // The default send action of the reply form: post where the platform allows it, else record.
  function sendReply() {
    var form = document.getElementById("reply-form");
    if (!form) return;
    var button = document.getElementById("post-reply") || document.getElementById("mark-replied");
    if (form.requestSubmit) form.requestSubmit(button); else button.click();
  }
  document.addEventListener("DOMContentLoaded", function () {
    // One submit per form: a double click must not post a reply twice.
    Array.prototype.forEach.call(document.querySelectorAll("form[method=post]"), function (form) {
      form.addEventListener("submit", function () {
        setTimeout(function () {
          Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = true; });
        }, 0);
      });
    });
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
    var reply = document.getElementById("reply-text");
    if (reply) {
      reply.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendReply(); }
        else if (e.key === "Escape") { reply.blur(); }
      });
    }
    var assignee = document.getElementById("assign-user");
    if (assignee && assignee.tagName === "SELECT") {
      // A select does not submit its form on Enter by itself.
      assignee.addEventListener("keydown", function (e) {
        if (e.key === "Enter") { e.preventDefault(); document.getElementById("assign-form").requestSubmit(); }
      });
    }
    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      var detail = document.querySelector("article.detail");
      if (e.key === "j") { select(index + 1); e.preventDefault(); }
      else if (e.key === "k") { select(index - 1); e.preventDefault(); }
      else if ((e.key === "Enter" || e.key === "o") && index >= 0 && items.length) {
        window.location.href = items[index].getAttribute("data-href");
      } else if (detail && e.key === "a") { focusField("assign-user"); e.preventDefault(); }
      else if (detail && e.key === "r") { focusField("reply-text"); e.preventDefault(); }
      else if (detail && e.key === "n") { focusField("note-text"); e.preventDefault(); }
      else if (detail && e.key === "d" && document.getElementById("dismiss-form")) {
        if (window.confirm("Dismiss this item? It needs no reply.")) document.getElementById("dismiss-form").submit();
      }
      else if (detail && e.key === "u") { window.location.href = "/"; }
      else if (!detail && index >= 0 && items.length && (e.key === "a" || e.key === "r" || e.key === "d")) {
        window.location.href = items[index].getAttribute("data-href") + "#" + e.key;
      }
    });
    if (document.querySelector("article.detail") && window.location.hash) {
      var key = window.location.hash.slice(1);
      if (key === "a") focusField("assign-user");
      if (key === "r") focusField("reply-text");
    }
  });
})();
