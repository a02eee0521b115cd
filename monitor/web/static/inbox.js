// Keyboard triage: j/k move, x tick, enter/o open, a assign, r reply, ctrl+enter send, d dismiss.
// Also: SLA clocks that keep counting without a reload, bulk selection, the filters disclosure.
(function () {
  // The server's duration format (monitor.queue.metrics.human_minutes): "< 1 min", "25 min", "3.5 h", "2.1 d".
  function humanMinutes(minutes) {
    minutes = Math.max(minutes, 0);
    if (minutes < 0.5) return "< 1 min";
    if (Math.round(minutes) < 60) return Math.round(minutes) + " min";
    if (minutes < 24 * 60 - 3) return (minutes / 60).toFixed(1) + " h";
    return (minutes / (24 * 60)).toFixed(1) + " d";
  }
  var DUE_SOON_MINUTES = 60;  // monitor.queue.items.DUE_SOON
  function refreshClocks() {
    Array.prototype.forEach.call(document.querySelectorAll(".sla time[datetime]"), function (el) {
      var due = Date.parse(el.getAttribute("datetime"));
      if (isNaN(due)) return;
      var minutes = (due - Date.now()) / 60000;
      var status = minutes < 0 ? "overdue" : (minutes < DUE_SOON_MINUTES ? "due_soon" : "on_time");
      el.textContent = minutes < 0 ? humanMinutes(-minutes) + " overdue" : "due in " + humanMinutes(minutes);
      var pill = el.parentNode;
      ["overdue", "due_soon", "on_time"].forEach(function (s) { pill.classList.toggle("sla-" + s, s === status); });
      var card = pill.closest(".item, article.detail");
      if (card) ["overdue", "due_soon", "on_time"].forEach(function (s) { card.classList.toggle("sla-" + s, s === status); });
    });
  }
  function bindBulk() {
    var form = document.getElementById("bulk-form");
    if (!form) return null;
    var boxes = Array.prototype.slice.call(document.querySelectorAll("#items input.pick"));
    var all = document.getElementById("pick-all");
    var label = document.getElementById("picked");
    var buttons = form.querySelectorAll("button[name=action]");
    all.parentNode.hidden = false;
    form.classList.add("js");  // a phone folds the actions away until something is selected
    function update() {
      var n = boxes.filter(function (b) { return b.checked; }).length;
      label.textContent = n ? n + (n === 1 ? " item selected" : " items selected") : "Select items to act on several at once";
      form.classList.toggle("has-picks", n > 0);
      all.checked = n > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = n === 0; });
    }
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      update();
    });
    update();
    return function toggle(item) {
      var box = item && item.querySelector("input.pick");
      if (box) { box.checked = !box.checked; update(); }
    };
  }
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
    refreshClocks();
    setInterval(refreshClocks, 30000);
    var more = document.getElementById("more-filters");
    if (more && window.matchMedia("(min-width: 700px)").matches) more.open = true;  // a phone keeps them folded
    // A changed filter applies at once (the Apply button is there without script).
    Array.prototype.forEach.call(document.querySelectorAll("#filters select"), function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
    var togglePick = bindBulk();
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
      else if (e.key === "x" && togglePick && index >= 0 && items.length) { togglePick(items[index]); e.preventDefault(); }
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
