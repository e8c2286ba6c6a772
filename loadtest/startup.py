"""Start-up cost of the commands: ``decision --help``, ``decision validate``, ``audience-sync --help``, ...

    python -m loadtest.startup --rounds 9 [--baseline main=/tmp/main ...]

Runs each command as a new process, as its console script does, ``--rounds`` times, and prints the medians of
its wall time and of its CPU time (user + system of the child). ``--baseline NAME=DIR`` (repeatable: other
checkouts, e.g. ``git worktree add /tmp/main main``) runs the same commands from them too, interleaved round
by round so that the machine's other load falls on every tree alike, and gives each median CPU time as a
ratio to this checkout's: compare ratios, not times (shared, noisy machines). Then, for this checkout, the
packages whose imports cost a command the most (``-X importtime``, self time summed per package): what a
lazy import could save, and what it would.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "examples" / "retail" / "rules.yaml"
PROJECT = ("decision", "audience_sync", "inbound_common")


def _script(entry: str, *argv: str) -> str:
    """Python code that runs a console script's entry point with ``argv``, as the installed script does."""
    return f"import sys; from decision.cli.entry import {entry}; sys.argv = {[entry, *argv]!r}; sys.exit({entry}())"


COMMANDS = {
    "import decision.cli.main": "import decision.cli.main",
    "decision --help": _script("decision", "--help"),
    "decision validate": _script("decision", "validate", str(RULES)),
    "audience-sync --help": _script("audience_sync", "--help"),
}


def run_once(code: str, tree: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one run of ``code`` with ``tree`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tempfile.gettempdir(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_costs(code: str, tree: Path) -> collections.Counter[str]:
    """µs of import self time per package (the project's per subpackage) of one run of ``code``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, cwd=tempfile.gettempdir(),
                            capture_output=True, text=True, check=False)  # fmt: skip
    costs: collections.Counter[str] = collections.Counter()
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        parts = name.strip().split(".")
        costs[".".join(parts[:2]) if parts[0] in PROJECT else parts[0]] += int(own)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="runs of each command per tree")
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME=DIR",
                        help="another checkout to compare with, same interpreter (repeatable)")  # fmt: skip
    parser.add_argument("--packages", type=int, default=8, help="costliest packages shown per command")
    args = parser.parse_args()
    trees = {"this": ROOT}
    for given in args.baseline:
        name, _, folder = given.rpartition("=")
        trees[name or Path(folder).name] = Path(folder).resolve()
    walls: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    cpus: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for _ in range(args.rounds):
        for command, code in COMMANDS.items():
            for label, tree in trees.items():
                wall, cpu = run_once(code, tree)
                walls[command, label].append(wall)
                cpus[command, label].append(cpu)
    for command, code in COMMANDS.items():
        print(command)
        mine = statistics.median(cpus[command, "this"])
        for label in trees:
            wall, cpu = statistics.median(walls[command, label]), statistics.median(cpus[command, label])
            ratio = "" if label == "this" else f"   this / {label}: {mine / cpu:.2f}"
            print(f"  {label:<10} {cpu * 1000:6.0f} ms CPU  {wall * 1000:6.0f} ms wall{ratio}")
        runs = [import_costs(code, ROOT) for _ in range(min(args.rounds, 5))]
        packages = set().union(*runs)
        median = {p: statistics.median(run.get(p, 0) for run in runs) for p in packages}
        costliest = sorted(median.items(), key=lambda item: -item[1])[: args.packages]
        shown = ", ".join(f"{package} {us / 1000:.0f}" for package, us in costliest)
        print(f"  imports (ms of self time): {shown}")


if __name__ == "__main__":
    main()
