#!/usr/bin/env bash
# reasonkit-audit and adk-telemetry 2.3.0's SqliteSpanExporter on the same spans, side by
# side: two binaries built from one workload (common.rs), run in alternated processes
# (ours, peer, ours, peer, …), each in a fresh database. Prints the table BENCHMARKS.md
# keeps. Needs the sqlite3 tool (to count rows) and the crates.io registry (the peer).
#
#   benches/peer/run.sh            # ROUNDS=5 alternations of each measure; MEMORY_ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-5}
MEMORY_ROUNDS=${MEMORY_ROUNDS:-2}
TARGET=${PEER_TARGET_DIR:-$(pwd)/../../target/peer}
cargo build --release --quiet --manifest-path ours/Cargo.toml --target-dir "$TARGET/ours"
cargo build --release --quiet --manifest-path adk/Cargo.toml --target-dir "$TARGET/adk"
OURS="$TARGET/ours/release/peer-bench-ours"
PEER="$TARGET/adk/release/peer-bench-adk"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The rows a side's database holds: one per span on both sides.
rows() {
  case "$1" in
    ours) sqlite3 "$2" "SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM steps)" ;;
    peer) sqlite3 "$2" "SELECT count(*) FROM spans" ;;
  esac
}
# The median of the numbers on standard input.
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# The range of the numbers on standard input.
range() { sort -g | awk 'NR==1{lo=$1} {hi=$1} END {print lo "–" hi}'; }

declare -A out
run() { # side mode round → the figure it prints
  local side=$1 mode=$2 db="$WORK/$1-$2-$3.db"
  local bin=$OURS; [ "$side" = peer ] && bin=$PEER
  "$bin" "$mode" "$db"
}

for round in $(seq "$ROUNDS"); do
  for side in ours peer; do
    read -r layer bare < <(run "$side" caller "$round")
    out[$side.caller]+="$layer "
    out[$side.ratio]+="$(awk -v l="$layer" -v b="$bare" 'BEGIN {printf "%.2f", l / b}') "
    for mode in text text-free; do
      out[$side.$mode]+="$(run "$side" "$mode" "$round") "
    done
    db="$WORK/$side-exit-$round.db"
    run "$side" exit "$round" > /dev/null
    out[$side.exit]+="$(rows "$side" "$db") "
  done
done
for round in $(seq "$MEMORY_ROUNDS"); do
  for side in ours peer; do
    kib=$(run "$side" memory "$round")
    out[$side.memory]+="$(awk -v k="$kib" 'BEGIN {printf "%.1f", k / 1024}') "
    rm -f "$WORK/$side-memory-$round.db"*
  done
done

cell() { # side key → "median (range)"
  local values; values=$(tr ' ' '\n' <<< "${out[$1.$2]}" | grep -v '^$')
  echo "$(median <<< "$values") ($(range <<< "$values"))"
}
echo "| measure (median, range; $ROUNDS alternated processes each, memory $MEMORY_ROUNDS) | reasonkit-audit | adk-telemetry 2.3.0 |"
echo "|---|---|---|"
echo "| caller: ns per 5-field step span | $(cell ours caller) | $(cell peer caller) |"
echo "| caller: × the bare registry in the same process | $(cell ours ratio) | $(cell peer ratio) |"
echo "| end to end, steps with two 20–200-character summaries: spans/s until committed | $(cell ours text) | $(cell peer text) |"
echo "| end to end, text-free steps: spans/s until committed | $(cell ours text-free) | $(cell peer text-free) |"
echo "| peak RSS over 1,000,000 steps (1,100,000 spans), MiB | $(cell ours memory) | $(cell peer memory) |"
echo "| rows kept when main returns without a flush, of 20,000 | $(cell ours exit) | $(cell peer exit) |"
