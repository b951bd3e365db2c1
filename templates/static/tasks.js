// Tasks board page: drag and drop of cards between and within columns (pointer events; the
// card page's "Verschieben nach" form stays the keyboard way), optimistic moves with
// rollback on error, cards added inline ("Hinzufügen" under a column creates the card through
// the JSON API and shows it in place; without the script the form posts), and live updates
// from the workspace's one live channel: a move by someone else is applied in place, any
// other change reloads the board's columns.
(function () {
  "use strict";

  var board = document.getElementById("board");
  if (!board) {
    return;
  }
  var K = window.Kollegium || {};
  var boardId = Number(board.dataset.board);
  var editable = board.dataset.editable === "1";
  var errorBox = document.getElementById("board-error");

  function showError(err) {
    if (K.showError) {
      K.showError(errorBox, err);
    } else if (errorBox) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
    }
  }

  function lists() {
    return board.querySelectorAll(".card-list");
  }

  function listOf(column) {
    return board.querySelector('.card-list[data-column="' + column + '"]');
  }

  function updateCounts() {
    lists().forEach(function (l) {
      var badge = l.parentNode.querySelector(".column-count");
      if (badge) {
        badge.textContent = String(l.querySelectorAll(".task-card").length);
      }
    });
  }

  // ---- drag and drop -------------------------------------------------------------------

  var drag = null;
  var suppressClick = false;

  function cardsIn(list, except) {
    return Array.prototype.filter.call(list.querySelectorAll(".task-card"), function (c) {
      return c !== except;
    });
  }

  // Where a pointer at (x, y) would drop: the list under it and the card it goes before.
  function dropTarget(x, y) {
    var under = document.elementFromPoint(x, y);
    var column = under && under.closest ? under.closest(".board-column") : null;
    if (!column || !board.contains(column)) {
      return null;
    }
    var list = column.querySelector(".card-list");
    var before = null;
    var others = cardsIn(list, drag.card);
    for (var i = 0; i < others.length; i++) {
      var r = others[i].getBoundingClientRect();
      if (y < r.top + r.height / 2) {
        before = others[i];
        break;
      }
    }
    return { list: list, before: before };
  }

  function start(e) {
    var rect = drag.card.getBoundingClientRect();
    drag.active = true;
    drag.offsetX = e.clientX - rect.left;
    drag.offsetY = e.clientY - rect.top;
    drag.placeholder = document.createElement("li");
    drag.placeholder.className = "task-card placeholder";
    drag.placeholder.setAttribute("aria-hidden", "true");
    drag.placeholder.style.height = rect.height + "px";
    drag.card.parentNode.insertBefore(drag.placeholder, drag.card);
    drag.card.classList.add("dragging");
    drag.card.style.width = rect.width + "px";
    board.classList.add("is-dragging");
  }

  function follow(e) {
    drag.card.style.left = (e.clientX - drag.offsetX) + "px";
    drag.card.style.top = (e.clientY - drag.offsetY) + "px";
    var t = dropTarget(e.clientX, e.clientY);
    if (t) {
      t.list.insertBefore(drag.placeholder, t.before);
    }
  }

  function cleanup() {
    drag.card.classList.remove("dragging");
    drag.card.style.left = "";
    drag.card.style.top = "";
    drag.card.style.width = "";
    board.classList.remove("is-dragging");
  }

  function finish() {
    var card = drag.card;
    var from = { list: card.parentNode, next: card.nextSibling };
    var list = drag.placeholder.parentNode;
    list.insertBefore(card, drag.placeholder);
    drag.placeholder.remove();
    cleanup();
    var column = Number(list.dataset.column);
    var position = cardsIn(list, null).indexOf(card);
    if (from.list === list && cardsIn(list, null).indexOf(card) === drag.startIndex) {
      return;
    }
    updateCounts();
    move(card, column, position, from);
  }

  // Moves a card on the server; puts it back where it was if the server refuses.
  function move(card, column, position, from) {
    card.classList.add("saving");
    K.api("POST", "/api/tasks/cards/" + card.dataset.card + "/move", {
      column: column,
      position: position
    }).then(function () {
      card.classList.remove("saving");
      if (errorBox) {
        errorBox.hidden = true;
      }
    }).catch(function (err) {
      card.classList.remove("saving");
      from.list.insertBefore(card, from.next && from.next.parentNode === from.list ? from.next : null);
      updateCounts();
      showError(err);
    });
  }

  function onDown(e) {
    if (!editable || e.button !== 0 || drag) {
      return;
    }
    var card = e.target.closest ? e.target.closest(".task-card") : null;
    if (!card || !board.contains(card) || card.classList.contains("placeholder")) {
      return;
    }
    drag = {
      card: card,
      x: e.clientX,
      y: e.clientY,
      active: false,
      pointer: e.pointerId,
      startIndex: cardsIn(card.parentNode, null).indexOf(card)
    };
  }

  function onMove(e) {
    if (!drag || e.pointerId !== drag.pointer) {
      return;
    }
    if (!drag.active) {
      if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) < 6) {
        return;
      }
      start(e);
    }
    e.preventDefault();
    follow(e);
  }

  function onUp(e) {
    if (!drag || e.pointerId !== drag.pointer) {
      return;
    }
    if (drag.active) {
      // The click that ends a drag opens nothing; if the browser sends none, forget it.
      suppressClick = true;
      setTimeout(function () { suppressClick = false; }, 0);
      finish();
    }
    drag = null;
  }

  function onCancel() {
    if (drag && drag.active) {
      drag.placeholder.remove();
      cleanup();
    }
    drag = null;
  }

  board.addEventListener("pointerdown", onDown);
  document.addEventListener("pointermove", onMove);
  document.addEventListener("pointerup", onUp);
  document.addEventListener("pointercancel", onCancel);
  board.addEventListener("click", function (e) {
    if (suppressClick) {
      suppressClick = false;
      e.preventDefault();
      e.stopPropagation();
    }
  }, true);
  // Links and text inside cards must not start the browser's own drag.
  board.addEventListener("dragstart", function (e) {
    if (editable) {
      e.preventDefault();
    }
  });

  // ---- cards added inline --------------------------------------------------------------

  // Cards this page created (their own live event needs no reload), and live events held
  // back while a creation is under way (they may name the card before its answer came).
  var created = {};
  var creating = 0;
  var held = [];

  function tile(id, title, done) {
    var li = document.createElement("li");
    li.className = "task-card" + (done ? " is-done" : "");
    li.id = "card-" + id;
    li.dataset.card = String(id);
    var a = document.createElement("a");
    a.className = "task-title";
    a.href = "/tasks/cards/" + id;
    a.textContent = title;
    var meta = document.createElement("span");
    meta.className = "task-meta";
    li.appendChild(a);
    li.appendChild(meta);
    return li;
  }

  function addCard(form) {
    var input = form.querySelector('input[name="title"]');
    var button = form.querySelector('button[type="submit"]');
    var column = Number(form.querySelector('input[name="column"]').value);
    var title = input.value.trim();
    if (!title) {
      return;
    }
    creating += 1;
    button.disabled = true;
    K.api("POST", "/api/tasks/boards/" + boardId + "/cards", {
      title: title,
      column: column
    }).then(function (res) {
      var list = listOf(column);
      if (list && !board.querySelector('.task-card[data-card="' + res.id + '"]')) {
        var done = list.parentNode.classList.contains("done-column");
        list.appendChild(tile(res.id, res.title, done));
        created[res.id] = true;
        updateCounts();
      }
      input.value = "";
      if (errorBox) {
        errorBox.hidden = true;
      }
    }).catch(function (err) {
      showError(err);
    }).then(function () {
      creating -= 1;
      button.disabled = false;
      if (creating === 0) {
        var events = held;
        held = [];
        events.forEach(onBoardEvent);
      }
    });
  }

  // The forms live inside the board, which a reload replaces: listen on the board.
  board.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.classList || !form.classList.contains("new-card") || !K.api) {
      return;
    }
    e.preventDefault();
    addCard(form);
  });

  // ---- live updates --------------------------------------------------------------------

  var reloading = false;
  var reloadAgain = false;

  // Reloads the board's columns from the server (the page as it is now).
  function reload() {
    if (drag) {
      reloadAgain = true;
      return;
    }
    if (reloading) {
      reloadAgain = true;
      return;
    }
    reloading = true;
    fetch(location.pathname, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("Fehler " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("board");
        if (fresh && !drag) {
          board.innerHTML = fresh.innerHTML;
          board.dataset.editable = fresh.dataset.editable;
          editable = fresh.dataset.editable === "1";
        }
      })
      .catch(function () {
        // The next event or reconnect tries again.
      })
      .then(function () {
        reloading = false;
        if (reloadAgain) {
          reloadAgain = false;
          reload();
        }
      });
  }

  function applyMove(ev) {
    var card = board.querySelector('.task-card[data-card="' + ev.card + '"]');
    var list = listOf(ev.column);
    if (!card || !list) {
      reload();
      return;
    }
    if (drag && drag.card === card) {
      return;
    }
    var others = cardsIn(list, card);
    list.insertBefore(card, others[ev.position] || null);
    var doneColumn = list.parentNode.classList.contains("done-column");
    card.classList.toggle("is-done", doneColumn);
    updateCounts();
  }

  var opened = false;
  if (K.live && K.live.on) {
    K.live.on(function (ev) {
      if (ev.type === "_open") {
        // After a reconnect, events may have been missed: reload once.
        if (opened) {
          reload();
        }
        opened = true;
        return;
      }
      if (ev.type !== "tasks.board" || ev.board !== boardId) {
        return;
      }
      onBoardEvent(ev);
    });
  }

  function onBoardEvent(ev) {
    if (creating > 0) {
      held.push(ev);
      return;
    }
    if (ev.what === "moved") {
      applyMove(ev);
    } else if (ev.what === "card" && created[ev.card]) {
      // The card this page just added: shown already.
      delete created[ev.card];
    } else {
      reload();
    }
  }
}());
