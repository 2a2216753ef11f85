#!/bin/bash
# Under mpirun: a damaged checkpoint file (checked by another rank than 0) ends every rank with one
# message from rank 0 and exit status 2, without MPI_Abort; --resume=latest-valid on a different
# world size falls back to the previous checkpoint.
#   mpi_resume_check.sh SHARDREC MPIRUN_SH WORKDIR
source "$(dirname "$0")/mpi_check_lib.sh"
synth
"$mpirun" -np 2 "$bin" train --data s.h5 --run-dir run --dim 16 --blocks 1 --max-len 10 --batch-size 32 \
  --max-steps 12 --eval-every 0 --checkpoint-every 4 --keep-checkpoints 3 --log-every 0 > train.log 2>&1 ||
  fail "training: $(tail -5 train.log)"
bad=run/checkpoints/step-000000012/embeddings-rank1.h5
python3 - "$bad" <<'PY' || fail "damaging $bad"
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1
open(p, "wb").write(b)
PY
"$mpirun" -np 2 "$bin" train --resume run --max-steps 16 > resume.log 2>&1
rc=$?
[ $rc -eq 2 ] || fail "exit status $rc, expected 2: $(cat resume.log)"
[ "$(grep -o 'shardrec: error:' resume.log | wc -l)" -eq 1 ] || fail "expected exactly one error line: $(cat resume.log)"
grep -q "shardrec: error: $bad: checksum mismatch (the file is damaged); use --resume=latest-valid" resume.log ||
  fail "the error does not name the file: $(cat resume.log)"
grep -q MPI_ABORT resume.log && fail "an agreed error must not abort the job: $(cat resume.log)"
"$mpirun" -np 3 "$bin" train --resume=latest-valid --run-dir run --max-steps 16 --log-every 0 > valid.log 2>&1 ||
  fail "latest-valid: $(cat valid.log)"
grep -q "skipping damaged checkpoint: $bad" valid.log || fail "no warning: $(cat valid.log)"
grep -q "resumed from run/checkpoints/step-000000008: step 8" valid.log || fail "did not fall back: $(cat valid.log)"
echo "mpi resume: one agreed error on 2 ranks, fallback on 3 ranks ok"
