// Live chat: enhances the server-rendered chat pages (they work without this script).
// Room page: opens at the newest message (or the first unread one), keeps the message box at
// the bottom, shows "↓ n neue Nachrichten" instead of moving the page while the reader is
// scrolled up; messages, edits, deletions, reactions and read receipts arrive over the
// page's one live channel (live.js); sending, reacting, editing and deleting use the JSON
// API; older messages load when scrolling up; replies and edits happen in place (the "@"
// picker, Enter to send and the formatting bar are in chat-composer.js). Room lists (overview and beside the room): unread and mention counts live.
(function () {
  "use strict";

  var K = window.Kollegium;
  var list = document.getElementById("messages");
  var roomList = document.getElementById("room-list");
  if (!K || !K.live || (!list && !roomList)) {
    return;
  }
  var api = K.api;
  var me = Number((list || roomList).dataset.me);
  var room = list ? Number(list.dataset.room) : 0;
  var admin = list ? list.dataset.admin === "true" : false;
  var editWindow = list ? Number(list.dataset.editWindow) : 0;
  var groupSecs = list ? Number(list.dataset.groupSecs || 300) : 300;
  var clockSkew = list ? Number(list.dataset.now) - Date.now() / 1000 : 0;
  var newest = list ? Number(list.dataset.newest) : 0;
  var template = document.getElementById("message-template");
  var status = document.getElementById("live-status");
  var pane = document.getElementById("chat-pane");
  var jump = document.getElementById("jump-new");
  var announce = document.getElementById("chat-announce");

  function showStatus(text) {
    if (!status) {
      return;
    }
    status.textContent = text || "";
    status.hidden = !text;
  }

  function showError(err) {
    if (status) {
      K.showError(status, err);
    }
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // Times as the server renders them: the practice's time zone (data-tz), German format,
  // "heute 14:05" and "gestern 17:03" for today and yesterday, else "06.12.2026, 14:05".
  var timeParts = (function () {
    var zone = list && list.dataset.tz ? list.dataset.tz : "Europe/Berlin";
    var options = {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23"
    };
    try {
      return new Intl.DateTimeFormat("de-DE", options);
    } catch (e) {
      options.timeZone = undefined;
      return new Intl.DateTimeFormat("de-DE", options);
    }
  })();

  function parts(t) {
    var p = {};
    timeParts.formatToParts(new Date(t * 1000)).forEach(function (x) {
      p[x.type] = x.value;
    });
    return {
      date: pad(Number(p.day)) + "." + pad(Number(p.month)) + "." + p.year,
      time: pad(Number(p.hour) % 24) + ":" + pad(Number(p.minute))
    };
  }

  function formatLocal(t) {
    var p = parts(t);
    return p.date + ", " + p.time;
  }

  function nowSecs() {
    return Date.now() / 1000 + clockSkew;
  }

  function formatRelative(t) {
    var p = parts(t), now = nowSecs();
    if (p.date === parts(now).date) {
      return "heute " + p.time;
    }
    if (p.date === parts(now - 86400).date) {
      return "gestern " + p.time;
    }
    return p.date + ", " + p.time;
  }

  // ---- scrolling -------------------------------------------------------------------------

  function atBottom() {
    return !pane || pane.scrollHeight - pane.scrollTop - pane.clientHeight < 48;
  }

  function toBottom() {
    if (pane) {
      pane.scrollTop = pane.scrollHeight;
    }
  }

  var unseen = 0;

  function showJump() {
    if (!jump) {
      return;
    }
    jump.querySelector(".count").textContent = unseen;
    jump.lastChild.textContent = unseen === 1 ? " neue Nachricht" : " neue Nachrichten";
    jump.hidden = unseen === 0;
  }

  // ---- room page -------------------------------------------------------------------------

  function lastId() {
    var items = list.querySelectorAll("li.message");
    var max = newest;
    for (var i = 0; i < items.length; i++) {
      max = Math.max(max, Number(items[i].dataset.id));
    }
    return max;
  }

  function initials(name) {
    var words = String(name || "").split(/\s+/).filter(function (w) {
      return w && w.charAt(w.length - 1) !== ".";
    });
    var first = function (w) {
      var m = /[\p{L}\p{N}]/u.exec(w);
      return m ? m[0].toUpperCase() : "";
    };
    var out = words.length ? first(words[0]) : "";
    if (words.length > 1) {
      out += first(words[words.length - 1]);
    }
    return out || "?";
  }

  function retarget(el, id) {
    el.querySelectorAll("form").forEach(function (f) {
      f.setAttribute("action", f.getAttribute("action").replace("/messages/0/", "/messages/" + id + "/"));
    });
    el.querySelectorAll("a.message-reply").forEach(function (a) {
      a.setAttribute("href", a.getAttribute("href").replace("reply=0", "reply=" + id));
    });
    el.querySelectorAll("textarea").forEach(function (t) {
      t.id = "edit-" + id;
    });
    el.querySelectorAll("label").forEach(function (l) {
      l.setAttribute("for", "edit-" + id);
    });
  }

  function reactionForm(pattern, id, r) {
    var f = pattern.cloneNode(true);
    f.setAttribute("action", "/chat/" + room + "/messages/" + id + "/react");
    f.querySelector('input[name="emoji"]').value = r.emoji;
    f.querySelector('input[name="on"]').value = r.mine ? "0" : "1";
    var b = f.querySelector("button");
    b.textContent = r.emoji + " " + r.count;
    b.className = "reaction" + (r.mine ? " mine" : "");
    var label = reactionLabel(r);
    b.setAttribute("aria-label", label);
    b.setAttribute("title", label);
    return f;
  }

  // The reactions' names in words, from the page ("👍=Daumen hoch;…").
  var reactionNames = {};
  (list.dataset.reactionNames || "").split(";").forEach(function (pair) {
    var i = pair.indexOf("=");
    if (i > 0) {
      reactionNames[pair.slice(0, i)] = pair.slice(i + 1);
    }
  });

  // As the server words it: "Daumen hoch, 2 Reaktionen, auch von Ihnen".
  function reactionLabel(r) {
    var name = reactionNames[r.emoji] || r.emoji;
    var count = r.count === 1 ? "1 Reaktion" : r.count + " Reaktionen";
    if (r.mine) {
      return name + ", " + count + (r.count === 1 ? ", von Ihnen" : ", auch von Ihnen");
    }
    return name + ", " + count;
  }

  // Builds the list item of a message from the page's pattern.
  function render(m) {
    var li = template.content.querySelector("li.message").cloneNode(true);
    li.id = "m" + m.id;
    li.dataset.id = m.id;
    li.dataset.author = m.author_id === null ? "0" : m.author_id;
    li.dataset.created = m.created_at;
    li.classList.toggle("mentioned", !!m.mentions_me);
    retarget(li, m.id);
    li.querySelector(".message-avatar").textContent = initials(m.author);
    li.querySelector(".message-author").textContent = m.author;
    var time = li.querySelector(".message-time");
    time.textContent = formatRelative(m.created_at);
    time.title = formatLocal(m.created_at);
    var meta = li.querySelector(".message-meta");
    if (m.mentions_me) {
      var badge = document.createElement("span");
      badge.className = "badge warn mention-badge";
      badge.title = "Sie wurden erwähnt";
      badge.textContent = "@";
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(badge);
    }
    if (m.edited) {
      var ed = document.createElement("span");
      ed.className = "muted message-edited";
      ed.textContent = "(bearbeitet)";
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(ed);
    }
    var main = li.querySelector(".message-main");
    if (m.deleted) {
      Array.prototype.slice.call(main.children, 1).forEach(function (c) { c.remove(); });
      var p = document.createElement("p");
      p.className = "muted message-deleted";
      p.textContent = "Nachricht gelöscht.";
      main.appendChild(p);
      return li;
    }
    var body = li.querySelector(".message-body");
    if (m.reply_excerpt !== null && m.reply_excerpt !== undefined) {
      var q = document.createElement("blockquote");
      q.className = "reply-quote";
      var who = document.createElement("strong");
      who.textContent = m.reply_author || "";
      q.appendChild(who);
      q.appendChild(document.createTextNode(": " + m.reply_excerpt));
      main.insertBefore(q, body);
    }
    // The server renders Markdown to a safe subset of HTML (no raw HTML, no scripts).
    body.innerHTML = m.html;
    var pattern = li.querySelector("details.message-react form");
    var reactions = li.querySelector(".message-reactions");
    m.reactions.forEach(function (r) {
      reactions.appendChild(reactionForm(pattern, m.id, r));
    });
    var own = m.author_id === me;
    var editable = own && m.created_at >= nowSecs() - editWindow;
    var edit = li.querySelector(".message-edit");
    if (edit) {
      if (editable) {
        edit.querySelector("textarea").value = m.body;
      } else {
        edit.remove();
      }
    }
    var del = li.querySelector(".message-delete");
    if (del && !(editable || admin)) {
      del.remove();
    }
    return li;
  }

  // Messages of one author within a few minutes form a group (no name, no avatar again).
  function regroup() {
    var prev = null;
    Array.prototype.forEach.call(list.children, function (li) {
      if (!li.classList.contains("message")) {
        prev = null;
        return;
      }
      var cont = prev !== null && li.dataset.author !== "0" &&
        li.dataset.author === prev.dataset.author &&
        Number(li.dataset.created) - Number(prev.dataset.created) <= groupSecs &&
        !li.querySelector(".message-deleted") && !prev.querySelector(".message-deleted") &&
        !li.querySelector(".message-main > .reply-quote");
      li.classList.toggle("continued", cont);
      prev = li;
    });
  }

  function plain(html) {
    var d = document.createElement("div");
    d.innerHTML = html;
    return (d.textContent || "").replace(/\s+/g, " ").trim();
  }

  function upsert(m, append) {
    if (m.room_id !== undefined && m.room_id !== room) {
      return;
    }
    var old = document.getElementById("m" + m.id);
    var li = render(m);
    if (old) {
      var wasOpen = old.querySelector("details[open]");
      if (wasOpen && !m.deleted) {
        return; // do not close a form the user is typing in; the next load shows it
      }
      old.replaceWith(li);
      regroup();
    } else if (append) {
      var stay = atBottom();
      var keep = pane ? pane.scrollTop : 0;
      list.appendChild(li);
      var empty = document.getElementById("no-messages");
      if (empty) {
        empty.remove();
      }
      newest = Math.max(newest, m.id);
      regroup();
      if (m.author_id === me || stay) {
        toBottom();
      } else {
        if (pane) {
          pane.scrollTop = keep;
        }
        unseen += 1;
        showJump();
      }
      if (m.author_id !== me && announce) {
        var text = plain(m.html);
        announce.textContent = "Neue Nachricht von " + m.author + ": " +
          (text.length > 140 ? text.slice(0, 140) + "…" : text);
      }
    }
  }

  function markDeleted(id) {
    var old = document.getElementById("m" + id);
    if (!old) {
      return;
    }
    upsert({
      id: id, room_id: room, author_id: Number(old.dataset.author),
      author: old.querySelector(".message-author").textContent,
      created_at: Number(old.dataset.created), deleted: true, edited: false,
      reactions: [], html: "", body: "", mentions_me: false
    }, false);
  }

  var readBy = document.getElementById("read-by");
  var readers = readBy && readBy.dataset.names ? readBy.dataset.names.split("\n") : [];

  function myLastId() {
    var mine = list.querySelectorAll('li.message[data-author="' + me + '"]');
    return mine.length ? Number(mine[mine.length - 1].dataset.id) : 0;
  }

  function showReaders() {
    if (!readBy) {
      return;
    }
    readBy.textContent = "Gelesen von " + readers.join(", ");
    readBy.hidden = readers.length === 0;
  }

  var lastRead = 0;

  // Whether the reader sees the newest messages of room `r` right now.
  function reading(r) {
    return !!list && r === room && document.visibilityState === "visible" && atBottom();
  }

  function markRead() {
    if (!list || !reading(room)) {
      return;
    }
    var upto = lastId();
    if (upto > lastRead && K.live.send({ type: "read", room: room, upto: upto })) {
      lastRead = upto;
    }
  }

  function onRoomEvent(ev) {
    if (ev.room !== room) {
      return;
    }
    switch (ev.type) {
      case "message":
        upsert(ev.message, true);
        if (ev.message.author_id === me) {
          readers = [];
          showReaders();
        }
        markRead();
        break;
      case "edited":
      case "reactions":
        upsert(ev.message, false);
        break;
      case "deleted":
        markDeleted(ev.message_id);
        break;
      case "read":
        if (ev.name && ev.member !== me && ev.upto >= myLastId() && myLastId() > 0 &&
            readers.indexOf(ev.name) < 0) {
          readers.push(ev.name);
          readers.sort();
          showReaders();
        }
        break;
      case "catchup":
        ev.messages.forEach(function (m) { upsert(m, true); });
        if (!ev.complete) {
          window.location.reload();
        }
        markRead();
        break;
      case "room":
        api("GET", "/api/chat/rooms/" + room).then(function (r) {
          var h = document.querySelector(".room-head h1");
          if (h && !r.direct) {
            h.textContent = "# " + r.title;
          }
          var t = document.getElementById("room-topic");
          if (t) {
            t.textContent = r.topic;
            t.hidden = !r.topic;
          }
        }).catch(function () {
          showStatus("Sie haben keinen Zugriff mehr auf diesen Raum.");
        });
        break;
      case "error":
        showStatus(ev.message);
        break;
    }
  }

  // ---- room lists (the overview, and beside the room) ------------------------------------

  function bump(el, by) {
    if (!el) {
      return;
    }
    var c = el.querySelector(".count");
    var n = Math.max(0, Number(c.textContent) + by);
    c.textContent = n;
    el.hidden = n === 0;
  }

  function showLast(li, m) {
    var last = li.querySelector(".room-last");
    if (!last) {
      if (list) {
        return; // beside the room: names only
      }
      last = document.createElement("span");
      last.className = "muted room-last";
      li.querySelector("a").appendChild(last);
    }
    var text = m.body.replace(/\s+/g, " ").replace(/[*_`#>]/g, "");
    last.textContent = m.author + ": " + (text.length > 80 ? text.slice(0, 80) + "…" : text);
  }

  function onListEvent(ev) {
    if (!roomList) {
      return;
    }
    var li = roomList.querySelector('li[data-room="' + ev.room + '"]');
    if (ev.type === "message" && li) {
      showLast(li, ev.message);
    }
    if (ev.type === "message" && ev.message.author_id !== me) {
      if (!li) {
        return; // a new room: shown at the next load
      }
      if (!reading(ev.room)) {
        bump(li.querySelector(".badge.unread"), 1);
        if (ev.message.mentions_me) {
          bump(li.querySelector(".badge.mentions"), 1);
        }
      }
      roomList.insertBefore(li, roomList.firstChild);
    } else if (ev.type === "read" && ev.member === me && li) {
      ["unread", "mentions"].forEach(function (k) {
        var b = li.querySelector(".badge." + k);
        b.querySelector(".count").textContent = "0";
        b.hidden = true;
      });
    }
  }

  // ---- the live channel --------------------------------------------------------------------

  K.live.reading = reading;
  K.live.on(function (ev) {
    switch (ev.type) {
      case "_open":
        showStatus("");
        if (list) {
          K.live.send({ type: "subscribe", room: room, after: lastId() });
        }
        return;
      case "_closed":
        if (ev.error) {
          showError(ev.error);
        } else {
          showStatus("Verbindung unterbrochen – neuer Versuch …");
        }
        return;
      case "resync":
        if (list) {
          K.live.send({ type: "subscribe", room: room, after: lastId() });
        }
        return;
    }
    if (list) {
      onRoomEvent(ev);
    }
    onListEvent(ev);
  });

  if (!list || !template) {
    return;
  }

  // ---- the composer ----------------------------------------------------------------------

  var composer = document.getElementById("composer");
  var area = composer ? composer.querySelector("textarea") : null;
  var draftKey = "kollegium.draft." + room;

  function saveDraft() {
    try {
      if (area.value) {
        window.localStorage.setItem(draftKey, area.value);
      } else {
        window.localStorage.removeItem(draftKey);
      }
    } catch (e) {
      // Storage may be off: the draft stays in the box.
    }
  }

  function setReply(id, author, excerpt) {
    var bar = document.getElementById("reply-bar");
    if (bar) {
      bar.remove();
    }
    if (!id) {
      return;
    }
    bar = document.createElement("div");
    bar.className = "reply-bar";
    bar.id = "reply-bar";
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "reply_to";
    input.value = id;
    var q = document.createElement("blockquote");
    q.className = "reply-quote";
    q.appendChild(document.createTextNode("Antwort an "));
    var who = document.createElement("strong");
    who.textContent = author;
    q.appendChild(who);
    q.appendChild(document.createTextNode(": " + excerpt));
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary";
    cancel.textContent = "Abbrechen";
    cancel.addEventListener("click", function () {
      setReply(null);
      area.focus();
    });
    bar.appendChild(input);
    bar.appendChild(q);
    bar.appendChild(cancel);
    composer.insertBefore(bar, composer.querySelector(".format-bar"));
  }

  function messagePath(action) {
    var m = /\/chat\/(\d+)\/messages\/(\d+)\/(\w+)$/.exec(action);
    return m ? { room: m[1], id: m[2], what: m[3] } : null;
  }

  function onSubmit(e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement)) {
      return;
    }
    var action = form.getAttribute("action") || "";
    var data = new FormData(form);
    var request = null;
    if (form.id === "composer") {
      var reply = data.get("reply_to");
      var body = { body: String(data.get("body") || "") };
      if (!body.body.trim()) {
        e.preventDefault();
        return;
      }
      if (reply) {
        body.reply_to = Number(reply);
      }
      request = api("POST", "/api/chat/rooms/" + room + "/messages", body).then(function (m) {
        area.value = "";
        saveDraft();
        setReply(null);
        upsert(m, true);
        toBottom();
      });
    } else {
      var p = messagePath(action);
      if (!p) {
        return;
      }
      var base = "/api/chat/rooms/" + p.room + "/messages/" + p.id;
      if (p.what === "react") {
        request = api("POST", base + "/reactions",
          { emoji: String(data.get("emoji")), on: data.get("on") !== "0" });
      } else if (p.what === "edit") {
        request = api("PATCH", base, { body: String(data.get("body") || "") });
      } else if (p.what === "delete") {
        request = api("DELETE", base);
      }
      if (request) {
        request = request.then(function (m) {
          form.closest("li.message").querySelectorAll("details[open]").forEach(function (d) {
            d.open = false;
          });
          if (m) {
            upsert(m, false);
          }
        });
      }
    }
    if (!request) {
      return;
    }
    e.preventDefault();
    request.then(function () { showStatus(""); }).catch(showError);
  }

  document.addEventListener("submit", onSubmit);

  // Replying in place; editing in place (the open form replaces the text, "Abbrechen" closes).
  list.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest("a.message-reply") : null;
    if (a && composer) {
      e.preventDefault();
      var li = a.closest("li.message");
      var text = plain(li.querySelector(".message-body").innerHTML);
      setReply(li.dataset.id, li.querySelector(".message-author").textContent,
        text.length > 80 ? text.slice(0, 80) + "…" : text);
      area.focus();
      return;
    }
    var cancel = e.target.closest ? e.target.closest(".edit-cancel") : null;
    if (cancel) {
      cancel.closest("details").open = false;
    }
  });
  list.addEventListener("toggle", function (e) {
    var d = e.target;
    if (d.classList && d.classList.contains("message-edit") && d.open) {
      d.querySelector(".edit-cancel").hidden = false;
      var t = d.querySelector("textarea");
      t.focus();
      t.setSelectionRange(t.value.length, t.value.length);
    }
  }, true);
  list.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      var open = e.target.closest ? e.target.closest("details[open]") : null;
      if (open) {
        open.open = false;
        open.querySelector("summary").focus();
      }
    }
  });

  // ---- older messages --------------------------------------------------------------------

  function loadOlder(link) {
    var first = list.querySelector("li.message");
    if (!first || link.dataset.loading) {
      return;
    }
    link.dataset.loading = "1";
    var height = pane.scrollHeight;
    var top = pane.scrollTop;
    api("GET", "/api/chat/rooms/" + room + "/messages?before=" + first.dataset.id).then(function (r) {
      for (var i = r.messages.length - 1; i >= 0; i--) {
        if (!document.getElementById("m" + r.messages[i].id)) {
          list.insertBefore(render(r.messages[i]), list.firstChild);
        }
      }
      regroup();
      pane.scrollTop = top + pane.scrollHeight - height;
      delete link.dataset.loading;
      if (!r.more) {
        link.parentNode.remove();
      } else {
        link.setAttribute("href", "/chat/" + room + "?before=" + list.querySelector("li.message").dataset.id);
      }
    }).catch(function (err) {
      delete link.dataset.loading;
      showError(err);
    });
  }

  var older = document.querySelector("#older a");
  if (older && pane) {
    older.addEventListener("click", function (e) {
      e.preventDefault();
      loadOlder(older);
    });
    pane.addEventListener("scroll", function () {
      if (pane.scrollTop < 200 && document.body.contains(older)) {
        loadOlder(older);
      }
    }, { passive: true });
  }

  // ---- opening the room ------------------------------------------------------------------

  if (pane) {
    pane.classList.add("js");
    pane.addEventListener("scroll", function () {
      if (atBottom() && unseen > 0) {
        unseen = 0;
        showJump();
      }
      markRead();
    }, { passive: true });
    var divider = document.getElementById("unread-divider");
    var target = /^#m\d+$/.test(location.hash) ? document.getElementById(location.hash.slice(1)) : null;
    toBottom();
    if (target) {
      pane.scrollTop = Math.max(0, target.offsetTop - pane.clientHeight / 3);
    } else if (divider && divider.offsetTop < pane.scrollTop) {
      // More unread than fits: start reading at the first unread one.
      pane.scrollTop = Math.max(0, divider.offsetTop - 8);
    }
    if (jump) {
      jump.addEventListener("click", function () {
        pane.scrollTo({ top: pane.scrollHeight, behavior: "smooth" });
        unseen = 0;
        showJump();
        if (area) {
          area.focus({ preventScroll: true });
        }
      });
    }
  }
  document.addEventListener("visibilitychange", markRead);

  if (!area) {
    return;
  }

  // The draft survives a reload and a new sign-in.
  try {
    var kept = window.localStorage.getItem(draftKey);
    if (kept && !area.value) {
      area.value = kept;
    }
  } catch (e) {
    // Storage may be off.
  }
  area.addEventListener("input", saveDraft);

  // The composer's helpers (the "@" picker, Enter to send, the formatting bar) live in
  // chat-composer.js, which the room page loads after this script.
  K.chat = { area: area, composer: composer, me: me, showError: showError, saveDraft: saveDraft };
})();
