// Live chat: enhances the server-rendered chat pages (they work without this script).
// Room page: messages, edits, deletions, reactions and read receipts arrive over the
// WebSocket; sending, reacting, editing and deleting use the JSON API; older messages
// load when scrolling up. Room list: unread and mention counts update live.
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var list = document.getElementById("messages");
  var roomList = document.getElementById("room-list");
  if (!list && !roomList) {
    return;
  }
  var me = Number((list || roomList).dataset.me);
  var room = list ? Number(list.dataset.room) : 0;
  var admin = list ? list.dataset.admin === "true" : false;
  var editWindow = list ? Number(list.dataset.editWindow) : 0;
  var clockSkew = list ? Number(list.dataset.now) - Date.now() / 1000 : 0;
  var newest = list ? Number(list.dataset.newest) : 0;
  var template = document.getElementById("message-template");
  var status = document.getElementById("live-status");

  function api(method, path, body) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf }
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      if (r.status === 204) {
        return null;
      }
      return r.json().then(function (data) {
        if (!r.ok) {
          throw new Error(data && data.message ? data.message : "Fehler " + r.status);
        }
        return data;
      });
    });
  }

  function showStatus(text) {
    if (!status) {
      return;
    }
    status.textContent = text || "";
    status.hidden = !text;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // Times as the server renders them: the practice's time zone (data-tz), German format
  // "06.12.2026, 14:05", whatever zone and language the browser has.
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

  function formatLocal(t) {
    var p = {};
    timeParts.formatToParts(new Date(t * 1000)).forEach(function (x) {
      p[x.type] = x.value;
    });
    return pad(Number(p.day)) + "." + pad(Number(p.month)) + "." + p.year + ", " +
      pad(Number(p.hour) % 24) + ":" + pad(Number(p.minute));
  }

  // ---- room page -------------------------------------------------------------------

  function nowSecs() {
    return Date.now() / 1000 + clockSkew;
  }

  function lastId() {
    var items = list.querySelectorAll("li.message");
    var max = newest;
    for (var i = 0; i < items.length; i++) {
      max = Math.max(max, Number(items[i].dataset.id));
    }
    return max;
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
    return f;
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
    li.querySelector(".message-author").textContent = m.author;
    li.querySelector(".message-time").textContent = formatLocal(m.created_at);
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
    if (m.deleted) {
      Array.prototype.slice.call(li.children, 1).forEach(function (c) { c.remove(); });
      var p = document.createElement("p");
      p.className = "muted message-deleted";
      p.textContent = "Nachricht gelöscht.";
      li.appendChild(p);
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
      li.insertBefore(q, body);
    }
    // The server renders Markdown to a safe subset of HTML (no raw HTML, no scripts).
    body.innerHTML = m.html;
    var pattern = li.querySelector("details.more form");
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
    } else if (append) {
      list.appendChild(li);
      var empty = document.getElementById("no-messages");
      if (empty) {
        empty.remove();
      }
      newest = Math.max(newest, m.id);
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

  var socket = null;
  var retry = 500;
  var lastRead = 0;

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
    }
  }

  function markRead() {
    if (!list || document.visibilityState !== "visible") {
      return;
    }
    var upto = lastId();
    if (upto > lastRead) {
      lastRead = upto;
      send({ type: "read", room: room, upto: upto });
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

  // ---- room list ---------------------------------------------------------------------

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
      last = document.createElement("span");
      last.className = "muted room-last";
      li.querySelector("a").appendChild(last);
    }
    var text = m.body.replace(/\s+/g, " ").replace(/[*_`#>]/g, "");
    last.textContent = m.author + ": " + (text.length > 80 ? text.slice(0, 80) + "…" : text);
  }

  function onListEvent(ev) {
    var li = roomList.querySelector('li[data-room="' + ev.room + '"]');
    if (ev.type === "message" && li) {
      showLast(li, ev.message);
    }
    if (ev.type === "message" && ev.message.author_id !== me) {
      if (!li) {
        return; // a new room: shown at the next load
      }
      bump(li.querySelector(".badge.unread"), 1);
      if (ev.message.mentions_me) {
        bump(li.querySelector(".badge.mentions"), 1);
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

  // ---- the socket --------------------------------------------------------------------

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/chat/ws";
    socket = new WebSocket(url);
    socket.addEventListener("open", function () {
      retry = 500;
      (list || roomList).dataset.live = "open";
      showStatus("");
      if (list) {
        send({ type: "subscribe", room: room, after: lastId() });
      }
    });
    socket.addEventListener("message", function (e) {
      var ev;
      try {
        ev = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (ev.type === "resync") {
        if (list) {
          send({ type: "subscribe", room: room, after: lastId() });
        }
        return;
      }
      if (ev.type === "session_ended") {
        return;
      }
      if (list) {
        onRoomEvent(ev);
      } else {
        onListEvent(ev);
      }
    });
    socket.addEventListener("close", function (e) {
      socket = null;
      (list || roomList).dataset.live = "closed";
      if (e.code === 4001 || e.code === 1006) {
        // Session check: a plain request tells whether we are still signed in.
        api("GET", "/api/chat/rooms").then(function () {
          setTimeout(connect, retry);
        }).catch(function () {
          showStatus("Sie sind abgemeldet. Bitte laden Sie die Seite neu.");
        });
      } else {
        showStatus("Verbindung unterbrochen – neuer Versuch …");
        setTimeout(connect, retry);
      }
      retry = Math.min(retry * 2, 15000);
    });
  }

  // ---- forms ---------------------------------------------------------------------------

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
      if (reply) {
        body.reply_to = Number(reply);
      }
      request = api("POST", "/api/chat/rooms/" + room + "/messages", body).then(function (m) {
        form.querySelector("textarea").value = "";
        upsert(m, true);
        if (reply) {
          window.location.href = "/chat/" + room + "#m" + m.id;
        }
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
          var open = form.closest("details[open]");
          if (open) {
            open.open = false;
          }
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
    request.then(function () { showStatus(""); }).catch(function (err) { showStatus(err.message); });
  }

  // ---- older messages --------------------------------------------------------------------

  function loadOlder(link) {
    var first = list.querySelector("li.message");
    if (!first || link.dataset.loading) {
      return;
    }
    link.dataset.loading = "1";
    var height = document.documentElement.scrollHeight;
    api("GET", "/api/chat/rooms/" + room + "/messages?before=" + first.dataset.id).then(function (r) {
      for (var i = r.messages.length - 1; i >= 0; i--) {
        if (!document.getElementById("m" + r.messages[i].id)) {
          list.insertBefore(render(r.messages[i]), list.firstChild);
        }
      }
      window.scrollBy(0, document.documentElement.scrollHeight - height);
      delete link.dataset.loading;
      if (!r.more) {
        link.parentNode.remove();
      } else {
        link.setAttribute("href", "/chat/" + room + "?before=" + list.querySelector("li.message").dataset.id);
      }
    }).catch(function (err) {
      delete link.dataset.loading;
      showStatus(err.message);
    });
  }

  if (list && template) {
    document.addEventListener("submit", onSubmit);
    var older = document.querySelector("#older a");
    if (older) {
      older.addEventListener("click", function (e) {
        e.preventDefault();
        loadOlder(older);
      });
      if ("IntersectionObserver" in window) {
        new IntersectionObserver(function (entries) {
          if (entries.some(function (x) { return x.isIntersecting; }) && document.body.contains(older)) {
            loadOlder(older);
          }
        }).observe(older);
      }
    }
    document.addEventListener("visibilitychange", markRead);
    var composer = document.querySelector("#composer textarea");
    if (composer) {
      composer.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          composer.form.requestSubmit();
        }
      });
    }
  }
  if ("WebSocket" in window) {
    connect();
  }
})();
