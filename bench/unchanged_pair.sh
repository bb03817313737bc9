#!/usr/bin/env bash
# Records only, unchanged: this tree against another checkout of Kiel, run
# alternately on one home (paired, so that both share the machine's load).
#   bench/unchanged_pair.sh RECORDS REPS OTHER_CHECKOUT [WORKDIR]
# e.g.  git worktree add --detach /tmp/kiel-main main
#       bench/unchanged_pair.sh 50000 3 /tmp/kiel-main
# The input is bench/scale.py's (records only: a branch that matches
# nothing); one cold run and one unchanged run (it folds the cold run's
# change log) come first, then per repetition: other and this tree, each
# with processes = 1 and 2, after a sync and 2 s of quiet. Prints one line
# per run: wall, user and system CPU seconds, peak RSS (GNU time), load.
# The other checkout is imported through PYTHONPATH with this tree's venv.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
n=${1:?records}
reps=${2:?repetitions}
other=$(cd "${3:?another checkout of kiel}" && pwd)
work=${4:-$here/out/pair}
py=$repo/.venv/bin/python
mkdir -p "$work"
input=$work/in-$n
home=$work/home-$n
"$py" -c "import sys; sys.path.insert(0, '$here'); import scale; scale.write_input('$input', $n, 1000)"
rm -rf "$home"
"$py" -m kiel init --home "$home" >/dev/null 2>&1
printf '<?xml version="1.0" encoding="UTF-8"?>\n<branches>\n  <branch xpath="nothing"/>\n</branches>\n' \
    >"$home/etc/branches.xml"
sed -i 's/^\[kiel\]$/[kiel]\nprocesses = 1\ncontact = mailto:bench@example.org/' "$home/etc/kiel.conf"
run() {  # label, PYTHONPATH
    sync
    sleep 2
    PYTHONPATH=$2 /usr/bin/time -f "$1 load $(cut -d' ' -f1 /proc/loadavg): %e s wall %U s user %S s system %M KB" \
        "$py" -m kiel renew --quiet --home "$home" "$input/amf"
}
run "cold (this tree)" ""
run "first unchanged (this tree)" ""
for r in $(seq 1 "$reps"); do
    for which in other this; do
        for p in 1 2; do
            sed -i "s/^processes = .*/processes = $p/" "$home/etc/kiel.conf"
            if [ "$which" = other ]; then run "rep $r other p=$p" "$other"; else run "rep $r this p=$p" ""; fi
        done
    done
done
rm -rf "$home"
