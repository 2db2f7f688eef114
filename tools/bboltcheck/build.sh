#!/usr/bin/env bash
# Build bboltcheck offline against Debian's go.etcd.io/bbolt (golang-github-coreos-bbolt-dev,
# pulled in by golang-etcd-server-dev), as tools/etcdload/build.sh does.
#   tools/bboltcheck/build.sh [OUT]   (default OUT: ./bboltcheck next to this script)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/bboltcheck}
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/go.etcd.io/bbolt ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-coreos-bbolt-dev >/dev/null
fi
cd "$here"
GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= go build -o "$out" .
echo "$out"
