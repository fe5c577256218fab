#!/bin/sh
# expect_exit.sh CODE TEXT PROGRAM [ARGS...]: runs PROGRAM ARGS and fails unless it exits with CODE
# and prints TEXT (on stdout or stderr). The command-line tests assert --help and bad flags with it.
code=$1
text=$2
shift 2
output=$("$@" 2>&1)
status=$?
if [ "$status" -ne "$code" ]; then
  printf '%s\nexpected exit code %s, got %s from: %s\n' "$output" "$code" "$status" "$*" >&2
  exit 1
fi
case $output in
  *"$text"*) ;;
  *) printf '%s\nexpected the output of %s to contain: %s\n' "$output" "$*" "$text" >&2; exit 1 ;;
esac
