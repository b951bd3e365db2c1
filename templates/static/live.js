// The workspace's one live channel on every workspace page: this script owns the page's one
// WebSocket and hands its events to the apps' scripts (`Kollegium.live.on`), and keeps the
// shell's live counts: the "Chat" entry of the navigation, the start page's tile and the tab
// title. It also offers the apps a JSON helper that turns an ended session into a German
// message with a sign-in link, and desktop notifications and a sound for mentions (only
// after the member allowed them with a button; never asked on page load).
(function () {
  "use strict";

  var K = window.Kollegium = window.Kollegium || {};
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  // ---- JSON requests ---------------------------------------------------------------------

  function signInHref() {
    return "/auth/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  // An error people can act on: `signIn` is set when the session has ended (the message then
  // comes with a sign-in link), `stale` when the page is too old to send (reload it).
  function failure(message, kind) {
    var e = new Error(message);
    e.signIn = kind === "signin";
    e.stale = kind === "stale";
    return e;
  }

  function api(method, path, body) {
    var init = {
      method: method,
      credentials: "same-origin",
      redirect: "manual",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf }
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).catch(function () {
      throw failure("Keine Verbindung zum Server. Bitte versuchen Sie es gleich noch einmal.");
    }).then(function (r) {
      if (r.type === "opaqueredirect" || r.status === 401) {
        throw failure("Ihre Sitzung ist abgelaufen. Ihr Text bleibt erhalten.", "signin");
      }
      if (r.status === 204) {
        return null;
      }
      var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
      if (!json) {
        if (r.status === 403 && method !== "GET") {
          // The security check refused the request: either the session ended (its cookies
          // are gone) or the page is older than the browser's current sign-in.
          return api("GET", "/api/chat/rooms").then(function () {
            throw failure("Diese Seite ist veraltet (Sicherheitsprüfung). Ihr Text bleibt erhalten.", "stale");
          });
        }
        throw failure("Fehler " + r.status + ". Bitte versuchen Sie es erneut.");
      }
      return r.json().then(function (data) {
        if (!r.ok) {
          throw failure(data && data.message ? data.message : "Fehler " + r.status);
        }
        return data;
      });
    });
  }

  // Shows an error in `el` (a status line): its text, and for an ended session a sign-in
  // link (for a stale page a reload link).
  function showError(el, err) {
    if (!el) {
      return;
    }
    el.textContent = err.message + " ";
    if (err.signIn || err.stale) {
      var a = document.createElement("a");
      a.href = err.signIn ? signInHref() : location.pathname + location.search;
      a.textContent = err.signIn ? "Neu anmelden" : "Seite neu laden";
      el.appendChild(a);
    }
    el.hidden = false;
  }

  K.api = api;
  K.showError = showError;
  K.signInHref = signInHref;

  // ---- the socket ------------------------------------------------------------------------

  var listeners = [];
  var socket = null;
  var retry = 500;

  function emit(ev) {
    listeners.forEach(function (fn) {
      try {
        fn(ev);
      } catch (e) {
        // One script's failure must not stop the others.
      }
    });
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/chat/ws";
    socket = new WebSocket(url);
    socket.addEventListener("open", function () {
      retry = 500;
      document.body.dataset.live = "open";
      emit({ type: "_open" });
    });
    socket.addEventListener("message", function (e) {
      var ev;
      try {
        ev = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (ev.type === "session_ended") {
        return;
      }
      emit(ev);
    });
    socket.addEventListener("close", function (e) {
      socket = null;
      document.body.dataset.live = "closed";
      if (e.code === 4001 || e.code === 1006) {
        // Session check: a plain request tells whether we are still signed in.
        api("GET", "/api/chat/rooms").then(function () {
          setTimeout(connect, retry);
        }).catch(function (err) {
          emit({ type: "_closed", error: err });
          if (!err.signIn) {
            setTimeout(connect, retry);
          }
        });
      } else {
        emit({ type: "_closed" });
        setTimeout(connect, retry);
      }
      retry = Math.min(retry * 2, 15000);
    });
  }

  K.live = {
    on: function (fn) { listeners.push(fn); },
    send: send,
    isOpen: function () { return !!socket && socket.readyState === WebSocket.OPEN; },
    // Set by the chat's room page: whether the reader is looking at the newest messages of
    // this room right now (then a new message there is read, not counted).
    reading: function () { return false; }
  };

  // ---- live counts -----------------------------------------------------------------------

  var me = 0;
  var totals = { unread: 0, mentions: 0 };
  var baseTitle = document.title.replace(/^\(\d+\) /, "");
  var refreshTimer = null;

  function navLinks() {
    return document.querySelectorAll('.mainnav a[href="/chat"], .navmenu-list a[href="/chat"]');
  }

  function badge(parent, cls, text, label, show) {
    var b = parent.querySelector("." + cls.split(" ").join("."));
    if (!b) {
      b = document.createElement("span");
      b.className = cls;
      parent.appendChild(b);
    }
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.hidden = !show;
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function showCounts() {
    var u = totals.unread, m = totals.mentions;
    navLinks().forEach(function (a) {
      badge(a, "nav-badge nav-unread", String(u), plural(u, "ungelesene Nachricht", "ungelesene Nachrichten"), u > 0);
      badge(a, "nav-badge nav-mentions", "@" + m, plural(m, "Erwähnung", "Erwähnungen"), m > 0);
    });
    var counts = document.querySelector("#tile-chat .tile-counts");
    if (counts) {
      counts.textContent = "";
      if (u === 0) {
        var none = document.createElement("span");
        none.className = "muted";
        none.textContent = "Keine ungelesenen Nachrichten";
        counts.appendChild(none);
      } else {
        var b = document.createElement("span");
        b.className = "badge";
        b.dataset.count = "unread";
        b.textContent = u;
        counts.appendChild(b);
        counts.appendChild(document.createTextNode(u === 1 ? " ungelesene Nachricht" : " ungelesene Nachrichten"));
      }
      if (m > 0) {
        var w = document.createElement("span");
        w.className = "badge warn";
        w.dataset.count = "mentions";
        w.textContent = m;
        counts.appendChild(document.createTextNode(" "));
        counts.appendChild(w);
        counts.appendChild(document.createTextNode(m === 1 ? " Erwähnung" : " Erwähnungen"));
      }
    }
    document.title = (u > 0 ? "(" + u + ") " : "") + baseTitle;
  }

  function refresh() {
    api("GET", "/api/chat/rooms").then(function (r) {
      me = r.me || me;
      totals = { unread: 0, mentions: 0 };
      r.rooms.forEach(function (room) {
        totals.unread += room.unread;
        totals.mentions += room.mentions;
      });
      showCounts();
    }).catch(function () {});
  }

  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 250);
  }

  // ---- notifications ---------------------------------------------------------------------

  function store(key, value) {
    try {
      if (value === undefined) {
        return window.localStorage.getItem(key);
      }
      window.localStorage.setItem(key, value);
    } catch (e) {
      // Storage may be off (private mode): the setting lasts for this page only.
    }
    return null;
  }

  var audio = null;

  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880;
      g.gain.setValueAtTime(0.15, audio.currentTime);
      g.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.3);
      o.connect(g);
      g.connect(audio.destination);
      o.start();
      o.stop(audio.currentTime + 0.3);
    } catch (e) {
      // No audio on this device.
    }
  }

  function notifyMention(ev) {
    var m = ev.message;
    var here = K.live.reading(ev.room);
    if (store("kollegium.sound") === "1" && !here) {
      beep();
    }
    if (here || !("Notification" in window) || Notification.permission !== "granted" ||
        store("kollegium.notify") !== "1") {
      return;
    }
    var text = (m.body || "").replace(/\s+/g, " ");
    var n = new Notification("Erwähnung von " + m.author, {
      body: text.length > 120 ? text.slice(0, 120) + "…" : text,
      tag: "kollegium-chat-" + m.id
    });
    n.addEventListener("click", function () {
      window.focus();
      location.href = "/chat/" + ev.room + "#m" + m.id;
    });
  }

  function setupNotifySettings() {
    var box = document.getElementById("notify-settings");
    if (!box || !("Notification" in window)) {
      return;
    }
    box.hidden = false;
    var button = document.getElementById("notify-enable");
    var state = document.getElementById("notify-state");
    var sound = document.getElementById("notify-sound");
    function show() {
      var on = Notification.permission === "granted" && store("kollegium.notify") === "1";
      if (Notification.permission === "denied") {
        state.textContent = "Im Browser blockiert – bitte in den Website-Einstellungen erlauben.";
        button.hidden = true;
      } else {
        state.textContent = on ? "Eingeschaltet" : "Ausgeschaltet";
        button.textContent = on ? "Desktop-Benachrichtigungen ausschalten" : "Desktop-Benachrichtigungen erlauben";
      }
    }
    button.addEventListener("click", function () {
      if (Notification.permission === "granted") {
        store("kollegium.notify", store("kollegium.notify") === "1" ? "0" : "1");
        show();
        return;
      }
      Notification.requestPermission().then(function (p) {
        store("kollegium.notify", p === "granted" ? "1" : "0");
        show();
      });
    });
    if (sound) {
      sound.checked = store("kollegium.sound") === "1";
      sound.addEventListener("change", function () {
        store("kollegium.sound", sound.checked ? "1" : "0");
        if (sound.checked) {
          beep();
        }
      });
    }
    show();
  }

  K.live.on(function (ev) {
    switch (ev.type) {
      case "_open":
        refresh();
        break;
      case "resync":
        refreshSoon();
        break;
      case "message":
        if (!me || ev.message.author_id === me) {
          return;
        }
        if (ev.message.mentions_me) {
          notifyMention(ev);
        }
        if (K.live.reading(ev.room)) {
          return;
        }
        totals.unread += 1;
        if (ev.message.mentions_me) {
          totals.mentions += 1;
        }
        showCounts();
        break;
      case "deleted":
        refreshSoon();
        break;
      case "read":
        if (ev.member === me) {
          refreshSoon();
        }
        break;
    }
  });

  function start() {
    setupNotifySettings();
    if ("WebSocket" in window && csrf) {
      connect();
    }
  }

  // After every deferred script ran (the apps' scripts register their listeners first).
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
