#!/usr/bin/env python3
"""Screenshots of Kollegium's main pages, for people looking at the product (docs/screenshots/).

Starts `kollegium demo` in a fresh data directory on free loopback ports, signs in as the demo
owner in headless Chromium (through chromedriver's WebDriver API, with only the standard
library), and saves PNGs of the main pages at 1366x900, 1920x1080 and 390x844; then sets up
an operator account (`kollegium operator add`, password and TOTP in the browser) and saves the
operator console's pages. Run it through
ops/screenshots.sh, which builds the binary first.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SIZES = {
    "desktop": ("window", 1366, 900),
    "wide": ("window", 1920, 1080),
    "phone": ("phone", 390, 844),
}
PASSWORD = "Demo-Praxis-2026"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The few WebDriver commands the script needs, over chromedriver's HTTP API."""

    def __init__(self, url):
        self.url = url
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.load(r)["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.read().decode(errors='replace')}") from e

    def start(self, chromium, kind, width, height, profile):
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                "--hide-scrollbars", "--force-color-profile=srgb", f"--user-data-dir={profile}",
                "--lang=de-DE"]
        options = {"binary": chromium, "args": args}
        if kind == "window":
            args.append(f"--window-size={width},{height}")
        else:
            options["mobileEmulation"] = {
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0}}
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]
        if kind == "window":
            # The window includes the browser's frame: size it so the page sees width x height.
            inner_w, inner_h = self.js("return [window.innerWidth, window.innerHeight];")
            rect = self.cmd("GET", "/window/rect")
            self.cmd("POST", "/window/rect", {"width": rect["width"] + width - inner_w,
                                              "height": rect["height"] + height - inner_h})

    def cmd(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def goto(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        for _ in range(100):
            try:
                found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
                return next(iter(found.values()))
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError(f"no element {css} at {self.js('return location.href;')}")

    def type(self, css, text):
        self.cmd("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def png(self):
        return base64.b64decode(self.cmd("GET", "/screenshot"))

    def quit(self):
        if self.session:
            self.call("DELETE", f"/session/{self.session}")
            self.session = None


def demo_env():
    """The environment of the demo and of the commands run beside it (same listeners)."""
    env = dict(os.environ)
    env.update({
        "KOLLEGIUM_LISTEN": f"127.0.0.1:{free_port()}",
        "KOLLEGIUM_OPERATOR_LISTEN": f"127.0.0.1:{free_port()}",
        "KOLLEGIUM_DEMO_ROSTER_PORT": str(free_port()),
        "KOLLEGIUM_LOG__LEVEL": "warn",
    })
    return env


def start_demo(binary, data_dir, env):
    """`kollegium demo` on free ports; its practice URL and roster URL from the banner."""
    proc = subprocess.Popen([binary, "--data-dir", data_dir, "demo"], env=env,
                            stdout=subprocess.PIPE, text=True)
    urls = {}
    deadline = time.time() + 600
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        for key in ("Open:", "Dienstplan:"):
            if line.strip().startswith(key):
                urls[key] = line.split(key, 1)[1].split()[0].rstrip("/")
        if "Stop with Ctrl+C" in line:
            return proc, urls["Open:"], urls.get("Dienstplan:")
    proc.terminate()
    raise RuntimeError("kollegium demo did not start")


def sign_in(wd, origin, user):
    wd.goto(origin + "/")
    wd.type("input#login", user)
    wd.type("input#password", PASSWORD)
    wd.click("form button[type=submit]")
    wd.find("header.topbar .usermenu")


def totp_now(secret):
    """The current TOTP code (RFC 6238: SHA-1, 30 s, 6 digits) of a base32 secret."""
    key = secret.replace(" ", "").upper()
    key = base64.b32decode(key + "=" * (-len(key) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = mac[-1] & 15
    return "%06d" % ((struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000)


def operator_signed_in(wd, binary, data_dir, env, name):
    """A new operator account (`kollegium operator add`), set up in the browser: password,
    then the TOTP enrolment with a code computed from the secret the page shows."""
    out = subprocess.run([binary, "--data-dir", data_dir, "operator", "add", name,
                          "--email", f"{name}@betrieb.example"],
                         env=env, check=True, capture_output=True, text=True).stdout
    link = next(w for w in out.split() if "/setup/" in w)
    wd.goto(link)
    wd.type("input#password", "Leuchtturm-Abend-2026")
    wd.type("input#password_repeat", "Leuchtturm-Abend-2026")
    wd.click("form button[type=submit]")
    wd.find("code.secret")  # the enrolment page has loaded
    secret = wd.js("return document.querySelector('code.secret').textContent;")
    wd.type("input#code", totp_now(secret))
    wd.click("form button[type=submit]")
    wd.find("main")
    return link.split("/setup/")[0]


def room_path(wd, origin, title):
    wd.goto(origin + "/chat")
    wd.find("main")
    return wd.js(
        "var t = arguments[0];"
        "var a = Array.from(document.querySelectorAll('a[href^=\"/chat/\"]'))"
        ".find(function (a) { return a.textContent.indexOf(t) >= 0; });"
        "return a ? a.getAttribute('href') : null;", title) or "/chat"


def first_href(wd, origin, page, prefix, text=None):
    """The first link on `page` whose path starts with `prefix` (and names `text`)."""
    wd.goto(origin + page)
    wd.find("main")
    return wd.js(
        "var p = arguments[0], t = arguments[1];"
        "var a = Array.from(document.querySelectorAll('a[href^=\"' + p + '\"]'))"
        ".find(function (l) { return !t || l.textContent.indexOf(t) >= 0; });"
        "return a ? a.getAttribute('href') : null;", prefix, text)


def shoot(wd, out, name, size):
    time.sleep(0.4)  # fonts and the live connection settle
    path = os.path.join(out, f"{name}-{size}.png")
    with open(path, "wb") as f:
        f.write(wd.png())
    print("saved", path)
    return path


def run(args):
    os.makedirs(args.out, exist_ok=True)
    saved = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "data")
        env = demo_env()
        demo, origin, roster = start_demo(args.binary, data_dir, env)
        port = free_port()
        driver = subprocess.Popen([args.chromedriver, f"--port={port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wd = WebDriver(f"http://127.0.0.1:{port}")
            for _ in range(100):
                try:
                    if wd.call("GET", "/status")["ready"]:
                        break
                except (OSError, RuntimeError):
                    time.sleep(0.1)
            for size, (kind, width, height) in SIZES.items():
                wd.start(args.chromium, kind, width, height, os.path.join(tmp, size))
                try:
                    wd.goto(origin + "/id/login")
                    wd.find("input#login")
                    saved.append(shoot(wd, args.out, "01-anmeldung", size))
                    sign_in(wd, origin, args.user)
                    saved.append(shoot(wd, args.out, "02-start", size))
                    room = room_path(wd, origin, "Allgemein")
                    saved.append(shoot(wd, args.out, "03-chat", size))
                    wd.goto(origin + room)
                    wd.find("main")
                    saved.append(shoot(wd, args.out, "04-chat-raum", size))
                    wd.goto(origin + "/search?q=Sprechzeiten")
                    wd.find("main")
                    saved.append(shoot(wd, args.out, "05-suche", size))
                    wd.goto(origin + "/id/account")
                    wd.find("main")
                    saved.append(shoot(wd, args.out, "06-mein-konto", size))
                    wd.goto(origin + "/id/admin/users")
                    wd.find("main")
                    saved.append(shoot(wd, args.out, "07-verwaltung", size))
                    board = first_href(wd, origin, "/tasks", "/tasks/boards/", "Praxisorganisation")
                    if board:
                        wd.goto(origin + board)
                        wd.find("main")
                        saved.append(shoot(wd, args.out, "09-aufgaben", size))
                        card = first_href(wd, origin, board, "/tasks/cards/")
                        if card:
                            wd.goto(origin + card)
                            wd.find("main")
                            saved.append(shoot(wd, args.out, "10-aufgabe", size))
                        board_id = board.rstrip("/").split("/")[-1]
                        wd.goto(origin + "/tasks/routines/boards/" + board_id)
                        wd.find("main")
                        saved.append(shoot(wd, args.out, "12-wiederkehrend", size))
                    wd.goto(origin + "/tasks/mine")
                    wd.find("main")
                    saved.append(shoot(wd, args.out, "11-meine-aufgaben", size))
                    wd.goto(origin + "/news")
                    wd.find("main")
                    saved.append(shoot(wd, args.out, "13-neuigkeiten", size))
                    # The operator console (its own listener): a new operator per size,
                    # since every sign-in takes a fresh TOTP code.
                    console = operator_signed_in(wd, args.binary, data_dir, env,
                                                 f"betrieb-{size}")
                    for page, name in (("/practices", "14-betrieb-praxen"),
                                       ("/news", "15-betrieb-neuigkeiten"),
                                       ("/audit", "16-betrieb-protokoll")):
                        wd.goto(console + page)
                        wd.find("main")
                        saved.append(shoot(wd, args.out, name, size))
                    if roster:
                        wd.goto(roster + "/")
                        # The first time, the practice asks whether the tool may sign in.
                        if "/id/authorize" in wd.js("return location.href;"):
                            wd.click("form[action='/id/authorize/consent'] button[value=allow]")
                        wd.find("table")
                        saved.append(shoot(wd, args.out, "08-dienstplan", size))
                finally:
                    wd.quit()
        finally:
            driver.terminate()
            driver.wait()
            demo.terminate()
            demo.wait()
    optimizer = shutil.which("optipng")
    if optimizer and saved:
        subprocess.run([optimizer, "-quiet", "-o2", *saved], check=True)
    elif saved:
        print("optipng not found: PNGs left unoptimized (apt-get install optipng)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default="target/debug/kollegium")
    p.add_argument("--out", default="docs/screenshots")
    p.add_argument("--user", default="inhaber",
                   help="demo user to sign in as (inhaber, mfa, abrechnung); for mfa and "
                        "abrechnung the administration page shows what they see: a refusal")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
