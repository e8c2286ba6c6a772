"""Instructions per Decide, counted by valgrind: a measure of a change that the machine's load cannot move.

Runs ``loadtest.inprocess`` (request bytes -> decision -> response bytes against a real Redis) under
``valgrind --tool=callgrind`` twice, with ``--calls`` and with ``--calls`` more, on the same Redis and
profiles: the difference of the two totals over the difference of calls is the instructions one call
costs, start-up and warm-up cancelled out. Same code, same inputs: the same count within a fraction of a
per cent, on a quiet box or one shared with other work (where CPU time swings by tens of per cent).

    python -m loadtest.instructions                         # this checkout, realistic and one-body traffic
    python -m loadtest.instructions --before /tmp/before    # and another checkout's code (its own .venv), same run
    python -m loadtest.instructions --env DECISION_STAGE_TIMING=1   # with a setting of the server's environment

``--before``: a checkout of another commit with a ``.venv`` (``./dev`` makes it; ``--same-venv``: this
checkout's ``.venv`` runs it, its code first on the path); this checkout's driver runs against that
checkout's code (a checkout whose servicer has no ``answer`` is driven through
``convert`` and the service, as its servicer did).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from decision.store.embedded import EmbeddedRedis
from loadtest.bench import load_profiles
from loadtest.inprocess import AUDIENCES, PER_PROFILE, PROFILES, SEED

ROOT = Path(__file__).resolve().parents[1]
_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def instructions(
    python: Path, checkout: Path, url: str, calls: int, traffic: str, folder: Path, env: dict[str, str]
) -> int:
    """Instructions of one driver run (the whole process: start-up, warm-up and ``calls`` calls)."""
    out = folder / f"callgrind.{traffic}.{calls}.out"
    driver = folder / "inprocess_driver.py"
    shutil.copy(ROOT / "loadtest" / "inprocess.py", driver)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
               str(python), str(driver), "--redis-url", url, "--no-load", "--calls", str(calls),
               "--traffic", traffic]  # fmt: skip
    run_env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(checkout), **env}
    subprocess.run(command, cwd=checkout, env=run_env, check=True, capture_output=True)
    match = _TOTALS.search(out.read_text(errors="replace"))
    if match is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(match.group(1))


def per_call(
    python: Path, checkout: Path, url: str, calls: int, traffic: str, folder: Path, env: dict[str, str]
) -> float:
    low = instructions(python, checkout, url, calls, traffic, folder, env)
    high = instructions(python, checkout, url, 2 * calls, traffic, folder, env)
    return (high - low) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="the calls the two runs differ by")
    parser.add_argument("--traffic", choices=("realistic", "one", "both"), default="both")
    parser.add_argument("--before", type=Path, help="another checkout (with its .venv) measured in the same run")
    parser.add_argument("--same-venv", action="store_true", help="run --before's code with this checkout's venv")
    parser.add_argument("--only-before", action="store_true", help="measure --before alone")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the driver (repeatable)")
    parser.add_argument("--redis-url", help="a Redis holding the bench's profiles (else one is started and loaded)")
    parser.add_argument("--keep", type=Path, help="keep callgrind's files here (for callgrind_annotate)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    env = dict(item.split("=", 1) for item in args.env)
    checkouts = [("this", Path(sys.executable), ROOT)]
    if args.before is not None:
        python = Path(sys.executable) if args.same_venv else args.before / ".venv" / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"{python} is missing: run ./dev once in {args.before}")
        checkouts.insert(0, ("before", python, args.before.resolve()))
        if args.only_before:
            del checkouts[1:]
    kinds = ("realistic", "one") if args.traffic == "both" else (args.traffic,)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = args.redis_url
        if url is None:
            url = stack.enter_context(EmbeddedRedis()).url
            load_profiles(url, PROFILES, AUDIENCES, PER_PROFILE, SEED)
        for traffic in kinds:
            for name, python, checkout in checkouts:
                folder = Path(tmp) if args.keep is None else args.keep / name
                folder.mkdir(parents=True, exist_ok=True)
                count = per_call(python, checkout, url, args.calls, traffic, folder, env)
                print(f"{name:>6}  {traffic:<9}  {count / 1e6:.3f} M instructions per call", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
