#!/usr/bin/env bash
# Make sure the binaries the project starts are present; install them with apt-get when we can.
set -euo pipefail
declare -A package=([mosquitto]=mosquitto [mosquitto_passwd]=mosquitto [redis-server]=redis-server)
package[prometheus]=prometheus  # tests/test_prometheus_stack.py scrapes sedna up with it
# benchmarks/scale.py measures the ceilings with the services' own tools.
package+=([redis-benchmark]=redis-tools [mosquitto_pub]=mosquitto-clients [mosquitto_sub]=mosquitto-clients)
package[chromium]=chromium  # the ops page's browser test (tests/test_opsui_page.py)
missing=()
for bin in "${!package[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${package[$bin]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl is missing; install it (e.g. apt-get install -y kubectl from the Kubernetes apt repository)" >&2
  exit 1
fi
