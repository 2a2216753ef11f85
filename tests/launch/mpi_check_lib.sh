# Sourced by the mpirun checks (mpi_*_check.sh SHARDREC MPIRUN_SH WORKDIR) with their arguments:
# sets bin, mpirun and w, works in a fresh WORKDIR, and provides
#   fail MSG     prints "FAIL: MSG" and exits 1;
#   synth        writes s.h5, the small synthetic dataset the checks train on;
#   losses FILE  the training losses a RUN/metrics.jsonl logged, one "step loss" line each at full
#                precision (repr);
#   same_losses RUN_A RUN_B WHAT  fails (naming WHAT, with the first differences) unless both runs
#                logged losses and the same ones, bitwise; sets `logged` to their count;
#   small_train_flags  a short 2-rank training on s.h5 with row-wise tables (an array).
set -u
bin=$1 mpirun=$2 w=$3
rm -rf "$w" && mkdir -p "$w" && cd "$w" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
synth() { "$bin" data synth --output s.h5 --users 300 --items 150 --events 4000 > /dev/null || fail "synth"; }
losses() {
  python3 -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["split"] == "train":
        print(r["step"], repr(r["loss"]))' "$1"
}
same_losses() {
  local a b
  a=$(losses "$1/metrics.jsonl") b=$(losses "$2/metrics.jsonl")
  [ -n "$a" ] || fail "$3: no losses logged in $1"
  [ "$a" = "$b" ] || fail "$3: the logged losses of $1 and $2 differ:
$(diff <(echo "$a") <(echo "$b") | head -10)"
  logged=$(echo "$a" | wc -l)
}
small_train_flags=(--data "$PWD/s.h5" --dim 16 --blocks 1 --max-len 10 --batch-size 32 --max-steps 40 --eval-every 0
  --log-every 0 --sharding row_wise)
