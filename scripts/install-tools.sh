#!/usr/bin/env bash
# Build the pinned real tools (OPA, kube-apiserver, kubectl, etcd, vegeta, prometheus + promtool) from the Go module proxy
# into .tools/bin. Each build is cached per version under $EDGEPOLICY_TOOLS_CACHE (default
# ~/.cache/edgepolicy/tools), so a second run, or a fresh clone on the same machine, only copies.
# Usage: scripts/install-tools.sh [opa|k8s|etcd|vegeta|prometheus|all]...
set -euo pipefail

OPA_VERSION=v1.22.3
K8S_VERSION=v1.37.2        # pinned in scripts/tools/k8s/go.mod
ETCD_VERSION=v3.7.3        # pinned in scripts/tools/etcd/go.mod
VEGETA_VERSION=v12.13.0
# Prometheus v3.x is published to the Go module proxy as v0.3xx.y (v0.316.0 is Prometheus 3.16.0).
PROMETHEUS_VERSION=v0.316.0

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.tools/bin"
CACHE="${EDGEPOLICY_TOOLS_CACHE:-$HOME/.cache/edgepolicy/tools}"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$BIN"

log() { echo "install-tools: $*" >&2; }

# install_from_cache NAME VERSION_DIR: copy $CACHE/VERSION_DIR/NAME into .tools/bin unless already identical.
install_from_cache() {
  local name="$1" dir="$CACHE/$2"
  if ! cmp -s "$dir/$name" "$BIN/$name" 2>/dev/null; then
    cp -f "$dir/$name" "$BIN/$name.tmp" && mv -f "$BIN/$name.tmp" "$BIN/$name"
  fi
}

need_go() {
  command -v go >/dev/null || { log "Go is required to build $1 (https://go.dev/doc/install)"; exit 1; }
}

# go_install NAME VERSION MODULE: `go install MODULE@VERSION` into the cache (first time only), then
# copy NAME into .tools/bin.
go_install() {
  local name="$1" version="$2" module="$3" dir="$CACHE/$1-$2"
  if [[ ! -x "$dir/$name" ]]; then
    need_go "$name"; log "building $name $version (first time only)"
    mkdir -p "$dir"
    GOBIN="$dir" go install "$module@$version"
  fi
  install_from_cache "$name" "$name-$version"
}

tool_opa() { go_install opa "$OPA_VERSION" github.com/open-policy-agent/opa; }

from_kubebuilder_assets() {
  # Reuse envtest binaries the user already has.
  local name="$1"
  if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$name" ]]; then
    ln -sf "$KUBEBUILDER_ASSETS/$name" "$BIN/$name"
    return 0
  fi
  return 1
}

tool_k8s() {
  if from_kubebuilder_assets kube-apiserver && from_kubebuilder_assets kubectl; then
    log "using kube-apiserver and kubectl from KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"; return
  fi
  local dir="$CACHE/k8s-$K8S_VERSION"
  if [[ ! -x "$dir/kube-apiserver" || ! -x "$dir/kubectl" ]]; then
    need_go kube-apiserver; log "building kube-apiserver and kubectl $K8S_VERSION (first time only, ~10 min)"
    mkdir -p "$dir"
    local v="k8s.io/component-base/version"
    (cd "$ROOT/scripts/tools/k8s" && go build -trimpath \
      -ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=37 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
      -o "$dir/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)
  fi
  install_from_cache kube-apiserver "k8s-$K8S_VERSION"
  install_from_cache kubectl "k8s-$K8S_VERSION"
}

tool_etcd() {
  if from_kubebuilder_assets etcd; then log "using etcd from KUBEBUILDER_ASSETS"; return; fi
  local dir="$CACHE/etcd-$ETCD_VERSION"
  if [[ ! -x "$dir/etcd" ]]; then
    need_go etcd; log "building etcd $ETCD_VERSION (first time only)"
    mkdir -p "$dir"
    (cd "$ROOT/scripts/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$dir/etcd" .)
  fi
  install_from_cache etcd "etcd-$ETCD_VERSION"
}

tool_vegeta() { go_install vegeta "$VEGETA_VERSION" github.com/tsenart/vegeta/v12; }

# prometheus and promtool, one `go install` (one module download, one build cache). Built this
# way Prometheus has no web UI assets; the HTTP API, all the tests need, works.
tool_prometheus() {
  local dir="$CACHE/prometheus-$PROMETHEUS_VERSION" module=github.com/prometheus/prometheus
  if [[ ! -x "$dir/prometheus" || ! -x "$dir/promtool" ]]; then
    need_go prometheus; log "building prometheus and promtool $PROMETHEUS_VERSION (first time only, ~10 min)"
    mkdir -p "$dir"
    GOBIN="$dir" go install \
      "$module/cmd/prometheus@$PROMETHEUS_VERSION" "$module/cmd/promtool@$PROMETHEUS_VERSION"
  fi
  install_from_cache prometheus "prometheus-$PROMETHEUS_VERSION"
  install_from_cache promtool "prometheus-$PROMETHEUS_VERSION"
}

[[ $# -eq 0 ]] && set -- opa
for tool in "$@"; do
  case "$tool" in
    opa) tool_opa ;;
    k8s) tool_k8s ;;
    etcd) tool_etcd ;;
    vegeta) tool_vegeta ;;
    prometheus) tool_prometheus ;;
    all) tool_opa; tool_k8s; tool_etcd; tool_vegeta; tool_prometheus ;;
    *) log "unknown tool '$tool' (expected opa, k8s, etcd, vegeta, prometheus or all)"; exit 2 ;;
  esac
done
