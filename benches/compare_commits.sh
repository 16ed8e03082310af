#!/usr/bin/env bash
# Rows/s of this tree against an earlier commit, measured in alternation on one machine:
# builds benches/rows.rs (self-contained) against both, then runs one round of each, A B A B
# …, `runs` times (B A every other time), so that the neighbours' load falls on both alike, and prints for each
# case the median of the per-alternation ratios this tree / the commit, with their range.
#   benches/compare_commits.sh <commit> [runs, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: benches/compare_commits.sh <commit> [runs]}
runs=${2:-15}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$base" >/dev/null
mkdir -p "$work/base/benches/support"
cp benches/rows.rs "$work/base/benches/rows.rs"
cp benches/support/shapes.rs "$work/base/benches/support/shapes.rs"
grep -q 'name = "rows"' "$work/base/Cargo.toml" || printf '\n[[bench]]\nname = "rows"\nharness = false\n' >> "$work/base/Cargo.toml"
build() { (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench --bench rows --no-run --message-format=json 2>/dev/null) \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="rows" and m.get("executable"): print(m["executable"])' | tail -1; }
old=$(build "$work/base" "${BASE_TARGET_DIR:-$work/target}")
new=$(build . target)
# A B, then B A: whichever runs second shares the machine with the first one's write-back
# of its deleted files, so each side goes second half of the time.
for i in $(seq "$runs"); do
    if [ $((i % 2)) -eq 1 ]; then
        "$old" --bench --rounds 1 | sed "s/^/old\t/"
        "$new" --bench --rounds 1 | sed "s/^/new\t/"
    else
        "$new" --bench --rounds 1 | sed "s/^/new\t/"
        "$old" --bench --rounds 1 | sed "s/^/old\t/"
    fi
done | python3 -c '
import re, sys, collections
runs = collections.defaultdict(lambda: {"old": [], "new": []})
for line in sys.stdin:
    side, text = line.rstrip("\n").split("\t", 1)
    found = re.match(r"(.*): median (\d+) rows/s.*, (\d+) rows per CPU second", text)
    if not found:
        continue
    case, rate, cpu = found.groups()
    runs[case][side].append((float(rate), float(cpu)))
med = lambda v: sorted(v)[len(v) // 2]
for case, sides in runs.items():
    for what, i in (("rows/s", 0), ("rows/CPU s", 1)):
        ratios = sorted(n[i] / o[i] for o, n in zip(sides["old"], sides["new"]))
        print("%-22s %-10s this tree %6.0f, commit %6.0f: ratio median %.2f (range %.2f-%.2f over %d alternations)"
              % (case, what, med([n[i] for n in sides["new"]]), med([o[i] for o in sides["old"]]),
                 ratios[len(ratios) // 2], ratios[0], ratios[-1], len(ratios)))
' 

