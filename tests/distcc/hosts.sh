#!/usr/bin/env bash
# Test distcc hosts on this machine: each a network namespace of its own with a veth pair to the
# root namespace (a /30 of the private test subnet 10.250.77.0/24) and its own distccd bound to
# the namespace's address, allowing only that subnet. For the distcc tests and bench/distcc.sh;
# needs root (ip netns).
#   hosts.sh up DIR N BLOCK [LIMIT]  N hosts in address block BLOCK (0-3: 16 hosts each, so that
#                                   tests running at once never share an address); prints their
#                                   DISTCC_HOSTS spec (ADDR:PORT/LIMIT ...), also in DIR/hosts
#   hosts.sh kill DIR I             kills host I's distccd (0-based): the host is down
#   hosts.sh down DIR               ends every distccd and removes every namespace (idempotent)
# Host I's distccd (user distccd) logs to DIR/host-I.log: DIR's parents must let it through.
# Each namespace's name is in DIR/namespaces, written before it is made, so that `down` (from a
# trap) removes whatever `up` got to.
set -euo pipefail

readonly subnet=10.250.77
readonly port=3632

cmd=${1:?usage: hosts.sh up|kill|down DIR ...}
dir=${2:?usage: hosts.sh up|kill|down DIR ...}

down() {
  [[ -f "$dir/namespaces" ]] || return 0
  local ns pids
  while read -r ns; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [[ -n "$pids" ]] && kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done <"$dir/namespaces"
  rm -f "$dir/namespaces"
}

up() {
  local n=${1:?N} block=${2:?BLOCK} limit=${3:-2}
  ((n >= 1 && n <= 16 && block >= 0 && block <= 3)) || { echo "hosts.sh: N 1-16, BLOCK 0-3" >&2; exit 2; }
  mkdir -p "$dir"
  chmod 0777 "$dir"  # distccd drops root for the distccd user, which writes its log here
  local specs=() i base ns host_if peer addr
  for ((i = 0; i < n; i++)); do
    base=$((block * 64 + i * 4))
    ns="kiln-dcc-$$-$block-$i"
    host_if="kdc$$b${block}h$i"
    host_if=${host_if:0:15}
    peer="kdp$$b${block}h$i"
    peer=${peer:0:15}
    addr="$subnet.$((base + 2))"
    echo "$ns" >>"$dir/namespaces"
    ip netns add "$ns"
    ip link add "$host_if" type veth peer name "$peer"
    ip link set "$peer" netns "$ns"
    ip addr add "$subnet.$((base + 1))/30" dev "$host_if"
    ip link set "$host_if" up
    ip -n "$ns" addr add "$addr/30" dev "$peer"
    ip -n "$ns" link set "$peer" up
    ip -n "$ns" link set lo up
    : >"$dir/host-$i.log"
    chmod 0666 "$dir/host-$i.log"
    ip netns exec "$ns" distccd --daemon --no-detach --user distccd --listen "$addr" \
      --port "$port" --allow "$subnet.0/24" --jobs "$limit" --log-level info \
      --log-file "$dir/host-$i.log" --pid-file "$dir/host-$i.pid" </dev/null >/dev/null 2>&1 &
    echo "$!" >"$dir/host-$i.launcher"
    specs+=("$addr:$port/$limit")
  done
  # Each distccd listens before the hosts are handed out: bounded, 10 s at most.
  for ((i = 0; i < n; i++)); do
    ns="kiln-dcc-$$-$block-$i"
    local tries=0
    until ip netns exec "$ns" ss -ltn 2>/dev/null | grep -q ":$port "; do
      ((++tries <= 200)) || { echo "hosts.sh: host $i's distccd is not listening" >&2; exit 1; }
      sleep 0.05
    done
  done
  echo "${specs[*]}" | tee "$dir/hosts"
}

kill_host() {
  local i=${1:?I} ns
  ns=$(sed -n "$((i + 1))p" "$dir/namespaces")
  local pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [[ -n "$pids" ]] && kill -9 $pids 2>/dev/null || true
}

case "$cmd" in
  up) up "${@:3}" ;;
  kill) kill_host "${@:3}" ;;
  down) down ;;
  *) echo "hosts.sh: unknown command $cmd" >&2; exit 2 ;;
esac
