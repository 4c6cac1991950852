#!/usr/bin/env bash
# kubectl, which the tests drive against the Kubernetes stand-in (tests/test_kubectl.py and the README's
# walkthrough, tests/test_walkthrough.py). Any kubectl from 1.20 on does; when there is none, Debian's
# (package kubernetes-client) is installed when apt-get can run as root; otherwise says what to install and fails.
set -euo pipefail
command -v kubectl >/dev/null && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
else
  echo "the tests need kubectl: apt-get install kubernetes-client (or any kubectl from 1.20 on)" >&2
  exit 1
fi
