"""SMTP sink for the end-to-end tests: an aiosmtpd handler that stores every message it
receives as one JSON file (envelope, decoded headers and parts, raw source).

Serve:  python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.Sink DIR   (PYTHONPATH=here)
        (+ --tlscert/--tlskey: STARTTLS required; --smtpscert/--smtpskey: implicit TLS)
Parse:  python3 smtp_sink.py parse FILE.eml   (prints the same JSON for a file)
"""

import email
import json
import os
import sys
import time
from email import policy


def decode(raw: bytes) -> dict:
    msg = email.message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    header = lambda name: str(msg[name]) if msg[name] is not None else None
    return {
        "subject": header("subject"),
        "from": header("from"),
        "to": header("to"),
        "message_id": header("message-id"),
        "auto_submitted": header("auto-submitted"),
        "content_type": msg.get_content_type(),
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
        "raw": raw.decode("utf-8", "replace"),
        "envelope_to": [],
    }


class Sink:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("smtp_sink.Sink needs exactly one argument: the directory")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        record = decode(envelope.original_content or envelope.content)
        record["envelope_to"] = list(envelope.rcpt_tos)
        # The TLS version the message came over (STARTTLS or implicit TLS), None if plain.
        tls = server.transport.get_extra_info("ssl_object") if server.transport else None
        record["tls"] = tls.version() if tls is not None else None
        name = "%020d-%d" % (time.time_ns(), os.getpid())
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, os.path.join(self.directory, name + ".json"))
        return "250 Message accepted for delivery"


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "parse":
        sys.exit("usage: smtp_sink.py parse FILE")
    with open(sys.argv[2], "rb") as f:
        print(json.dumps(decode(f.read())))
