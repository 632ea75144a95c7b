# shellcheck shell=bash
# scripts/lib.sh: helpers shared by scripts/{stack,demo,test,install-deps}. Source it, do not run it.
# Progress and errors go to stderr so that stdout stays free for machine-readable output.

LC_SCRIPT_NAME=${LC_SCRIPT_NAME:-$(basename "$0")}

lc_log() { printf '%s: %s\n' "$LC_SCRIPT_NAME" "$*" >&2; }
lc_warn() { printf '%s: warning: %s\n' "$LC_SCRIPT_NAME" "$*" >&2; }
lc_die() {
    printf '%s: error: %s\n' "$LC_SCRIPT_NAME" "$*" >&2
    exit 1
}

# The repository root: the parent of the folder this file lives in.
lc_repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); }

lc_is_root() { [ "$(id -u)" -eq 0 ]; }

lc_have() { command -v "$1" >/dev/null 2>&1; }

# N random bytes as lowercase hex (no openssl needed).
lc_rand_hex() { od -An -v -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# The bin/ folder of the newest installed PostgreSQL server (Debian layout), or fail.
lc_pg_bindir() {
    local d best="" best_v=0 v
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/postgres" ] || continue
        v=$(basename "$(dirname "$d")")
        v=${v%%.*}
        if [[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt "$best_v" ]; then
            best_v=$v
            best=$d
        fi
    done
    [ -n "$best" ] || lc_die "no PostgreSQL server under /usr/lib/postgresql/*/bin (run scripts/install-deps)"
    printf '%s\n' "$best"
}

# lc_is_uint VALUE: 0 if VALUE is a non-negative decimal integer.
lc_is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# lc_http_ok URL: 0 if URL answers 2xx within 2 s.
lc_http_ok() { curl -fs -o /dev/null --max-time 2 "$1" 2>/dev/null; }

# lc_mosquitto: the path of the Mosquitto broker (Debian: /usr/sbin/mosquitto, which is not on
# every user's PATH), or fail.
lc_mosquitto() {
    local m
    m=$(command -v mosquitto 2>/dev/null) || m=/usr/sbin/mosquitto
    [ -x "$m" ] || return 1
    printf '%s\n' "$m"
}

# lc_mosquitto_dynsec_plugin: the path of Mosquitto's dynamic-security plugin
# (LCORE_MQTT_DYNSEC_PLUGIN when set; Debian: /usr/lib/<multiarch>/mosquitto_dynamic_security.so),
# or fail.
lc_mosquitto_dynsec_plugin() {
    local f
    for f in ${LCORE_MQTT_DYNSEC_PLUGIN:-} /usr/lib/*/mosquitto_dynamic_security.so \
        /usr/lib/mosquitto_dynamic_security.so /usr/local/lib/mosquitto_dynamic_security.so; do
        if [ -f "$f" ]; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}
