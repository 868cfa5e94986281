#!/usr/bin/env bash
# Mutation testing of npucheck's verdict modules with mutmut (not part of the default CI run; see docs/mutation.md).
#
#   scripts/mutation.sh                         # all four: judge, stats, targets, compare
#   scripts/mutation.sh compare stats           # some of them
#   MUTATION_TESTS="tests/test_x.py" scripts/mutation.sh compare   # other test files than the default ones
#   MUTATION_CHILDREN=2 MUTATION_DIR=/tmp/m MUTATION_TIMEOUT_S=600 scripts/mutation.sh compare
#
# Needs `pip install -e '.[mutation]'` (mutmut 3). Each module is mutated in its own copy of the repository under
# $MUTATION_DIR/<module> (default build/mutation/, ignored by git), with only that module mutated and only its fast
# test files run; the copy keeps mutmut's results, so `cd $MUTATION_DIR/compare && mutmut results` (or
# `mutmut show NAME`) lists the survivors afterwards. Prints one score line per module:
#   compare: 300 mutants, 280 killed, 18 survived, 2 timeout: 94.0% killed
# (timeouts, segfaults and mutants caught by a type check count as killed; "no tests" and "not checked" do not).
# MUTATION_TIMEOUT_S stops mutmut (SIGINT) after that many seconds per module: the mutants not reached yet are
# "not checked" (mutmut runs the fastest-tested mutants first), and `cd $MUTATION_DIR/<module> && mutmut run`
# resumes them later. Exit status: 0, or 1 when a module could not be run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${MUTATION_DIR:-$root/build/mutation}
children=${MUTATION_CHILDREN:-$(nproc)}
limit=${MUTATION_TIMEOUT_S:-0}  # 0: no limit

module_path() {
    case $1 in
        judge) echo npucheck/read/judge.py ;;
        stats) echo npucheck/stats.py ;;
        targets) echo npucheck/targets.py ;;
        compare) echo npucheck/read/compare.py ;;
        *) echo "unknown module '$1' (judge, stats, targets, compare)" >&2; return 2 ;;
    esac
}

# The fast test files that pin each module (no device, no measuring run).
module_tests() {
    case $1 in
        judge) echo tests/test_judge_pinned.py tests/test_judge.py tests/test_targets.py ;;
        stats) echo tests/test_stats_pinned.py tests/test_stats.py tests/test_judge.py ;;
        targets) echo tests/test_targets_pinned.py tests/test_targets.py tests/test_targets_doc.py tests/test_judge.py ;;
        compare) echo tests/test_compare_pinned.py tests/test_compare_plot_report.py tests/test_compare_plot_model.py ;;
    esac
}

toml_list() {  # words -> a TOML list of strings
    local out="" item
    for item in "$@"; do out+="\"$item\", "; done
    echo "[${out%, }]"
}

command -v mutmut >/dev/null || { echo "mutmut is not installed: pip install -e '.[mutation]'" >&2; exit 1; }
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(judge stats targets compare)
status=0
for name in "${modules[@]}"; do
    path=$(module_path "$name")
    # shellcheck disable=SC2207
    tests=(${MUTATION_TESTS:-$(module_tests "$name")})
    copy=$work/$name
    rm -rf "$copy"
    mkdir -p "$copy"
    (cd "$root" && tar cf - --exclude=__pycache__ --exclude=docs/images npucheck kernels profiles tests docs pyproject.toml) | (cd "$copy" && tar xf -)
    cat >>"$copy/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["npucheck"]
only_mutate = ["$path"]
also_copy = ["kernels", "profiles", "docs"]  # docs: tests/test_targets_doc.py reads docs/targets.md and its examples
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]
pytest_add_cli_args_test_selection = $(toml_list "${tests[@]}")
EOF
    echo "== $name: mutating $path, tests: ${tests[*]}" >&2
    rc=0
    (cd "$copy" && timeout --signal=INT --kill-after=60 "$limit" mutmut run --max-children "$children") \
        >"$copy/mutmut-run.log" 2>&1 || rc=$?
    if [ "$rc" -eq 124 ]; then
        echo "$name: stopped after ${limit} s; the score below counts the mutants not reached as not checked" >&2
    elif [ "$rc" -ne 0 ]; then
        echo "$name: mutmut failed (exit $rc), see $copy/mutmut-run.log" >&2
        status=1
        continue
    fi
    (cd "$copy" && mutmut results --all true >"$copy/results.txt" 2>&1) || true
    python3 - "$name" "$copy/results.txt" <<'EOF'
import collections, sys

name, results = sys.argv[1], sys.argv[2]
counts = collections.Counter(line.rsplit(":", 1)[1].strip() for line in open(results) if ":" in line)
total = sum(counts.values())
killed = sum(counts[k] for k in ("killed", "timeout", "caught by type check", "segfault"))
parts = ", ".join(f"{n} {status}" for status, n in counts.most_common())
score = f"{100 * killed / total:.1f}% killed" if total else "no mutants"
print(f"{name}: {total} mutants, {parts}: {score}")
EOF
done
exit $status
