#!/usr/bin/env bash
# npm run cluster: three members on loopback, client ports 2379/22379/32379 (as etcd's Procfile),
# peer ports 2380/22380/32380, data in ./cluster.etcd/<name>, logs in ./cluster.etcd/<name>.log.
# Ctrl-C stops all three.  CLUSTER_DIR and CLUSTER_BASE_PORTS ("2379 22379 32379") override.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CLUSTER_DIR:-./cluster.etcd}
read -r -a ports <<<"${CLUSTER_BASE_PORTS:-2379 22379 32379}"
mkdir -p "$dir"
cluster=""
for i in 0 1 2; do cluster+="${cluster:+,}infra$((i + 1))=http://127.0.0.1:$((ports[i] + 1))"; done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for i in 0 1 2; do
  name=infra$((i + 1)) c=${ports[i]} p=$((ports[i] + 1))
  node bin/cairn --name "$name" --data-dir "$dir/$name" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster-token cairn-cluster-1 --initial-cluster "$cluster" --initial-cluster-state new \
    "$@" >>"$dir/$name.log" 2>&1 &
  pids+=($!)
  echo "$name: client http://127.0.0.1:$c  peer http://127.0.0.1:$p  log $dir/$name.log"
done
wait
