#!/usr/bin/env bash
# Records Go's answers for the differential suite: builds tests/go-template-ref (Go's text/template + Sprig, with
# sealed-secrets' function map) in GOPATH mode against Debian's packages and runs every case of
# template/tests/data/cases.jsonl through it. Writes template/tests/data/go-results.jsonl (or stdout with --stdout)
# and regenerates template/src/unicode_tables.rs from Go's unicode and strconv tables.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/Masterminds/sprig ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-masterminds-sprig-dev >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$repo/tests/go-template-ref" &&
    GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/cache" \
        go build -o "$work/go-template-ref" .)
# The Unicode tables the engine uses come from the same Go release (Go 1.19's Unicode 13).
if [ "${1:-}" != "--stdout" ]; then
    (cd "$repo/tests/go-template-ref/unicode-tables" &&
        GO111MODULE=off GOCACHE="$work/cache" go run . >"$repo/template/src/unicode_tables.rs")
fi
# TZ=UTC: the sealed-secrets controller image has no zone data, so Go's Local is UTC there.
if [ "${1:-}" = "--stdout" ]; then
    TZ=UTC "$work/go-template-ref" <"$here/data/cases.jsonl"
else
    TZ=UTC "$work/go-template-ref" <"$here/data/cases.jsonl" >"$here/data/go-results.jsonl"
    echo "recorded $(wc -l <"$here/data/go-results.jsonl") results"
fi
