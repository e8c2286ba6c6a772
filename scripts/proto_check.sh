#!/usr/bin/env bash
# buf lint on proto/, then buf breaking against the proto/ of a base commit (default: HEAD~1, the previous
# commit of main in CI). Runs inside the venv (./dev scripts/proto_check.sh): buf comes from the buf-bin wheel.
# The base's proto/ is taken with `git archive`, which works in worktrees and needs no buf git input.
# In a shallow clone without the base commit it deepens the clone by one commit; if that fails (no remote),
# or the base has no proto/, the breaking check is skipped with a note, not passed silently.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-HEAD~1}

buf lint proto
if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
    [[ $(git rev-parse --is-shallow-repository 2>/dev/null) == true ]] && git fetch --quiet --deepen=1 2>/dev/null || true
fi
if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
    echo "proto_check: no commit $base in this clone: buf breaking skipped" >&2
    exit 0
fi
against=$(mktemp -d)
trap 'rm -rf "$against"' EXIT
git archive "$base" proto | tar -x -C "$against" 2>/dev/null || true
if [[ ! -d $against/proto ]]; then
    echo "proto_check: $base has no proto/: buf breaking skipped" >&2
    exit 0
fi
buf breaking proto --against "$against/proto"
echo "proto_check: buf lint clean, no breaking change against $base" >&2
