"""
Run fault scenarios, each in its own process (Django is configured per scenario).

    .venv/bin/python -m bench.faults all                     # full size (100k kill-worker, ...)
    .venv/bin/python -m bench.faults all --small             # a few hundred recipients each
    .venv/bin/python -m bench.faults kill-worker --recipients 100000

The broker is BENCH_REDIS_URL (default redis://127.0.0.1:6379/13, queue consentdesk-bench),
except for restart-redis, which starts a Redis of its own; PostgreSQL is the server named by
FAULTS_POSTGRES_URL or DATABASE_URL (default the benchmarks' server), except for
restart-postgres, which starts a cluster of its own. Exit status: non-zero if any scenario
saw a violation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from bench import common

from .scenarios import FULL, SCENARIOS, SMALL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--recipients", type=int, help="default: the full size, or the small one with --small")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--broker", default=os.environ.get("BENCH_REDIS_URL", common.BENCH_REDIS))
    parser.add_argument("--queue", default=os.environ.get("BENCH_QUEUE", "consentdesk-bench"))
    args = parser.parse_args()
    if args.scenario == "all":
        failed = []
        for name in SCENARIOS:
            command = [sys.executable, "-m", "bench.faults", name, "--broker", args.broker, "--queue", args.queue]
            if args.small:
                command.append("--small")
            print(f"\n=== {name} ===", flush=True)
            if subprocess.run(command, cwd=common.ROOT, check=False).returncode:
                failed.append(name)
        print(f"\nFault scenarios: {len(SCENARIOS) - len(failed)} passed, {len(failed)} failed {failed or ''}")
        sys.exit(1 if failed else 0)
    recipients = args.recipients or (SMALL if args.small else FULL)[args.scenario]
    run = SCENARIOS[args.scenario]
    sys.exit(run(recipients=recipients, broker=args.broker, queue=args.queue, small=args.small))


if __name__ == "__main__":
    main()
