#!/usr/bin/env bash
# The peer benchmark in one command: ensi and OpenFHE at the same parameter set, interleaved
# (ensi, OpenFHE, ensi, OpenFHE, ...), then the NTT against tfhe-ntt, then one table.
#
#   bench/peer.sh                 # N = 2^16, Q = 60 + 23 x 50 bits, dnum 3, 1 thread, 3 rounds
#   THREADS=2 ROUNDS=5 bench/peer.sh
#   bench/peer.sh --smoke         # tiny parameters, one round; skips OpenFHE if it cannot install
#   HEXL=1 bench/peer.sh          # also the OpenFHE + Intel HEXL build (bench/setup_openfhe_hexl.sh)
#
# Environment: THREADS (1), ROUNDS (3), REPS (3 per round and side), LOG_N (16), LEVELS (23),
# DNUM (3), OUT (a fresh directory under bench/results/). Extra arguments go to both sides.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
THREADS="${THREADS:-1}"; ROUNDS="${ROUNDS:-3}"; REPS="${REPS:-3}"
LOG_N="${LOG_N:-16}"; LEVELS="${LEVELS:-23}"; DNUM="${DNUM:-3}"
OUT="${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
if [ "$smoke" = 1 ]; then ROUNDS=1; common=(--smoke); else
  common=(--log-n "$LOG_N" --first-mod 60 --scale-bits 50 --levels "$LEVELS" --dnum "$DNUM"
          --threads "$THREADS" --reps "$REPS")
fi

echo "== building ensi (release)" >&2
(cd "$root" && cargo build --release -q -p ensi-cli && cargo build --release -q -p ensi-math --example ntt_peer)
ensi="$root/target/release/ensi"

have_openfhe=1
if ! "$here/setup_openfhe.sh" >&2; then
  if [ "$smoke" = 1 ]; then
    echo "== OpenFHE could not be installed: smoke run of the ensi side only" >&2
    have_openfhe=0
  else
    echo "OpenFHE is needed for the comparison (see bench/README.md)" >&2
    exit 1
  fi
fi

hexl="${HEXL:-0}"
if [ "$hexl" = 1 ]; then "$here/setup_openfhe_hexl.sh" >&2; fi

ensi_files=(); ofhe_files=(); hexl_files=()
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r/$ROUNDS: ensi" >&2
  "$ensi" bench ckks "${common[@]}" "$@" > "$OUT/ensi_$r.json"
  ensi_files+=("$OUT/ensi_$r.json")
  if [ "$have_openfhe" = 1 ]; then
    echo "== round $r/$ROUNDS: OpenFHE" >&2
    "$here/.venv/bin/python" "$here/openfhe_bench.py" "${common[@]}" "$@" > "$OUT/openfhe_$r.json"
    ofhe_files+=("$OUT/openfhe_$r.json")
  fi
  if [ "$hexl" = 1 ]; then
    echo "== round $r/$ROUNDS: OpenFHE + HEXL" >&2
    "$here/.hexl/driver" "${common[@]}" "$@" > "$OUT/openfhe_hexl_$r.json"
    hexl_files+=("$OUT/openfhe_hexl_$r.json")
  fi
done
echo "== NTT: ensi vs tfhe-ntt" >&2
rounds=200; [ "$smoke" = 1 ] && rounds=5
"$root/target/release/examples/ntt_peer" "$rounds" > "$OUT/ntt.json"

if [ "$have_openfhe" = 1 ]; then
  python3 "$here/compare.py" --ensi "${ensi_files[@]}" --openfhe "${ofhe_files[@]}" --ntt "$OUT/ntt.json" | tee "$OUT/table.md"
else
  python3 "$here/compare.py" --ntt "$OUT/ntt.json" | tee "$OUT/table.md"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); done=sorted(d["ops"]) + (["bootstrap"] if d.get("bootstrap") else []); assert done, "empty"; print("ensi side ok:", ", ".join(done))' "${ensi_files[0]}"
fi
if [ "$hexl" = 1 ]; then
  echo "== against OpenFHE + HEXL" | tee -a "$OUT/table.md"
  python3 "$here/compare.py" --ensi "${ensi_files[@]}" --openfhe "${hexl_files[@]}" | tee -a "$OUT/table.md"
fi
echo "results in $OUT" >&2
