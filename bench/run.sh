#!/usr/bin/env bash
# Outrider's isolation forest against scikit-learn's: builds the Rust side in release,
# produces the benchmark traffic's feature table with the CLI, installs scikit-learn in a
# virtual environment, and prints the comparison table (see README.md).
#
#   bench/run.sh                 # everything, with defaults
#   VENV=/tmp/venv WORK=/tmp/ob MIN_SECONDS=3 bench/run.sh --json out.json
#
# Extra arguments go to sklearn_compare.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/bench/.venv}"
WORK="${WORK:-${TMPDIR:-/tmp}/outrider-bench}"
MINUTES="${MINUTES:-60}"
USERS="${USERS:-2000}"
SEED="${SEED:-7}"
MIN_SECONDS="${MIN_SECONDS:-2}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$WORK"
cd "$ROOT"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet scikit-learn pandas pyarrow
fi

echo "building the release CLI and the iforest_bench example" >&2
cargo build --release --bin outrider
cargo build --release -p outrider-models --example iforest_bench
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET/release/examples/iforest_bench"
OUTRIDER="$TARGET/release/outrider"

if [ ! -f "$WORK/f.parquet" ]; then
    echo "generating $MINUTES minutes of traffic for $USERS users (seed $SEED)" >&2
    "$OUTRIDER" generate -o "$WORK/ev.jsonl" --minutes "$MINUTES" --users "$USERS" --seed "$SEED"
    "$OUTRIDER" features -i "$WORK/ev.jsonl" -o "$WORK/f.parquet" --campaigns "$WORK/ev.campaigns.json"
fi

# One BLAS/OpenMP thread: scikit-learn's per-core figure must be one core's.
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
    "$VENV/bin/python" "$ROOT/bench/sklearn_compare.py" \
    --bench "$BENCH" --features "$WORK/f.parquet" --min-seconds "$MIN_SECONDS" "$@"
