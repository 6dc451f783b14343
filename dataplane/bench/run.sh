#!/usr/bin/env bash
# `make bench-proxy`: one weft-proxy pair (separate release processes,
# STRICT mTLS between them) against three baselines in the same run — the
# echo server called directly, an nginx reverse-proxy pair, and the floor:
# a pair of plain one-thread TCP relays (weft-echo relay: bytes copied,
# nothing parsed, no TLS; what two extra hops cost on this machine) — for
# HTTP/1.1 and HTTP/2 at fixed rates (weft-echo load: wrk2-style, latency
# from each request's due time) and at max throughput (h2load).
# Prints one table (dataplane/bench/report.py); never fails on figures.
#
#   client(h2load) → 127.0.0.3 weft-proxy outbound ─mTLS h2─→ 127.0.0.2 weft-proxy inbound → 127.0.0.1 weft-echo
#   client(h2load) → 127.0.0.4 nginx ─h1 keepalive─→ 127.0.0.5 nginx ─h1 keepalive─→ 127.0.0.1 weft-echo
#   client(h2load) → 127.0.0.7 relay ─tcp─→ 127.0.0.8 relay ─tcp─→ 127.0.0.1 weft-echo
#   client(h2load) → 127.0.0.1 weft-echo
#
# Knobs (environment): BENCH_DURATION seconds per case (10),
# BENCH_RATES total req/s of the fixed-rate cases ("1000 10000"),
# BENCH_MAX=0 skips the max-throughput cases, BENCH_PORT_BASE (28080),
# BENCH_PROTOCOLS ("h1 h2"), BENCH_HOLD=1 starts everything and waits
# (for profiling by hand) instead of measuring, WEFT_CONCURRENCY worker threads per proxy
# and nginx worker_processes (nproc), CARGO (cargo), WEFT_PROXY_BIN a
# weft-proxy binary to measure instead of this tree's (A/B of two builds),
# BENCH_BOOTSTRAP pb (binary, as weftd's xDS delivers it) or json,
# BENCH_TRAIN=1 only drives load through the weft pair (no baselines but
# direct, no figures): the training run of the profile-guided build
# (dataplane/pgo/build.sh), with WEFT_PROXY_BIN its instrumented binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
DURATION=${BENCH_DURATION:-10}
RATES=${BENCH_RATES:-1000 10000}
MAX=${BENCH_MAX:-1}
PROTOCOLS=${BENCH_PROTOCOLS:-h1 h2}
BASE=${BENCH_PORT_BASE:-28080}
WORKERS=${WEFT_CONCURRENCY:-$(nproc)}
BOOTSTRAP=${BENCH_BOOTSTRAP:-pb}
CARGO=${CARGO:-cargo}
TRAIN=${BENCH_TRAIN:-0}

log() { printf '[bench-proxy] %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------
need_pkgs=()
command -v h2load >/dev/null || need_pkgs+=(nghttp2-client)
[[ $TRAIN == 1 ]] || command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need_pkgs+=(nginx-light)
command -v python3 >/dev/null || need_pkgs+=(python3)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]} (apt-get)"
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    # The package's own service must not start: we run our own nginx.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq \
        --no-install-recommends "${need_pkgs[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# The proxy is measured as the images ship it: the profile-guided static
# build (dataplane/pgo/build.sh, which `make images-static` runs too). The
# echo server and the setup share the static flags and target dir of
# `make images-static`.
STATIC_TARGET=${STATIC_TARGET:-x86_64-unknown-linux-gnu}
STATIC_RUSTFLAGS=${STATIC_RUSTFLAGS:--C target-feature=+crt-static}
log "building release weft-echo and the bench setup (static)"
(cd "$root" && export RUSTFLAGS="$STATIC_RUSTFLAGS" \
    && $CARGO build -q --release --target "$STATIC_TARGET" -p weft-proxy --features bench-setup --bin bench_setup \
    && $CARGO build -q --release --target "$STATIC_TARGET" -p weft-echo --bin weft-echo)
bin="$root/target/$STATIC_TARGET/release"
if [[ -n ${WEFT_PROXY_BIN:-} ]]; then
    proxy_bin=$WEFT_PROXY_BIN
