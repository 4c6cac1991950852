#!/usr/bin/env bash
# The real Prometheus parts the tests use, from Debian: the metrics tests push to a Pushgateway (the tests
# start it), the alert tests run promtool (from the prometheus package). Installed when missing and
# apt-get can run as root; otherwise says what to install and fails.
set -euo pipefail
command -v prometheus-pushgateway >/dev/null && command -v promtool >/dev/null && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus-pushgateway prometheus >/dev/null
else
  echo "the tests need prometheus-pushgateway and promtool: apt-get install prometheus-pushgateway prometheus" >&2
  exit 1
fi
