// Password strength meter: under a form's new-password field (`input#password` with
// autocomplete="new-password") it shows "schwach / mittel / stark" while typing. Only a
// guide: the server's check decides, and the form works without this script. The length
// rule is the server's (at least 10 characters); the word list is a short excerpt of the
// server's lists plus the practice's and person's names the page carries in
// `data-context` on the field.
(function () {
  "use strict";

  var MIN_CHARS = 10;
  var WORST = [
    "passwort", "password", "kennwort", "geheim", "hallo", "schatz", "schatzi", "mausi",
    "fussball", "ichliebedich", "liebe", "qwertz", "qwertzuiop", "qwerty", "asdfgh",
    "sommer", "winter", "sonne", "sonnenschein", "bayern", "borussia", "schalke",
    "deutschland", "berlin", "hamburg", "muenchen", "dragon", "monkey", "letmein",
    "welcome", "willkommen", "admin", "test", "abc", "iloveyou", "master", "superman",
    "praxis", "arztpraxis", "arzt", "aerztin", "doktor", "kollegium"
  ];

  var input = document.querySelector('input#password[autocomplete="new-password"]');
  if (!input) {
    return;
  }

  function fold(s) {
    return s.toLowerCase()
      .replace(/ä/g, "ae").replace(/ö/g, "oe").replace(/ü/g, "ue").replace(/ß/g, "ss");
  }

  function unleet(s) {
    return s.replace(/0/g, "o").replace(/1/g, "i").replace(/3/g, "e").replace(/4/g, "a")
      .replace(/5/g, "s").replace(/@/g, "a").replace(/\$/g, "s");
  }

  // The password's word: trailing and leading digits and symbols dropped, leetspeak
  // undone, separators removed (as the server reads it, in short).
  function core(pw) {
    var s = fold(pw).replace(/^[^a-z\u00e0-\u024f]+/, "").replace(/[^a-z\u00e0-\u024f]+$/, "");
    return unleet(s).replace(/[^a-z0-9\u00e0-\u024f]/g, "");
  }

  var words = WORST.slice();
  (input.getAttribute("data-context") || "").split(/[^a-zA-Z0-9\u00c0-\u024f]+/)
    .forEach(function (w) {
      w = fold(w);
      if (w.length >= 3) {
        words.push(w);
      }
    });
  var user = document.querySelector('input[name="username"], input[name="username_hint"]');

  // Whether `c` is nothing but known words and digits (`seen` remembers the rests that
  // are not).
  function onlyKnown(c, known, seen) {
    if (c === "") {
      return true;
    }
    if (seen[c]) {
      return false;
    }
    seen[c] = true;
    if (/^[0-9]/.test(c)) {
      return onlyKnown(c.replace(/^[0-9]+/, ""), known, seen);
    }
    for (var i = 0; i < known.length; i++) {
      var w = known[i];
      if (w && c.indexOf(w) === 0 && onlyKnown(c.slice(w.length), known, seen)) {
        return true;
      }
    }
    return false;
  }

  function rate(pw) {
    if (pw.length === 0) {
      return null;
    }
    if (Array.from(pw).length < MIN_CHARS) {
      return ["schwach", "zu kurz, mindestens " + MIN_CHARS + " Zeichen", 1];
    }
    var known = words.slice();
    if (user && user.value && user.value.length >= 3) {
      var name = fold(user.value);
      if (fold(pw).indexOf(name) >= 0) {
        return ["schwach", "enthält Ihren Benutzernamen", 1];
      }
      known.push(name);
    }
    var c = core(pw);
    if (c.length > 0 && c.length <= 64 && onlyKnown(c, known, {})) {
      return ["schwach", "naheliegende Wörter mit Ziffern oder Zeichen", 1];
    }
    var classes = 0;
    [/[a-zäöüß]/, /[A-ZÄÖÜ]/, /[0-9]/, /[^a-zA-Z0-9äöüßÄÖÜ]/].forEach(function (r) {
      if (r.test(pw)) {
        classes += 1;
      }
    });
    var spaced = pw.split(/[\s\-_.]+/).filter(function (p) { return p.length >= 3; }).length;
    if (pw.length >= 16 || (pw.length >= 12 && classes >= 3) || spaced >= 4) {
      return ["stark", "", 3];
    }
    return ["mittel", "länger wäre besser, z. B. mehrere Wörter", 2];
  }

  var meter = document.createElement("meter");
  meter.min = 0;
  meter.max = 3;
  meter.low = 1.5;
  meter.high = 2.5;
  meter.optimum = 3;
  meter.value = 0;
  meter.id = "pw-meter-bar";
  meter.setAttribute("aria-hidden", "true");
  var text = document.createElement("p");
  text.className = "hint";
  text.id = "pw-meter";
  text.setAttribute("aria-live", "polite");
  input.insertAdjacentElement("afterend", text);
  input.insertAdjacentElement("afterend", meter);
  meter.hidden = true;

  function update() {
    var r = rate(input.value);
    if (!r) {
      meter.hidden = true;
      text.textContent = "";
      return;
    }
    meter.hidden = false;
    meter.value = r[2];
    text.textContent = "Passwortstärke: " + r[0] + (r[1] ? " (" + r[1] + ")" : "");
  }

  input.addEventListener("input", update);
  update();
})();
