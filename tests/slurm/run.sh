#!/usr/bin/env bash
# `make test-slurm`: the SLURM profile on a real single-node Slurm (as root, Debian; CI runs it).
#
# Installs Slurm from Debian's packages where missing, starts munged, MariaDB, slurmdbd,
# slurmctld and slurmd by hand in a fresh folder (tests/slurm/cluster.sh), then, in a copy of
# this checkout whose profiles/slurm/config.yaml is edited exactly as the README tells a user
# (partition, account, device: cpu for a cluster without GPUs):
#   1. runs a small demo target (tests/slurm/demo.yaml) locally, as the reference;
#   2. runs it with `snakemake --profile profiles/slurm`, and `scancel`s the first extraction
#      shard once it is running;
#   3. checks (tests/slurm/check.py) that sacct lists every job with the profile's partition and
#      account and one CPU, that the cancelled job was reported and retried, that the run exited
#      on its own, and that every result file is identical to the local run's;
#   4. forces the manifest job again and cancels it and its retry: the run must report both and
#      end with an error naming the rule.
# Fails (never skips) when Slurm cannot be installed or started, and when a run outlives its
# limit (timeout -k: a snakemake that ignores SIGTERM is killed, the test still ends). Daemons
# stop on exit; the work folder is removed after a pass and kept (its path printed) after a
# failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY="$ROOT/.venv/bin/python"
PARTITION=dmms  # not the cluster's default partition (debug) ...
ACCOUNT=dmms_ci  # ... nor root's default account (other): sacct shows whether the profile's arrived
LIMIT=${SLURM_TEST_RUN_LIMIT:-600}  # seconds the Slurm run may take before it counts as hung

