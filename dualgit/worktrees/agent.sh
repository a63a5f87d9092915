# dualgit's agent: the main process of every worktree's container (under its init), run by the
# static busybox in /.dualgit/bin, so it needs nothing from the image.
#
# - relays: for each declared HTTP port P, `nc` on dualgit's own port R forwards to 127.0.0.1:P
#   (or [::1]:P). The proxy sends requests there only while P listens on loopback alone, so a dev
#   server that binds 127.0.0.1 (Vite, Django, Flask, Rails) answers at its URL, and the relay
#   never holds P itself.
# - listen: what listens inside, from /proc/net/tcp{,6}, every second, to $S/listen ("PORT wild"
#   or "PORT loop" lines, a port once per socket), which the host reads as data.
# - serve: each $S/serve.d/PORT is a command dualgit wrote from .dual.toml's `serve`; it runs once
#   the host marked setup done ($S/setup-done), restarted with backoff when it exits, up to a
#   crash loop; its output goes to $S/serve/PORT.log and its state to $S/serve/PORT.state.
#
# - start: $S/start, a script dualgit wrote from the steps that run on every start (devcontainer.json's
#   postStartCommand), runs once per start of the container (a wake's and a reboot's too), once the
#   host marked setup done; its output goes to $S/start.log and its state to $S/start.state.
#
# The host writes serve.d/, start, setup-done and serve.want; this script writes listen, serve/ and
# start.*. The host reads them as plain data and never runs anything from them.
B=/.dualgit/bin/busybox
S=/.dualgit/state
FAST=10      # seconds: a serve that exits sooner than this counts towards a crash loop
LOOP=5       # this many fast exits in a row is a crash loop: it stops being restarted
WT=${DUALGIT_WORKTREE:-/}

now() { $B date +%s; }

put() {  # put FILE TEXT: written whole, then moved into place
  printf '%s\n' "$2" >"$1.tmp.$$" && $B mv -f "$1.tmp.$$" "$1"
}

relays() {
  for pair in $DUALGIT_RELAYS; do
    port=${pair%%:*} relay=${pair#*:}
    $B nc -ll -p "$relay" -e $B sh -c "$B nc 127.0.0.1 $port 2>/dev/null || exec $B nc ::1 $port" &
  done
}

scan() {  # with the shell's builtins alone: once a second in every container, it must cost nothing
  out=
  for table in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$table" ] || continue
    while read -r _ local _ st _; do
      [ "$st" = 0A ] || continue
      case ${local%:*} in
        0B00007F) continue ;;  # 127.0.0.11: the engine's DNS resolver on a network of dualgit's own
        00000000000000000000000001000000|??????7F) kind=loop ;;
        *) kind=wild ;;
      esac
      out="$out$((0x${local##*:})) $kind
"
    done <"$table"
  done
  [ "$out" = "$seen" ] && return
  seen=$out
  printf '%s' "$out" >"$S/listen"  # one small write; the host reads "PORT wild|loop" lines
}

ooms() {  # how many processes the kernel killed here for the memory cap (cgroup v2, else v1)
  for file in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do
    [ -r "$file" ] || continue
    while read -r key value; do [ "$key" = oom_kill ] && { echo "$value"; return; }; done <"$file"
  done
  echo 0
}

shell() { if [ -x /bin/sh ]; then echo /bin/sh; else echo "$B sh"; fi; }

supervise() {  # supervise PORT: run serve.d/PORT until told to stop, with backoff
  port=$1 fast=0 delay=1
  log=$S/serve/$port.log state=$S/serve/$port.state
  while :; do
    until [ -f "$S/setup-done" ]; do put "$state" "waiting $(now)"; $B sleep 1; done
    if [ "$($B cat "$S/serve.want" 2>/dev/null)" = stop ]; then
      put "$state" "stopped $(now)"
      while [ "$($B cat "$S/serve.want" 2>/dev/null)" = stop ]; do $B sleep 1; done
    fi
    [ -f "$S/serve.d/$port" ] || { put "$state" "removed $(now)"; return; }
    started=$(now)
    put "$state" "starting $started"
    echo "==> $($B date '+%Y-%m-%d %H:%M:%S') serve :$port" >>"$log"
    command=$($B cat "$S/serve.d/$port")
    oom=$(ooms)
    (cd "$WT" 2>/dev/null; PORT=$port exec $B setsid $(shell) -c "$command") >>"$log" 2>&1 </dev/null &
    pid=$!
    put "$S/serve/$port.pid" "$pid"
    put "$state" "running $started $pid"
    wait "$pid"
    code=$?
    echo "==> serve :$port exited $code" >>"$log"
    killed=
    if [ "$(ooms)" != "$oom" ]; then
      killed=" oom"
      echo "==> serve :$port was killed by the container's memory cap (out of memory): raise \`memory\` in .dual.toml" >>"$log"
    fi
    [ "$($B cat "$S/serve.want" 2>/dev/null)" = stop ] && continue  # `git dual serve --stop`
    if [ -f "$S/serve/$port.restart" ]; then  # `git dual serve --restart`: no backoff, no count
      $B rm -f "$S/serve/$port.restart"; fast=0; delay=1; continue
    fi
    if [ $(( $(now) - started )) -lt $FAST ]; then fast=$((fast + 1)); else fast=0; delay=1; fi
    if [ "$fast" -ge "$LOOP" ]; then
      put "$state" "crashloop $(now) $code -$killed"
      echo "==> serve :$port exited $fast times within ${FAST}s each: not restarted (git dual serve --restart)" >>"$log"
      return
    fi
    put "$state" "exited $(now) $code $delay$killed"
    $B sleep "$delay"
    delay=$((delay * 2)); [ "$delay" -gt 30 ] && delay=30
  done
}

starter() {  # the start script, once per start of the container, after setup
  until [ -f "$S/setup-done" ]; do $B sleep 0.2; done
  [ -f "$S/start" ] || { put "$S/start.state" "none $(now)"; return; }
  put "$S/start.state" "running $(now)"
  echo "==> $($B date '+%Y-%m-%d %H:%M:%S') start" >>"$S/start.log"
  (cd "$WT" 2>/dev/null; exec $(shell) "$S/start") >>"$S/start.log" 2>&1 </dev/null
  put "$S/start.state" "done $(now) $?"
}

# Each start of the container starts `serve` afresh: what an earlier run recorded is gone.
$B mkdir -p "$S/serve" 2>/dev/null
$B rm -f "$S"/serve/*.state "$S"/serve/*.sup "$S"/serve/*.pid "$S"/serve/*.restart "$S/start.state" 2>/dev/null
relays
starter &
seen=-  # what the last scan wrote: the first one always writes
quick=100  # looks 0.1 s apart before they slow to one a second
while :; do
  scan
  for file in "$S"/serve.d/*; do  # a supervisor for each port with a command, started when missing
    [ -f "$file" ] || continue
    port=${file##*/}
    sup=$($B cat "$S/serve/$port.sup" 2>/dev/null)
    [ -n "$sup" ] && kill -0 "$sup" 2>/dev/null && continue
    state=$($B cat "$S/serve/$port.state" 2>/dev/null)
    case "$state" in crashloop*|removed*) [ -f "$S/serve/$port.restart" ] || continue ;; esac
    $B rm -f "$S/serve/$port.restart"
    supervise "$port" &
    put "$S/serve/$port.sup" "$!"
  done
  # just started (or woken): a second per look would add up to a second to the first request
  if [ "$quick" -gt 0 ]; then quick=$((quick - 1)); $B sleep 0.1; else $B sleep 1; fi
done
