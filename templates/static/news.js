// Neuigkeiten, live. On every signed-in page (the shell brings this script after `live.js`):
// the navigation's "Neuigkeiten" entry shows the member's unread count, fetched from
// `/api/news/unread` when the live channel opens and whenever a `news.changed` event arrives
// (it carries no content). On the news page and the start page the same event makes the page
// fetch itself again and swap in what the member may see now: the list (`#news-list`) or the
// tile (`#tile-news`).
(function () {
  "use strict";

  var K = window.Kollegium || {};
  var ids = ["news-list", "tile-news"];

  function navLinks() {
    return document.querySelectorAll('.mainnav a[href="/news"], .navmenu-list a[href="/news"]');
  }

  function showUnread(n) {
    navLinks().forEach(function (a) {
      var b = a.querySelector(".nav-news");
      if (!b) {
        b = document.createElement("span");
        b.className = "nav-badge nav-news";
        a.appendChild(b);
      }
      b.textContent = String(n);
      b.setAttribute("aria-label", n + (n === 1 ? " ungelesene Neuigkeit" : " ungelesene Neuigkeiten"));
      b.hidden = !(n > 0);
    });
    document.body.dataset.newsUnread = String(n);
  }

  function countUnread() {
    if (!navLinks().length) {
      return;
    }
    fetch("/api/news/unread", {
      credentials: "same-origin",
      redirect: "manual",
      headers: { "Accept": "application/json" }
    }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (data) {
      if (data && typeof data.unread === "number") {
        showUnread(data.unread);
      }
    }).catch(function () {});
  }

  function present() {
    return ids.filter(function (id) { return document.getElementById(id); });
  }

  var timer = null;

  function refresh() {
    countUnread();
    var here = present();
    if (!here.length) {
      return;
    }
    fetch(location.pathname + location.search, {
      credentials: "same-origin",
      redirect: "manual",
      headers: { "Accept": "text/html" }
    }).then(function (r) {
      if (!r.ok) {
        return null;
      }
      return r.text();
    }).then(function (text) {
      if (!text) {
        return;
      }
      var doc = new DOMParser().parseFromString(text, "text/html");
      here.forEach(function (id) {
        var fresh = doc.getElementById(id);
        var old = document.getElementById(id);
        if (fresh && old) {
          old.replaceWith(document.importNode(fresh, true));
        }
      });
      document.body.dataset.newsRefreshed = String(Date.now());
    }).catch(function () {});
  }

  function refreshSoon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  }

  var opened = false;
  if (K.live && K.live.on) {
    K.live.on(function (ev) {
      if (ev.type === "_open") {
        // After a reconnect, events may have been missed.
        if (opened) {
          refreshSoon();
        } else {
          countUnread();
        }
        opened = true;
        return;
      }
      if (ev.type === "news.changed" || ev.type === "resync") {
        refreshSoon();
      }
    });
  }
}());
