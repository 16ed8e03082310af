#!/usr/bin/env bash
# Rows/s of this tree against an earlier commit, measured in alternation on one machine:
# builds benches/rows.rs (self-contained) against both, then runs one round of each, A B A B
# …, `runs` times (B A every other time), so that the neighbours' load falls on both alike, and prints for each
# case the median of the per-alternation ratios this tree / the commit, with their range.
#   benches/compare_commits.sh <commit> [runs, default 15]
# With BENCH=caller it compares the caller's cost instead: benches/interleaved.rs
# `--caller` (the step span against the bare registry, one 15-round measurement a run).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: benches/compare_commits.sh <commit> [runs]}
runs=${2:-15}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$base" >/dev/null
mkdir -p "$work/base/benches/support"
bench=rows args=(--bench --rounds 1)
if [ "${BENCH:-rows}" = caller ]; then bench=interleaved args=(--caller); fi
cp benches/rows.rs benches/interleaved.rs "$work/base/benches/"
cp benches/support/*.rs "$work/base/benches/support/"
grep -q 'name = "rows"' "$work/base/Cargo.toml" || printf '\n[[bench]]\nname = "rows"\nharness = false\n' >> "$work/base/Cargo.toml"
build() { (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench --bench "$bench" --no-run --message-format=json 2>/dev/null) \
    | BENCH_NAME="$bench" python3 -c 'import json,os,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]==os.environ["BENCH_NAME"] and m.get("executable"): print(m["executable"])' | tail -1; }
old=$(build "$work/base" "${BASE_TARGET_DIR:-$work/target}")
new=$(build . target)
# A B, then B A: whichever runs second shares the machine with the first one's write-back
# of its deleted files, so each side goes second half of the time.
for i in $(seq "$runs"); do
    if [ $((i % 2)) -eq 1 ]; then
        "$old" "${args[@]}" | sed "s/^/old\t/"
        "$new" "${args[@]}" | sed "s/^/new\t/"
    else
        "$new" "${args[@]}" | sed "s/^/new\t/"
        "$old" "${args[@]}" | sed "s/^/old\t/"
    fi
done | python3 -c '
import re, sys, collections
runs = collections.defaultdict(lambda: {"old": [], "new": []})
for line in sys.stdin:
    side, text = line.rstrip("\n").split("\t", 1)
    found = re.match(r"(.*): median (\d+) rows/s.*, (\d+) rows per CPU second", text)
    if found:
        case, rate, cpu = found.groups()
        runs[case][side].append((float(rate), float(cpu)))
    found = re.match(r"1\. step span.*median ratio ([\d.]+)", text)
    if found:
        runs["step span x bare"][side].append((float(found.group(1)),))
    found = re.match(r"2\. other span.*median ratio ([\d.]+)", text)
    if found:
        runs["other span x bare"][side].append((float(found.group(1)),))
    found = re.match(r"\s+step span: median (\d+) ns", text)
    if found:
        runs["step span ns"][side].append((float(found.group(1)),))
med = lambda v: sorted(v)[len(v) // 2]
for case, sides in runs.items():
    two = len(sides["new"][0]) == 2
    for what, i in (("rows/s", 0), ("rows/CPU s", 1)) if two else (("", 0),):
        ratios = sorted(n[i] / o[i] for o, n in zip(sides["old"], sides["new"]))
        print("%-22s %-10s this tree %6.5g, commit %6.5g: ratio median %.2f (range %.2f-%.2f over %d alternations)"
              % (case, what, med([n[i] for n in sides["new"]]), med([o[i] for o in sides["old"]]),
                 ratios[len(ratios) // 2], ratios[0], ratios[-1], len(ratios)))
' 

