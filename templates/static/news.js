// Neuigkeiten, live: on the news page and the start page, a `news.changed` event of the
// workspace's one live channel (it carries no content) makes the page fetch itself again and
// swap in what the member may see now: the list (`#news-list`) or the tile (`#tile-news`).
(function () {
  "use strict";

  var K = window.Kollegium || {};
  var ids = ["news-list", "tile-news"];

  function present() {
    return ids.filter(function (id) { return document.getElementById(id); });
  }

  var timer = null;

  function refresh() {
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
        }
        opened = true;
        return;
      }
      if (ev.type === "news.changed") {
        refreshSoon();
      }
    });
  }
}());