fail() { echo "test-slurm FAILED: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || fail "run as root (it installs and starts Slurm's daemons)"
[[ -x $PY ]] || fail "no $PY: run make venv first"

WORK=$(mktemp -d /var/tmp/dmms-slurm-test-XXXXXX)
chmod 755 "$WORK"
source "$ROOT/tests/slurm/cluster.sh"
RUN=""
finish() {
    local rc=$?
    [[ -z $RUN ]] || kill "$RUN" 2> /dev/null || true  # a snakemake still running after a failure
    slurm_stop
    if ((rc == 0)); then rm -rf "$WORK"; else echo "test-slurm: logs kept in $WORK" >&2; fi
}
trap finish EXIT
START=$SECONDS

running_job() {  # running_job RULE SKIP_ID: "ID COMMENT" of the first running job of RULE but SKIP_ID
    local line=""
    while kill -0 "$RUN" 2> /dev/null && [[ -z $line ]]; do
        line=$(squeue -h -t RUNNING -o '%i %k' | awk -v skip="$2" -v rule="^rule_$1" '$2 ~ rule && $1 != skip {print; exit}')
        sleep 0.2
    done
    [[ -n $line ]] && echo "$line"
}

slurm_install || fail "could not install Slurm from Debian's packages"
slurm_start "$WORK/cluster" "$PY" || fail "Slurm did not start (logs in $WORK/cluster/log)"
echo "test-slurm: Slurm up after $((SECONDS - START)) s"

# Two copies of the user's checkout (this one's files as they are now, untracked ones too,
# ignored ones not): the reference runs locally in one, the other gets its profile edited as the
# README says and runs through Slurm.
LOCAL="$WORK/local"
CLONE="$WORK/dmms"
mkdir "$LOCAL" "$CLONE"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf "$WORK/tree.tar")
tar -xf "$WORK/tree.tar" -C "$LOCAL"
tar -xf "$WORK/tree.tar" -C "$CLONE"
PROFILE="$CLONE/profiles/slurm/config.yaml"
sed -i -e "s/^\(  slurm_partition: \)\"[^\"]*\"/\1\"$PARTITION\"/" \
    -e "s/^\(  slurm_account: \)\"[^\"]*\"/\1\"$ACCOUNT\"/" -e 's/^  device: cuda$/  device: cpu/' "$PROFILE"
changed=$(diff "$ROOT/profiles/slurm/config.yaml" "$PROFILE" | grep -c '^>' || true)
[[ $changed == 3 ]] || fail "editing partition, account and device changed $changed lines of the profile, not 3"

export PATH="$ROOT/.venv/bin:$PATH"
CONFIG=(--configfile tests/slurm/demo.yaml)
TARGET=results/tiny_table.csv

t0=$SECONDS
(cd "$LOCAL" && timeout 900 snakemake --cores 2 "$TARGET" "${CONFIG[@]}") > "$WORK/local.log" 2>&1 \
    || fail "the local reference run failed (see $WORK/local.log)"
LOCAL_S=$((SECONDS - t0))
echo "test-slurm: local run ${LOCAL_S} s"

# Exactly as README's "Clusters" says, from the checkout; the small target's config added.
cd "$CLONE"
t0=$SECONDS
timeout -k 30 "$LIMIT" snakemake --profile profiles/slurm "$TARGET" "${CONFIG[@]}" > "$WORK/slurm.log" 2>&1 &
RUN=$!
read -r CANCELLED COMMENT < <(running_job extract_shard "") \
    || fail "no extraction shard was seen running to cancel (see $WORK/slurm.log)"
sleep 2  # mid-run: the job's snakemake is loading or extracting
scancel "$CANCELLED"
echo "test-slurm: cancelled running job $CANCELLED ($COMMENT)"
rc=0
wait "$RUN" || rc=$?
SLURM_S=$((SECONDS - t0))
((rc != 124 && rc != 137)) || fail "the Slurm run did not end within ${LIMIT} s (hung; see $WORK/slurm.log)"
((rc == 0)) || fail "the Slurm run exited with $rc (see $WORK/slurm.log)"
echo "test-slurm: Slurm run ${SLURM_S} s, exit 0"

"$PY" "$ROOT/tests/slurm/check.py" --local "$LOCAL" --slurm "$CLONE" --log "$WORK/slurm.log" \
    --cancelled "$CANCELLED" --partition "$PARTITION" --account "$ACCOUNT" --out "$WORK/summary.json" \
    || fail "checks failed (summary in $WORK/summary.json)"

# A job that fails on every attempt: the manifest job, forced to rerun, cancelled twice. The run
# must report both, retry once and then end with an error naming the rule.
t0=$SECONDS
timeout -k 30 300 snakemake --profile profiles/slurm -f results/tiny/manifest.csv "${CONFIG[@]}" > "$WORK/fail.log" 2>&1 &
RUN=$!
read -r first _ < <(running_job manifest "") || fail "the forced manifest job was not seen running (see $WORK/fail.log)"
scancel "$first"
read -r second _ < <(running_job manifest "$first") || fail "no retry of cancelled job $first was seen running (see $WORK/fail.log)"
scancel "$second"
rc=0
wait "$RUN" || rc=$?
((rc != 124 && rc != 137)) || fail "the run with a job cancelled twice did not end within 300 s (hung; see $WORK/fail.log)"
((rc != 0)) || fail "the run with a job cancelled twice exited 0"
for id in "$first" "$second"; do
    grep -q "SLURM-job '$id' failed" "$WORK/fail.log" || fail "job $id's failure is not reported (see $WORK/fail.log)"
done
grep -q "Error in rule manifest" "$WORK/fail.log" || fail "the failed run does not name rule manifest (see $WORK/fail.log)"
echo "test-slurm: manifest job cancelled twice ($first, retry $second): run ended with exit $rc after $((SECONDS - t0)) s, error reported"

mkdir -p "$ROOT/tests/slurm/last"
cp "$WORK/summary.json" "$ROOT/tests/slurm/last/summary.json"
echo "test-slurm: passed in $((SECONDS - START)) s (local run ${LOCAL_S} s, Slurm run ${SLURM_S} s)"
