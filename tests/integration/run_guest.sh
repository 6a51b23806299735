#!/bin/bash
# Runs `vireo` once and checks its exit status and output.
#
#   run_guest.sh [checks...] -- VIREO ARGS...
#
# Checks:
#   --status S        expected exit status; S may list alternatives, e.g. "1|2" (required)
#   --stdout RE       an extended regex some stdout line must match (repeatable)
#   --no-stdout RE    an extended regex no stdout line may match (repeatable)
#   --stderr RE       an extended regex some stderr line must match (repeatable)
#   --stdin TEXT      feed TEXT (printf %b escapes allowed) on stdin; default: /dev/null
#   --stat NAME=MIN   the `stats: unclaimed ...` line on stderr must have NAME >= MIN
#   --stderr-lines N  stderr must have at most N lines (one-line error messages)
# On failure prints the command, the status and both outputs, and exits 1.
set -u

status_want=""
stdout_res=()
no_stdout_res=()
stderr_res=()
stats=()
stdin_text=""
have_stdin=0
stderr_max=""
while [[ $# -gt 0 && "$1" != "--" ]]; do
  case "$1" in
    --status) status_want="$2"; shift 2 ;;
    --stdout) stdout_res+=("$2"); shift 2 ;;
    --no-stdout) no_stdout_res+=("$2"); shift 2 ;;
    --stderr) stderr_res+=("$2"); shift 2 ;;
    --stdin) stdin_text="$2"; have_stdin=1; shift 2 ;;
    --stat) stats+=("$2"); shift 2 ;;
    --stderr-lines) stderr_max="$2"; shift 2 ;;
    *) echo "run_guest.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $# -gt 0 ]] && shift
if [[ -z "$status_want" || $# -eq 0 ]]; then
  echo "usage: run_guest.sh --status S [checks...] -- VIREO ARGS..." >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ $have_stdin -eq 1 ]]; then
  printf '%b' "$stdin_text" >"$tmp/stdin"
else
  : >"$tmp/stdin"
fi

start=$(date +%s%N)
"$@" <"$tmp/stdin" >"$tmp/stdout" 2>"$tmp/stderr"
status=$?
# Serial consoles end lines with CR LF; match on the text only.
tr -d '\r' <"$tmp/stdout" >"$tmp/stdout.txt" && mv "$tmp/stdout.txt" "$tmp/stdout"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))

failures=()
if ! [[ "$status" =~ ^($status_want)$ ]]; then
  failures+=("exit status $status, wanted $status_want")
fi
for re in "${stdout_res[@]+"${stdout_res[@]}"}"; do
  grep -Eq -- "$re" "$tmp/stdout" || failures+=("stdout has no line matching: $re")
done
for re in "${no_stdout_res[@]+"${no_stdout_res[@]}"}"; do
  grep -Eq -- "$re" "$tmp/stdout" && failures+=("stdout has a line matching: $re")
done
for re in "${stderr_res[@]+"${stderr_res[@]}"}"; do
  grep -Eq -- "$re" "$tmp/stderr" || failures+=("stderr has no line matching: $re")
done
if [[ -n "$stderr_max" ]]; then
  lines=$(wc -l <"$tmp/stderr")
  [[ "$lines" -le "$stderr_max" ]] || failures+=("stderr has $lines lines, wanted <= $stderr_max")
fi
if [[ ${#stats[@]} -gt 0 ]]; then
  line=$(grep -E '^stats: unclaimed ' "$tmp/stderr" | tail -n 1)
  if [[ -z "$line" ]]; then
    failures+=("stderr has no 'stats: unclaimed' line")
  else
    for s in "${stats[@]}"; do
      name=${s%%=*}
      min=${s#*=}
      value=$(sed -nE "s/.*[ ]${name}=([0-9]+).*/\1/p" <<<"$line")
      if [[ -z "$value" ]]; then
        failures+=("stats line has no $name: $line")
      elif [[ "$value" -lt "$min" ]]; then
        failures+=("stats $name=$value, wanted >= $min")
      fi
    done
  fi
fi

if [[ ${#failures[@]} -gt 0 ]]; then
  echo "FAILED: $*"
  printf '  %s\n' "${failures[@]}"
  echo "--- exit status: $status (${elapsed_ms} ms)"
  echo "--- stdout:"
  cat "$tmp/stdout"
  echo "--- stderr:"
  cat "$tmp/stderr"
  exit 1
fi
echo "ok: status $status in ${elapsed_ms} ms: $*"
exit 0
