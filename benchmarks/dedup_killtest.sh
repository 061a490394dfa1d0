#!/bin/bash
# SIGKILL `dataprep dedup` (the whole process group) at several moments, resume, compare each
# output shard byte for byte with a clean run. Usage (from anywhere; PYTHONPATH = this checkout):
#   SRC=SHARDS DELAYS="1 2.5 4 5.5 7 9 10.5" WORKERS=1 bash benchmarks/dedup_killtest.sh
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${SRC:?set SRC to a dataset directory (bench_dedup.py --work DIR writes DIR/shards)}; W=${WORK:-/tmp/dedup_killtest}; mkdir -p $W
ARGS="--method minhash --threshold 0.8 --num-perm 128 -w ${WORKERS:-1} --quiet"
cd /tmp
rm -rf $W/clean; PYTHONPATH=$ROOT python -m dataprep dedup $SRC -o $W/clean $ARGS >/dev/null 2>&1 || echo "clean failed"
for delay in ${DELAYS:-1 2.5 4 5.5 7}; do
  rm -rf $W/out
  setsid env PYTHONPATH=$ROOT python -m dataprep dedup $SRC -o $W/out $ARGS >/dev/null 2>$W/err1 &
  pid=$!; sleep $delay; kill -9 -- -$pid 2>/dev/null; wait $pid 2>/dev/null
  recs=$(ls $W/out/.dataprep/tasks 2>/dev/null | sed 's/-.*//' | sort | uniq -c | tr '\n' ' ')
  PYTHONPATH=$ROOT python -m dataprep dedup $SRC -o $W/out $ARGS >/dev/null 2>$W/err2; rc=$?
  same=yes; for f in $W/clean/*.parquet; do cmp -s $f $W/out/$(basename $f) || same=NO; done
  [ "$(ls $W/clean/*.parquet | wc -l)" = "$(ls $W/out/*.parquet | wc -l)" ] || same=NO
  echo "kill at ${delay}s: records before resume [$recs] resume rc=$rc output identical=$same"
done
