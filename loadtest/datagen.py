"""Generate a load-test population and ruleset, and load the population through audience-sync.

Writes ``OUT/members.csv`` (profile_id,audience_id: N profiles x K audiences
drawn from A) and ``OUT/rules.yaml`` (M offers over the same audiences, some
capped), then runs ``audience-sync load`` on the CSV: each audience becomes a
full snapshot, exactly as a daily export would arrive.

    python -m loadtest.datagen --profiles 1000000 --per-profile 20 --offers 200 --out bench-data \\
        --redis-url redis://127.0.0.1:6379
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

from loadtest.rulegen import audience_id, generate


def write_members(path: Path, profiles: int, audiences: int, per_profile: int, seed: int) -> int:
    rng = random.Random(seed)
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("profile_id,audience_id\n")
        for profile in range(profiles):
            for audience in rng.sample(range(audiences), per_profile):
                out.write(f"p{profile},{audience_id(audience)}\n")
                rows += 1
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--audiences", type=int, default=100)
    parser.add_argument("--per-profile", type=int, default=20)
    parser.add_argument("--offers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-data"))
    parser.add_argument("--redis-url", help="load into this Redis (default: only write the files)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rules.yaml").write_text(generate(args.offers, args.audiences, args.seed, caps=True))
    members = args.out / "members.csv"
    rows = write_members(members, args.profiles, args.audiences, args.per_profile, args.seed)
    print(f"wrote {members} ({rows} memberships) and {args.out / 'rules.yaml'} ({args.offers} offers)")
    if args.redis_url is None:
        return 0
    command = [sys.executable, "-m", "audience_sync.cli", "load", str(members), "--redis-url", args.redis_url]
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
