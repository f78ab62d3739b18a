"""A real SMTP server for the tests (Debian's python3-aiosmtpd): every message it accepts is
written as one JSON file (envelope, headers, decoded text and HTML parts) into OUTDIR.

usage: smtp_sink.py OUTDIR PORT [CERTFILE KEYFILE]   (with a certificate: STARTTLS required)
PORT 0 binds a free port; either way the first line printed is "listening on 127.0.0.1:PORT",
once the server accepts connections. Recipients starting with "reject" are refused with a
permanent 550.
"""
import asyncio
import email
import json
import os
import signal
import ssl
import sys
from email import policy

from aiosmtpd.smtp import SMTP

outdir, port = sys.argv[1], int(sys.argv[2])
tls_context = None
if len(sys.argv) > 4:
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_context.load_cert_chain(sys.argv[3], sys.argv[4])


class Sink:
    count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        Sink.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "to": str(msg["to"]),
            "from": str(msg["from"]),
            "content_type": msg.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None and html is not text else None,
            "tls": session.ssl is not None,
        }
        path = os.path.join(outdir, f"{os.getpid()}-{Sink.count}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 OK queued by the test sink"


kwargs = {}
if tls_context is not None:
    kwargs = {"tls_context": tls_context, "require_starttls": True}


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="localhost", loop=loop, **kwargs), host="127.0.0.1", port=port
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


asyncio.run(main())
