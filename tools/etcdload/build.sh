#!/usr/bin/env bash
# Build etcdload offline against the etcd Go client that Debian packages.
#   tools/etcdload/build.sh [OUT]   (default OUT: ./etcdload next to this script)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/etcdload}
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-etcd-server-dev >/dev/null
fi
cd "$here"
GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= go build -o "$out" .
echo "$out"
