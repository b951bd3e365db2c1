// The chat room's composer helpers: "@" offers colleagues by name (arrow keys, Enter/Tab,
// Esc), Enter sends and Shift+Enter adds a line, and the small formatting bar. Loaded after
// chat.js on the room page, which hands over the composer (`Kollegium.chat`); without
// JavaScript the composer is a plain form.
(function () {
  "use strict";

  var K = window.Kollegium;
  var chat = K && K.chat;
  if (!chat || !chat.area) {
    return;
  }
  var api = K.api;
  var area = chat.area;
  var composer = chat.composer;
  var me = chat.me;
  var showError = chat.showError;
  var saveDraft = chat.saveDraft;

  // ---- "@" offers colleagues -------------------------------------------------------------

  var picker = document.getElementById("mention-picker");
  var people = null;
  var choices = [];
  var active = 0;

  function loadPeople() {
    if (people) {
      return Promise.resolve(people);
    }
    return api("GET", "/api/chat/members").then(function (r) {
      people = r.members.filter(function (p) { return p.id !== me; });
      people.push({ id: 0, username: "alle", name: "Alle im Raum", roles: [] });
      return people;
    });
  }

  function mentionQuery() {
    var before = area.value.slice(0, area.selectionStart);
    var m = /(^|\s)@([^\s@]{0,40})$/.exec(before);
    return m ? m[2] : null;
  }

  function closePicker() {
    picker.hidden = true;
    choices = [];
    area.removeAttribute("aria-activedescendant");
    area.setAttribute("aria-expanded", "false");
  }

  function matches(p, q) {
    if (!q) {
      return true;
    }
    q = q.toLowerCase();
    if (p.username.toLowerCase().indexOf(q) === 0) {
      return true;
    }
    return p.name.toLowerCase().split(/[\s.\-]+/).some(function (w) { return w.indexOf(q) === 0; });
  }

  function showPicker() {
    picker.textContent = "";
    choices.forEach(function (p, i) {
      var li = document.createElement("li");
      li.id = "mention-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === active ? "true" : "false");
      var name = document.createElement("strong");
      name.textContent = p.name;
      li.appendChild(name);
      li.appendChild(document.createTextNode(" @" + p.username + (p.roles && p.roles.length ? " · " + p.roles.join(", ") : "")));
      li.addEventListener("mousedown", function (e) {
        e.preventDefault();
        choose(p);
      });
      picker.appendChild(li);
    });
    picker.hidden = choices.length === 0;
    area.setAttribute("aria-expanded", choices.length ? "true" : "false");
    if (choices.length) {
      area.setAttribute("aria-activedescendant", "mention-" + active);
    }
  }

  function choose(p) {
    var caret = area.selectionStart;
    var before = area.value.slice(0, caret).replace(/@([^\s@]{0,40})$/, "@" + p.username + " ");
    area.value = before + area.value.slice(caret);
    area.setSelectionRange(before.length, before.length);
    closePicker();
    saveDraft();
    area.focus();
  }

  function updatePicker() {
    var q = mentionQuery();
    if (q === null) {
      closePicker();
      return;
    }
    loadPeople().then(function (all) {
      if (mentionQuery() !== q) {
        return;
      }
      choices = all.filter(function (p) { return matches(p, q); }).slice(0, 8);
      active = 0;
      showPicker();
    }).catch(showError);
  }

  area.setAttribute("aria-autocomplete", "list");
  area.setAttribute("aria-controls", "mention-picker");
  area.addEventListener("input", updatePicker);
  area.addEventListener("blur", function () { setTimeout(closePicker, 150); });
  area.addEventListener("keydown", function (e) {
    if (!picker.hidden && choices.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        active = (active + (e.key === "ArrowDown" ? 1 : choices.length - 1)) % choices.length;
        showPicker();
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        choose(choices[active]);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        closePicker();
        return;
      }
    }
    // Enter sends, Shift+Enter adds a line.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      composer.requestSubmit();
    }
  });

  // ---- the formatting bar ------------------------------------------------------------------

  var bar = document.getElementById("format-bar");
  if (bar) {
    bar.hidden = false;
    bar.addEventListener("click", function (e) {
      var b = e.target.closest("button");
      if (!b) {
        return;
      }
      var s = area.selectionStart, t = area.selectionEnd, v = area.value;
      var insert;
      if (b.dataset.wrap) {
        insert = b.dataset.wrap + v.slice(s, t) + b.dataset.wrap;
        area.value = v.slice(0, s) + insert + v.slice(t);
        var at = s === t ? s + b.dataset.wrap.length : s + insert.length;
        area.setSelectionRange(at, at);
      } else {
        insert = (s > 0 && !/\s/.test(v.charAt(s - 1)) ? " " : "") + b.dataset.insert;
        area.value = v.slice(0, s) + insert + v.slice(t);
        area.setSelectionRange(s + insert.length, s + insert.length);
      }
      area.focus();
      saveDraft();
      updatePicker();
    });
  }
})();
