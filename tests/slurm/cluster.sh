# A single-node Slurm cluster with accounting, started by hand (no systemd) in one folder.
# Sourced by tests/slurm/run.sh; needs root (Debian: apt-get installs what is missing).
#
#   slurm_install                 slurm-wlm, slurmdbd, munge, mariadb-server from Debian's packages
#   slurm_start DIR PYTHON        munged, mariadbd, slurmdbd, slurmctld, slurmd -N localhost, all
#                                 with their sockets, ports, state and logs under DIR; exports
#                                 SLURM_CONF. Partitions: debug (the default) and dmms; accounts:
#                                 other (root's default) and dmms_ci. Returns 1 if anything fails.
#   slurm_stop                    stops every daemon slurm_start started (by its pid)
#
# Everything lives in DIR and on ports picked free at start, so it does not touch /run/munge or
# a MariaDB already running on the machine. One exception: /etc/slurm/slurm.conf becomes a link
# to DIR's slurm.conf while the cluster runs (removed by slurm_stop), because srun inside a job
# cannot see SLURM_CONF: snakemake-executor-plugin-slurm-jobstep 0.6.1 drops every SLURM_*
# variable but the job's identity from the environment of its srun. A machine that already has
# a slurm.conf of its own, or a running test's link, is refused; a killed test's link is replaced.

SLURM_PIDS=()
SLURM_ETC_LINK=""
ETC_CONF=/etc/slurm/slurm.conf