else
    log "building release weft-proxy (profile-guided, static, as in the image)"
    proxy_bin="$root/target/pgo/weft-proxy"
    CARGO="$CARGO" STATIC_TARGET="$STATIC_TARGET" STATIC_RUSTFLAGS="$STATIC_RUSTFLAGS" \
        "$here/../pgo/build.sh" "$proxy_bin"
fi

# --- processes ----------------------------------------------------------
work=$(mktemp -d -t weft-bench.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

H1=$BASE
H2=$((BASE + 1))
port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
for ip_port in 127.0.0.1:$H1 127.0.0.1:$H2 127.0.0.2:$H1 127.0.0.3:$H1 127.0.0.4:$H1 127.0.0.5:$H1 127.0.0.6:$H1 127.0.0.7:$H1 127.0.0.8:$H1; do
    if port_busy "${ip_port%:*}" "${ip_port#*:}"; then
        log "$ip_port is in use; set BENCH_PORT_BASE to a free range"
        exit 1
    fi
done

wait_port() {
    local i
    for i in $(seq 200); do
        port_busy "$1" "$2" && return 0
        sleep 0.05
    done
    log "nothing listens on $1:$2; last log lines:"; tail -n 30 "$work"/*.log >&2 2>/dev/null || true
    return 1
}

"$bin/bench_setup" "$work" "$H1" "$H2"

echo_pids=()
for p in "$H1" "$H2"; do
    RUST_LOG=warn "$bin/weft-echo" serve --ip 127.0.0.1 --http-port "$p" \
        --grpc-port $((p + 10)) --tcp-port $((p + 20)) >"$work/echo-$p.log" 2>&1 &
    pids+=($!)
    echo_pids+=($!)
done

weft() { # name ip listener-flag [bootstrap-format]
    local name=$1 ip=$2 flag=$3 format=${4:-$BOOTSTRAP} other
    # The other direction's listener on this proxy's own address too: the
    # defaults (0.0.0.0:15001/15006) would collide between the proxies.
    other=--inbound-addr
    [[ $flag == --inbound-addr ]] && other=--outbound-addr
    WEFT_LOG_LEVEL=warn POD_NAME="$name-0-0" POD_NAMESPACE=bench \
        "$proxy_bin" sidecar --bootstrap "$work/$name.$format" \
        --cert-chain "$work/$name-chain.pem" --key "$work/$name-key.pem" --roots "$work/roots.pem" \
        "$flag" "$ip:$H1" "$flag" "$ip:$H2" "$other" "$ip:$((BASE + 34))" --original-dst-from-local-addr \
        --admin-addr "$ip:$((BASE + 30))" --metrics-addr "$ip:$((BASE + 31))" \
        --health-addr "$ip:$((BASE + 32))" --status-addr "$ip:$((BASE + 33))" \
        --concurrency "$WORKERS" --drain-seconds 1 >"$work/weft-$name-$ip.log" 2>&1 &
    pids+=($!)
}
weft server 127.0.0.2 --inbound-addr
weft_server=$!
weft client 127.0.0.3 --outbound-addr
weft_client=$!

nginx_conf() { # name listen-ip upstream-ip upstream-port
    local name=$1 dir="$work/nginx-$1"
    mkdir -p "$dir"
    local h2_server=""
    if [[ $name == a ]]; then
        # HTTP/2 from the client (prior knowledge); nginx's proxy_pass
        # speaks only HTTP/1.x upstream, so the hop between the nginx
        # pair is HTTP/1.1 keep-alive in both protocols.
        h2_server="server { listen $2:$H2 http2; location / { proxy_pass http://next; } }"
    fi
    cat >"$dir/nginx.conf" <<EOF
worker_processes $WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$host;
    proxy_buffering on;
    upstream next { server $3:$4; keepalive 256; keepalive_requests 1000000; }
    server { listen $2:$H1; location / { proxy_pass http://next; } }
    $h2_server
}
EOF
    "$NGINX" -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' \
        >"$work/nginx-$name.log" 2>&1 &
    pids+=($!)
}
relay() { # listen-ip upstream-ip: both ports
    "$bin/weft-echo" relay --route "$1:$H1=$2:$H1" --route "$1:$H2=$2:$H2" >"$work/relay-$1.log" 2>&1 &
    pids+=($!)
}
targets="direct weft nginx"
listening="127.0.0.1:$H1 127.0.0.1:$H2 127.0.0.2:$H1 127.0.0.3:$H1 127.0.0.3:$H2"
if [[ $TRAIN == 1 ]]; then
    targets="direct weft"
else
    nginx_conf b 127.0.0.5 127.0.0.1 "$H1"
    nginx_b=$!
    nginx_conf a 127.0.0.4 127.0.0.5 "$H1"
    nginx_a=$!
    relay 127.0.0.8 127.0.0.1
    relay_b=$!
    relay 127.0.0.7 127.0.0.8
    relay_a=$!
    targets+=" relay"
    listening+=" 127.0.0.5:$H1 127.0.0.4:$H1 127.0.0.4:$H2 127.0.0.8:$H1 127.0.0.8:$H2 127.0.0.7:$H1 127.0.0.7:$H2"
fi
for ip_port in $listening; do
    wait_port "${ip_port%:*}" "${ip_port#*:}"
done

# Process trees (nginx: master + workers) of each proxy pair.
tree() { local p; for p in "$@"; do echo "$p"; pgrep -P "$p" || true; done; }
weft_pids="$weft_client $weft_server"
nginx_pids() { tree "$nginx_a" "$nginx_b" | xargs; }
proc_mem() { # pids... -> "rss_kb hwm_kb" summed, and the max rss of one process
    local p rss=0 hwm=0 max=0 r h
    for p in "$@"; do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        h=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        rss=$((rss + ${r:-0})); hwm=$((hwm + ${h:-0}))
        ((${r:-0} > max)) && max=${r:-0}
    done
    echo "$rss $hwm $max"
}
cpu_ticks() { # pids... -> "utime stime" summed (clock ticks)
    local p u=0 k=0 s
    for p in "$@"; do
        # Fields after the command name: state is field 3, utime 14, stime 15.
        s=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12, $13}')
        [[ -n $s ]] || continue
        u=$((u + ${s% *}))
        k=$((k + ${s#* }))
    done
    echo "$u $k"
}

# Smoke: every path answers 200 before anything is measured.
url() { # target proto
    local port=$H1
    [[ $2 == h2 ]] && port=$H2
    case $1 in
        direct) echo "http://127.0.0.1:$port/bench" ;;
        weft) echo "http://127.0.0.3:$port/bench" ;;
        nginx) echo "http://127.0.0.4:$port/bench" ;;
        relay) echo "http://127.0.0.7:$port/bench" ;;
    esac
}
h2load_flags() { [[ $1 == h1 ]] && echo --h1 || true; }
for target in $targets; do
    for proto in $PROTOCOLS; do
        out=$(h2load $(h2load_flags "$proto") -n 20 -c 2 "$(url $target "$proto")" 2>&1 || true)
        if ! grep -q "20 succeeded" <<<"$out" || ! grep -q "status codes: 20 2xx" <<<"$out"; then
            log "smoke request failed: $target $proto"
            echo "$out" >&2
            tail -n 20 "$work"/*.log >&2 || true
            exit 1
        fi
    done
done

if [[ $TRAIN == 1 ]]; then
    # The profile's workload: what the benchmark measures (both protocols
    # under load, and one request at a time as at a low fixed rate). The
    # proxies write their profiles when cleanup stops them (SIGTERM).
    for proto in $PROTOCOLS; do
        log "training: $proto through the weft pair"
        if [[ $proto == h1 ]]; then args=(-c 32); else args=(-c 8 -m 16); fi
        h2load $(h2load_flags "$proto") "${args[@]}" -t 1 -D 4 "$(url weft "$proto")" >/dev/null
        args=(--rate 1000 --connections 10)
        [[ $proto == h2 ]] && args+=(--http2 --streams 8)
        "$bin/weft-echo" load --url "$(url weft "$proto")" "${args[@]}" --duration 3s >/dev/null
    done
    exit 0
fi

if [[ ${BENCH_HOLD:-0} == 1 ]]; then
    log "holding (BENCH_HOLD=1): weft $(url weft h1) $(url weft h2) pids $weft_client $weft_server;" \
        "nginx $(url nginx h1) $(url nginx h2); relay $(url relay h1) $(url relay h2);" \
        "direct $(url direct h1) $(url direct h2); Ctrl-C stops"
    while true; do
        sleep 3600 &
        pids+=($!) # stopped by cleanup like the rest
        wait $! # (the traps run at once on a signal)
    done
fi

# For reference: the client's configuration as a JSON bootstrap, idle
# (on its own address; it takes no traffic).
weft client 127.0.0.6 --outbound-addr json
weft_json=$!
wait_port 127.0.0.6 "$H1"

sleep 1
read -r w_idle _ w_idle_max <<<"$(proc_mem $weft_pids)"
read -r w_json _ <<<"$(proc_mem $weft_json)"
kill -TERM "$weft_json"
read -r n_idle _ n_idle_max <<<"$(proc_mem $(nginx_pids))"
results="$work/results.jsonl"
{
    printf '{"kind":"idle","target":"weft","rss_kb":%s,"max_proc_kb":%s,"procs":"%s","bootstrap":"%s"}\n' \
        "$w_idle" "$w_idle_max" "client $(proc_mem $weft_client | cut -d' ' -f1) server $(proc_mem $weft_server | cut -d' ' -f1)" "$BOOTSTRAP"
    printf '{"kind":"idle","target":"weft-json","rss_kb":%s}\n' "$w_json"
    printf '{"kind":"idle","target":"nginx","rss_kb":%s,"max_proc_kb":%s,"procs":"%s"}\n' \
        "$n_idle" "$n_idle_max" "$(echo $(nginx_pids) | wc -w) processes"
} >>"$results"

# One case: h2load against one target, CPU and memory of its proxy pair.
run_case() { # target proto load
    local target=$1 proto=$2 load=$3 ppids="" args=()
    case $target in
        weft) ppids=$weft_pids ;;
        nginx) ppids=$(nginx_pids) ;;
        relay) ppids="$relay_a $relay_b" ;;
    esac
    local logf="$work/req-$target-$proto-$load.tsv" out="$work/load.out" mem_f="$work/mem.txt"
    local t0 t1 cmd report_args
    if [[ $load == max ]]; then
        # Closed loop (h2load): as fast as the path answers.
        if [[ $proto == h1 ]]; then args=(-c 32); else args=(-c 8 -m 16); fi
        cmd=(h2load $(h2load_flags "$proto") "${args[@]}" -t 1 -D "$DURATION" --warm-up-time=1
            --log-file="$logf" "$(url "$target" "$proto")")
        report_args=(--log "$logf" --h2load-out "$out")
    else
        # Fixed rate (weft-echo load, wrk2-style): request i due at i/rate
        # on connection i mod C, latency from its due time. HTTP/2
        # connections get spare streams so a slow answer does not hold
        # back the next request.
        local c=10
        ((load >= 5000)) && c=50
        args=(--rate "$load" --connections "$c")
        [[ $proto == h2 ]] && args+=(--http2 --streams 8)
        cmd=("$bin/weft-echo" load --url "$(url "$target" "$proto")" "${args[@]}"
            --duration "${DURATION}s" --warmup 1s)
        report_args=(--load-summary "$out")
    fi
    t0=$(cpu_ticks $ppids)
    (sleep $((DURATION / 2 + 1)); [[ -n $ppids ]] && proc_mem $ppids >"$mem_f" || echo "0 0 0" >"$mem_f") &
    local sampler=$!
    "${cmd[@]}" >"$out" 2>&1 || true
    wait "$sampler" || true
    t1=$(cpu_ticks $ppids)
    local mem hwm
    mem=$(cat "$mem_f")
    hwm=$([[ -n $ppids ]] && proc_mem $ppids | cut -d' ' -f2 || echo 0)
    python3 "$here/report.py" case --target "$target" --proto "$proto" --load "$load" \
        "${report_args[@]}" --user-ticks $((${t1% *} - ${t0% *})) \
        --sys-ticks $((${t1#* } - ${t0#* })) \
        --clk-tck "$(getconf CLK_TCK)" --duration "$DURATION" \
        --rss-kb "${mem%% *}" --hwm-kb "$hwm" >>"$results"
    rm -f "$logf" "$out"
}

loads="$RATES"
[[ $MAX == 1 ]] && loads="$loads max"
log "measuring ${DURATION}s per case: protocols $PROTOCOLS, loads $loads; proxies use $WORKERS worker threads/processes"
for proto in $PROTOCOLS; do
    for load in $loads; do
        for target in $targets; do
            log "$proto $load $target"
            run_case "$target" "$proto" "$load"
        done
    done
done

python3 "$here/report.py" table --results "$results" --workers "$WORKERS" --duration "$DURATION"
