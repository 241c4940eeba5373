"""
A recording SMTP sink for the fault tests, in its own process: one line per accepted message,
"arrival time (Unix seconds) TAB recipient", written and flushed before the 250 reply, so
the file holds every message the sender was told was accepted. With --store, each message's
bytes go to a file in that folder too (for the link scanner).

    .venv/bin/python -m bench.faults.sink --port 2525 --record var/sink.tsv [--store var/mail]
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, record: Path, store: Path | None):
        self.out = open(record, "a", buffering=1)  # noqa: SIM115 - open for the process's life
        self.store = store
        self.count = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # Offer PIPELINING as Postfix does, so the scenarios use the same send path.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        for recipient in envelope.rcpt_tos:
            self.out.write(f"{now:.6f}\t{recipient.lower()}\n")
        self.out.flush()
        if self.store is not None:
            self.count += 1
            (self.store / f"{self.count:07d}.eml").write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--store", type=Path)
    args = parser.parse_args()
    if args.store:
        args.store.mkdir(parents=True, exist_ok=True)
    controller = Controller(Recorder(args.record, args.store), hostname="127.0.0.1", port=args.port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
