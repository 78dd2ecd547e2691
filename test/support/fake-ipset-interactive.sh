#!/bin/sh
# Stands in for `ipset -exist -` (interactive mode) in unit tests of the long-lived runner:
# a prompt before each line, nothing on success, an error line on stderr for a line that
# contains "bad", the version line for "version", exit for "die". Appends "start" and
# every line it reads to $FAKE_IPSET_LOG.
echo "start $*" >> "$FAKE_IPSET_LOG"
while IFS= read -r line; do
  printf 'ipset> '
  echo "$line" >> "$FAKE_IPSET_LOG"
  case "$line" in
    version) echo 'ipset v7.17, protocol version: 7' ;;
    *bad*) echo "ipset v7.17: Syntax error: cannot parse $line" >&2 ;;
    die*) exit 3 ;;
  esac
done