slurm_install() {
    local need=()
    for bin in slurmctld slurmd slurmdbd sacct munged mariadbd; do
        command -v "$bin" > /dev/null || PATH="$PATH:/usr/sbin" command -v "$bin" > /dev/null || need+=("$bin")
    done
    if ((${#need[@]})); then
        echo "slurm: installing Debian packages (missing: ${need[*]})"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server > /dev/null
    fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND (10 s at most each) until it succeeds;
# past the deadline, show its output and fail.
wait_for() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    while ((SECONDS < deadline)); do
        timeout 10 "$@" > /dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "slurm: $what did not come up within the time allowed; last try:" >&2
    timeout 10 "$@" >&2
    return 1
}

slurm_daemon() {  # slurm_daemon LOG COMMAND...: start in the foreground mode, in the background
    local log=$1
    shift
    "$@" >> "$log" 2>&1 &
    SLURM_PIDS+=($!)
}

slurm_start() {
    local dir=$1 python=$2
    export PATH="$PATH:/usr/sbin"
    mkdir -p "$dir"/{munge,key,mysql,ctld,spool,log}
    chmod 755 "$dir" "$dir/munge"  # munged wants its socket folder open to all
    chmod 700 "$dir/key"
    read -r ctld_port slurmd_port dbd_port db_port < <("$python" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
    local mem_mb
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.85)}' /proc/meminfo)
    local socket="$dir/munge/munge.socket"

    # munge: a fresh key, our own socket
    mungekey --create --keyfile="$dir/key/munge.key" --force || return 1
    chmod 400 "$dir/key/munge.key"
    slurm_daemon "$dir/log/munged.out" munged --foreground --force --socket="$socket" \
        --key-file="$dir/key/munge.key" --pid-file="$dir/munge/munged.pid" \
        --seed-file="$dir/munge/munged.seed" --log-file="$dir/log/munged.log"
    wait_for 20 munged munge --socket="$socket" -n || return 1

    # MariaDB for slurmdbd, on 127.0.0.1:$db_port
    mariadb-install-db --user=root --datadir="$dir/mysql" --auth-root-authentication-method=normal \
        --skip-test-db > "$dir/log/mariadb-install.log" 2>&1 || { cat "$dir/log/mariadb-install.log"; return 1; }
    slurm_daemon "$dir/log/mariadbd.out" mariadbd --no-defaults --user=root --datadir="$dir/mysql" \
        --socket="$dir/mysql.sock" --port="$db_port" --bind-address=127.0.0.1 \
        --pid-file="$dir/mysql.pid" --log-error="$dir/log/mariadbd.log" --innodb-buffer-pool-size=64M
    wait_for 60 mariadbd mariadb --no-defaults --socket="$dir/mysql.sock" -u root -e "select 1" || return 1
    mariadb --no-defaults --socket="$dir/mysql.sock" -u root -e \
        "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'dmms'; GRANT ALL ON *.* TO 'slurm'@'127.0.0.1';" || return 1

    export SLURM_CONF="$dir/slurm.conf"
    cat > "$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$socket
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=dmms
StorageLoc=slurm_acct_dmms
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
EOF
    chmod 600 "$dir/slurmdbd.conf"
    # MinJobAge 300 (Slurm's default), kept explicit: the profile's squeue status checks need
    # finished jobs listed for 3 x its first check interval or more (profiles/slurm/config.yaml).
    cat > "$SLURM_CONF" <<EOF
ClusterName=dmmsci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$socket
AccountingStoreFlags=job_comment
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=dmms Nodes=localhost Default=NO MaxTime=INFINITE State=UP
EOF

    if [[ -e $ETC_CONF || -L $ETC_CONF ]]; then
        local target
        target=$(readlink "$ETC_CONF" || true)
        # A link into another test's folder is stale when that folder is gone or no slurmctld
        # runs on the machine (its test was killed before slurm_stop): take it over, say so.
        if [[ $target != /var/tmp/dmms-slurm-*/slurm.conf ]] || { [[ -e $target ]] && pgrep -x slurmctld > /dev/null; }; then
            echo "slurm: $ETC_CONF exists (${target:-a file}): this machine has a Slurm of its own or another test runs; use a fresh machine" >&2
            return 1
        fi
        echo "slurm: removing $ETC_CONF -> $target, left by a test that was killed (no slurmctld runs)" >&2
        rm -f "$ETC_CONF"
    fi
    mkdir -p /etc/slurm
    ln -s "$SLURM_CONF" "$ETC_CONF" && SLURM_ETC_LINK=$SLURM_CONF

    slurm_daemon "$dir/log/slurmdbd.out" slurmdbd -D
    wait_for 60 slurmdbd sacctmgr -i list cluster || { tail "$dir/log/slurmdbd.log"; return 1; }
    sacctmgr -i add cluster dmmsci > /dev/null || return 1
    sacctmgr -i add account other,dmms_ci cluster=dmmsci > /dev/null || return 1
    sacctmgr -i add user root account=other,dmms_ci defaultaccount=other cluster=dmmsci > /dev/null || return 1

    slurm_daemon "$dir/log/slurmctld.out" slurmctld -D -i
    wait_for 60 slurmctld scontrol ping || { tail "$dir/log/slurmctld.log"; return 1; }
    slurm_daemon "$dir/log/slurmd.out" slurmd -D -N localhost
    wait_for 60 "slurmd (node localhost idle)" bash -c 'sinfo -h -n localhost -o %t | grep -qx idle' || { tail "$dir/log/slurmd.log" "$dir/log/slurmctld.log"; return 1; }
    # a job that must run and be accounted before the test trusts the cluster
    srun -p dmms -A dmms_ci -t 1 true || return 1
    echo "slurm: cluster dmmsci up in $dir (partitions debug*, dmms; accounts other*, dmms_ci; ${mem_mb} MB)"
}

slurm_stop() {  # safe under set -e: a daemon that already exited is no error
    local pid
    for ((i = ${#SLURM_PIDS[@]} - 1; i >= 0; i--)); do  # slurmd first, munged last
        pid=${SLURM_PIDS[i]}
        if kill "$pid" 2> /dev/null; then
            for _ in $(seq 40); do kill -0 "$pid" 2> /dev/null || break; sleep 0.25; done
            kill -9 "$pid" 2> /dev/null || true
        fi
    done
    SLURM_PIDS=()
    if [[ -n $SLURM_ETC_LINK && $(readlink "$ETC_CONF" || true) == "$SLURM_ETC_LINK" ]]; then
        rm -f "$ETC_CONF"
    fi
    SLURM_ETC_LINK=""
}
