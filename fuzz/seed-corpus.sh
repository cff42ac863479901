#!/usr/bin/env bash
# Regenerates the seed corpora from the golden cases: every line of
# ingest/testdata/<case>/input.log becomes one file, fuzz/corpus/parse_<format>/golden-<sha1>,
# where <format> is the case's `format` in case.toml. Only golden-* files are replaced; other
# files (inputs a fuzzing run found and someone chose to keep) are left alone.
# usage: fuzz/seed-corpus.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
corpus=$root/fuzz/corpus
targets=(canonical envoy nginx_json nginx_combined kong aws_apigw keycloak mapping)

for t in "${targets[@]}"; do
  mkdir -p "$corpus/parse_$t"
  find "$corpus/parse_$t" -maxdepth 1 -type f -name 'golden-*' -delete
done

for case_toml in "$root"/ingest/testdata/*/case.toml; do
  dir=$(dirname "$case_toml")
  format=$(sed -n 's/^[[:space:]]*format[[:space:]]*=[[:space:]]*"\([a-z_]*\)".*/\1/p' "$case_toml" | head -n 1)
  out=$corpus/parse_$format
  if [[ -z $format || ! -d $out || ! -f $dir/input.log ]]; then
    echo "skipping $dir (format '${format}')" >&2
    continue
  fi
  n=0
  # One file per line, without its line ending; the last line may lack a newline.
  while IFS= read -r line || [[ -n $line ]]; do
    sum=$(printf '%s' "$line" | sha1sum | cut -c1-40)
    printf '%s' "$line" >"$out/golden-$sum"
    n=$((n + 1))
  done <"$dir/input.log"
  echo "$(basename "$dir"): $n lines -> fuzz/corpus/parse_$format" >&2
done

for t in "${targets[@]}"; do
  count=$(find "$corpus/parse_$t" -maxdepth 1 -type f | wc -l)
  if [[ $count -eq 0 ]]; then echo "warning: fuzz/corpus/parse_$t is empty (no golden case?)" >&2; fi
done
