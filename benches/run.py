#!/usr/bin/env python3
"""One run of syncjob-facade's benchmark on this machine, everything over 127.0.0.1.

Drives the same start request (a POST to Graph's start path with an RS256 application token,
a distinct job each time) four ways: to the upstream directly, through nginx `proxy_pass`
(no authentication), through HAProxy validating the token (`jwt_verify` and claim checks), and
through the facade (release build; cooldown, preflight and rate limit off). The upstream is nginx
answering 204. Reports requests/s, p50/p99 and each server's CPU time per request (from /proc),
the facade's peak RSS and ready time; then cached job reads, RSS with 1,000 connections (a fresh
facade, 1,000 jobs; again with the upstream over TLS and HTTP/2, as Graph is reached), and
1,000 concurrent starts of one job against the emulator (benches/scenarios.rs). Writes
benches/results/latest.json and latest.md.

Run it with `benches/run.sh` (installs nginx, haproxy, wrk, openssl and iproute2 from Debian's
packages, builds the release binaries, then runs this).
"""

import atexit, json, os, re, shutil, signal, socket, subprocess, tempfile, threading, time, urllib.error, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACADE = os.environ.get("BENCH_FACADE", os.path.join(ROOT, "target/release/syncjob-facade"))
# BENCH_ONLY=facade: measure the facade's start path alone; BENCH_ONLY=connections: only the
# fresh facades with 1,000 connections (their peak RSS; Graph over HTTP/1.1, then over TLS and
# HTTP/2); BENCH_ONLY=followers: only the 1,000
# concurrent starts of one job; BENCH_PERF=FILE: record a perf profile of
# the facade (`perf record -g`) while it is measured.
ONLY = os.environ.get("BENCH_ONLY")
PERF = os.environ.get("BENCH_PERF")
EMULATOR = os.path.join(ROOT, "target/release/syncjob-emulator")
SEED = json.load(open(os.path.join(ROOT, "emulator/seed.json")))
TENANT = SEED["tenantId"]
SP = SEED["servicePrincipals"][0]["id"]
JOB = SEED["servicePrincipals"][0]["jobs"][0]["id"]
PORTAL = SEED["applications"][1]["clientId"]
GRAPH_APP = SEED["applications"][0]
SECS = int(os.environ.get("BENCH_SECS", "8"))
CONNS = int(os.environ.get("BENCH_CONNS", "64"))
TICK = os.sysconf("SC_CLK_TCK")
processes = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, log, env=None):
    p = subprocess.Popen(args, stdout=log, stderr=log, env=env, start_new_session=True)
    processes.append(p)
    return p


def answered(name, result):
    """A run whose requests were refused or failed measures nothing worth publishing."""
    if result["non_2xx"] or result["socket_errors"]:
        raise SystemExit(f"{name}: not every request was answered 2xx: {result}")
    return result


def wait_until(ready, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if ready():
            return
        time.sleep(0.005)
    raise SystemExit(f"{what} did not answer")


def wait_http(url, timeout=20, ok=(200, 204)):
    def ready():
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.status in ok
        except urllib.error.HTTPError as e:
            return e.code in ok
        except Exception:
            return False
    wait_until(ready, url, timeout)


def wait_port(port):
    def ready():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(ready, f"127.0.0.1:{port}")


def serve(config, port, log_name, env=None):
    """A facade serving `config` (which listens on `port`), once it is ready."""
    log = open(os.path.join(os.path.dirname(config), log_name), "w")
    facade = start([FACADE, "serve", "--config", config], log, env=env)
    wait_http(f"http://127.0.0.1:{port}/readyz", ok=(200,))
    return facade


def tree(pid):
    """The pid and every descendant (nginx and haproxy fork workers)."""
    pids, children = [pid], {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except OSError:
                pass
    i = 0
    while i < len(pids):
        pids += children.get(pids[i], [])
        i += 1
    return pids


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def peak_rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024


def wrk(url, script, server_pid, conns=CONNS, secs=SECS):
    before = cpu_seconds(server_pid)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = cpu_seconds(server_pid) - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "requests": requests,
        "rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))),
        "p50_ms": round(ms("50"), 2),
        "p99_ms": round(ms("99"), 2),
        "cpu_us_per_request": round(cpu / max(requests, 1) * 1e6, 1),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def post(url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method="POST", headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req) as r:
        text = r.read().decode()
        return json.loads(text) if text else None


def main():
    work = tempfile.mkdtemp(prefix="syncjob-bench-")
    # The servers' logs (an audit line per start: hundreds of MB a run) go with the run.
    atexit.register(shutil.rmtree, work, True)
    log = open(os.path.join(work, "servers.log"), "w")
    results = {"machine": machine(), "connections": CONNS, "seconds": SECS}

    # The identity provider: the emulator's Entra (discovery, JWKS, a caller token, its key).
    emu_port = free_port()
    emulator = start([EMULATOR, "--port", str(emu_port)], log)
    emu = f"http://127.0.0.1:{emu_port}"
    wait_http(f"{emu}/{TENANT}/v2.0/.well-known/openid-configuration")
    issuer = json.load(urllib.request.urlopen(f"{emu}/{TENANT}/v2.0/.well-known/openid-configuration"))["issuer"]
    token = post(f"{emu}/_emulator/tokens", {"kind": "app", "clientId": PORTAL})["access_token"]
    pem = urllib.request.urlopen(f"{emu}/_emulator/keys/current.pem").read().decode()
    open(os.path.join(work, "key.pem"), "w").write(pem)

    # The upstream: nginx answering Graph's start with 204 and a job read with a small job.
    up_port, proxy_port, haproxy_port, facade_port = free_port(), free_port(), free_port(), free_port()
    job_json = json.dumps({"id": "bench", "status": {"code": "Paused"}})
    proxy_location = 'location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }'
    upstream_location = (
        "location / { default_type application/json; "
        "if ($request_method = GET) { return 200 '" + job_json + "'; } return 204; }"
    )

    def nginx_conf(port, body):
        location = proxy_location if "upstream" in body else upstream_location
        return f"""
worker_processes 1; daemon off; pid {work}/nginx-{port}.pid; error_log {work}/nginx-{port}.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000; client_body_temp_path {work}; proxy_temp_path {work};
  fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};
  {body}
  server {{ listen 127.0.0.1:{port}; {location} }}
}}"""

    for name, port, body in [("upstream", up_port, ""), ("proxy", proxy_port, f"upstream up {{ server 127.0.0.1:{up_port}; keepalive 128; }}")]:
        open(os.path.join(work, f"{name}.conf"), "w").write(nginx_conf(port, body))
    upstream = start(["nginx", "-c", os.path.join(work, "upstream.conf"), "-p", work], log)
    proxy = start(["nginx", "-c", os.path.join(work, "proxy.conf"), "-p", work], log)

    open(os.path.join(work, "haproxy.cfg"), "w").write(f"""
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:{haproxy_port}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny deny_status 401 unless {{ var(txn.alg) -m str RS256 }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{work}/key.pem") -m int 1 }}
  http-request set-var(txn.now) date()
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.nbf) var(txn.bearer),jwt_payload_query('$.nbf','int')
  http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
  http-request deny deny_status 401 if {{ var(txn.now),sub(txn.nbf) -m int lt 0 }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {issuer} }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.aud') -m str api://syncjob-facade }}
  http-request deny deny_status 403 unless {{ var(txn.bearer),jwt_payload_query('$.roles[0]') -m str Synchronization.ReadWrite.All }}
  default_backend be
backend be
  http-reuse always
  server up 127.0.0.1:{up_port}
""")
    haproxy = start(["haproxy", "-f", os.path.join(work, "haproxy.cfg")], log)

    config = os.path.join(work, "facade.toml")
    open(config, "w").write(f"""
[server]
listen = "127.0.0.1:{facade_port}"
rate_limit_per_minute = 0
max_concurrent_starts = 0
[auth]
issuers = ["{issuer}"]
openid_config_url = "{emu}/{TENANT}/v2.0/.well-known/openid-configuration"
[graph]
base_url = "http://127.0.0.1:{up_port}"
[graph.credential]
kind = "static"
token = "bench-graph-token"
[guard]
cooldown_secs = 0
preflight = false
""")
    t0 = time.time()
    facade = serve(config, facade_port, "facade.log")
    results["facade_ready_ms"] = round((time.time() - t0) * 1000, 1)
    results["facade_idle_rss_mb"] = round(rss_mb(facade.pid), 1)
    for port in (up_port, proxy_port, haproxy_port):
        wait_http(f"http://127.0.0.1:{port}/", ok=(200, 204, 401, 405))

    start_lua = os.path.join(work, "start.lua")
    open(start_lua, "w").write(f"""
local counter = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function request()
  counter = counter + 1
  return wrk.format("POST", "/v1.0/servicePrincipals/{SP}/synchronization/jobs/bench." .. id .. "." .. counter .. "/start",
    {{ ["Authorization"] = "Bearer {token}", ["Content-Length"] = "0" }}, "")
end
""")
    read_lua = os.path.join(work, "read.lua")
    open(read_lua, "w").write(f"""
wrk.method = "GET"
wrk.path = "/v1.0/servicePrincipals/{SP}/synchronization/jobs/{JOB}"
wrk.headers["Authorization"] = "Bearer {token}"
""")
    starts = {}
    phases = [] if ONLY in ("connections", "followers") else [
        ("upstream direct", up_port, upstream),
        ("nginx proxy_pass (no auth)", proxy_port, proxy),
        ("HAProxy + jwt_verify", haproxy_port, haproxy),
        ("syncjob-facade", facade_port, facade),
    ]
    for name, port, server in phases:
        if ONLY and server is not facade:
            continue
        warm = wrk(f"http://127.0.0.1:{port}", start_lua, server.pid, secs=2)
        if server is facade:
            warm_facade = warm
        if warm["non_2xx"]:
            raise SystemExit(f"{name} refused the benchmark's request: {warm}")
        perf = None
        if PERF and server is facade:
            perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(facade.pid), "-o", PERF],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        starts[name] = wrk(f"http://127.0.0.1:{port}", start_lua, server.pid)
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        print(name, starts[name], flush=True)
    results["starts"] = starts
    results["facade_peak_rss_mb_64"] = round(peak_rss_mb(facade.pid), 1)
    if ONLY == "facade":
        print(json.dumps(results, indent=1))
        return
    if not ONLY:
        results["facade_cached_reads"] = wrk(f"http://127.0.0.1:{facade_port}", read_lua, facade.pid)
        print("cached reads", results["facade_cached_reads"], flush=True)
        results["facade_jobs_recorded"] = sum(s["requests"] for s in [warm_facade, starts["syncjob-facade"]])

    # 1,000 connections: a fresh facade (its guard store empty), starts spread over 1,000 jobs, so
    # that the figure is what connections cost rather than what a million distinct jobs recorded.
    if ONLY != "followers":
        connections(results, config, facade_port, start_lua)
        if ONLY == "connections":
            print(json.dumps(results, indent=1))
            return


    # 1,000 concurrent starts of one job: a facade against the emulator's Graph, its start slowed.
    coalesce_port = free_port()
    config2 = os.path.join(work, "coalesce.toml")
    open(config2, "w").write(f"""
[server]
listen = "127.0.0.1:{coalesce_port}"
rate_limit_per_minute = 0
[auth]
issuers = ["{issuer}"]
openid_config_url = "{emu}/{TENANT}/v2.0/.well-known/openid-configuration"
[graph]
base_url = "{emu}"
[graph.credential]
kind = "client_secret"
authority = "{emu}"
tenant_id = "{TENANT}"
client_id = "{GRAPH_APP['clientId']}"
client_secret = "{GRAPH_APP['clientSecret']}"
""")
    serve(config2, coalesce_port, "coalesce.log")
    out = subprocess.run(
        [os.path.join(ROOT, "target/release/examples/scenarios"), f"http://127.0.0.1:{coalesce_port}", emu, token, SP, JOB],
        capture_output=True, text=True, check=True,
    ).stdout
    results["one_job_1000_concurrent"] = json.loads(out)
    # The server's share of the followers' time: from the leader's audit line to the last
    # follower's (each is written before its answer leaves).
    decided = []
    for line in open(os.path.join(work, "coalesce.log")):
        try:
            event = json.loads(line)
        except ValueError:  # not JSON, or a line the server is still writing
            continue
        if isinstance(event, dict) and event.get("target") == "audit" and event.get("target.job_id") == JOB:
            stamp = event["timestamp"]  # 2026-12-03T16:20:05.123456Z
            at = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float(stamp[19:-1] or 0)
            decided.append((event["decision"], at))
    leader = min(at for decision, at in decided if decision == "forwarded")
    results["one_job_1000_concurrent"]["followers_audited_within_ms"] = round(
        (max(at for decision, at in decided if decision == "coalesced") - leader) * 1000, 1)
    print("1000 concurrent starts of one job", results["one_job_1000_concurrent"], flush=True)
    if ONLY:
        return

    os.makedirs(os.path.join(ROOT, "benches/results"), exist_ok=True)
    json.dump(results, open(os.path.join(ROOT, "benches/results/latest.json"), "w"), indent=2)
    open(os.path.join(ROOT, "benches/results/latest.md"), "w").write(table(results))
    print(table(results))


def connections(results, config, facade_port, start_lua):
    work = os.path.dirname(config)
    fresh_port = free_port()
    fresh_config = os.path.join(work, "fresh.toml")
    open(fresh_config, "w").write(open(config).read().replace(f"127.0.0.1:{facade_port}", f"127.0.0.1:{fresh_port}"))
    fresh = serve(fresh_config, fresh_port, "fresh.log")
    jobs_lua = os.path.join(work, "jobs.lua")
    open(jobs_lua, "w").write(open(start_lua).read().replace('"." .. counter', '"." .. (counter % 500)'))
    results["facade_1000_connections"] = answered(
        "1,000 connections", wrk(f"http://127.0.0.1:{fresh_port}", jobs_lua, fresh.pid, conns=1000))
    results["facade_peak_rss_mb_1000"] = round(peak_rss_mb(fresh.pid), 1)
    print("1000 connections", results["facade_1000_connections"], results["facade_peak_rss_mb_1000"], flush=True)

    connections_over_h2(results, work, config, fresh_config, fresh_port, jobs_lua)


def connections_over_h2(results, work, config, fresh_config, fresh_port, jobs_lua):
    """The 1,000-connection phase again with Graph's side as in production: TLS, and HTTP/2
    chosen by ALPN. nginx serves a certificate from a CA made for the run, which the facade
    alone trusts (SSL_CERT_FILE). Counts the facade's TLS connections to the upstream, sampled
    every 100 ms during the run and once after it, and its RSS after the run's first second."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=syncjob-bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    openssl("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=127.0.0.1")
    open(os.path.join(work, "tls.ext"), "w").write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tls.pem",
            "-days", "1", "-extfile", "tls.ext")
    up = re.search(r'base_url = "http://127\.0\.0\.1:(\d+)"', open(config).read()).group(1)
    tls_port, h2_port = free_port(), free_port()
    open(os.path.join(work, "tls.conf"), "w").write(
        open(os.path.join(work, "upstream.conf")).read()
        .replace(f"nginx-{up}", f"nginx-{tls_port}")
        .replace(f"listen 127.0.0.1:{up};", f"listen 127.0.0.1:{tls_port} ssl http2; ssl_certificate {work}/tls.pem; "
                 f"ssl_certificate_key {work}/tls.key; http2_max_concurrent_streams 1000; "
                 # One HTTP/2 connection carries the whole run: nginx must not close it midway.
                 f"keepalive_requests 100000000;"))
    start(["nginx", "-c", os.path.join(work, "tls.conf"), "-p", work], open(os.path.join(work, "tls.log"), "w"))
    wait_port(tls_port)
    h2_config = os.path.join(work, "h2.toml")
    open(h2_config, "w").write(
        open(fresh_config).read()
        .replace(f"127.0.0.1:{fresh_port}", f"127.0.0.1:{h2_port}")
        .replace(f"http://127.0.0.1:{up}", f"https://127.0.0.1:{tls_port}"))
    h2 = serve(h2_config, h2_port, "h2.log", env={**os.environ, "SSL_CERT_FILE": os.path.join(work, "ca.pem")})

    def upstream_connections():
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{tls_port} )"],
                             capture_output=True, text=True, check=True).stdout
        return len(out.splitlines())

    sampled, rss, done = [], [], threading.Event()
    began = time.time()

    def sample():
        while not done.wait(0.1):
            try:
                sampled.append(upstream_connections())
                if time.time() - began > 1:
                    rss.append(rss_mb(h2.pid))
            except (OSError, subprocess.CalledProcessError):
                continue

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        results["facade_1000_connections_h2"] = answered(
            "1,000 connections over TLS + HTTP/2",
            wrk(f"http://127.0.0.1:{h2_port}", jobs_lua, h2.pid, conns=1000))
    finally:
        done.set()
        sampler.join()
    results["facade_peak_rss_mb_1000_h2"] = round(peak_rss_mb(h2.pid), 1)
    results["facade_upstream_connections_h2"] = {"peak_sampled": max(sampled, default=0), "after": upstream_connections()}
    results["facade_rss_mb_1000_h2_after_1s"] = [round(min(rss), 1), round(max(rss), 1)] if rss else None
    print("1000 connections, Graph over TLS and HTTP/2", results["facade_1000_connections_h2"],
          results["facade_peak_rss_mb_1000_h2"], results["facade_upstream_connections_h2"],
          results["facade_rss_mb_1000_h2_after_1s"], flush=True)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem, "kernel": os.uname().release,
            "date": time.strftime("%Y-%m-%d"), "wrk": "-t2 -c%d -d%ds" % (CONNS, SECS)}


def table(r):
    m = r["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mb']} MB, Linux {m['kernel']}; {m['date']}; wrk {m['wrk']}, all over 127.0.0.1.", "",
             "| path | req/s | p50 | p99 | server CPU per request |", "|---|---|---|---|---|"]
    for name, s in r["starts"].items():
        lines.append(f"| {name} | {s['rps']:,} | {s['p50_ms']} ms | {s['p99_ms']} ms | {s['cpu_us_per_request']} µs |")
    c = r["facade_cached_reads"]
    lines.append(f"| syncjob-facade, cached job read | {c['rps']:,} | {c['p50_ms']} ms | {c['p99_ms']} ms | {c['cpu_us_per_request']} µs |")
    k = r["facade_1000_connections"]
    lines.append(f"| syncjob-facade, 1,000 connections | {k['rps']:,} | {k['p50_ms']} ms | {k['p99_ms']} ms | {k['cpu_us_per_request']} µs |")
    h = r["facade_1000_connections_h2"]
    lines.append(f"| syncjob-facade, 1,000 connections, Graph over TLS + HTTP/2 | {h['rps']:,} | {h['p50_ms']} ms | {h['p99_ms']} ms | {h['cpu_us_per_request']} µs |")
    u = r["facade_upstream_connections_h2"]
    steady = r["facade_rss_mb_1000_h2_after_1s"]
    after_1s = f"RSS {steady[0]}–{steady[1]} MB" if steady else "no RSS sample"
    o = r["one_job_1000_concurrent"]
    lines += ["", f"Facade: ready in {r['facade_ready_ms']} ms; RSS {r['facade_idle_rss_mb']} MB idle, peak {r['facade_peak_rss_mb_64']} MB at {r['connections']} connections after starts of {r['facade_jobs_recorded']:,} distinct jobs (the guard keeps each job's last start, at most `guard.memory_max_entries` records); a fresh facade peaked at {r['facade_peak_rss_mb_1000']} MB with 1,000 connections starting 1,000 jobs, and at {r['facade_peak_rss_mb_1000_h2']} MB with Graph over TLS + HTTP/2 ({u['peak_sampled']} upstream connections at most during the run, sampled every 100 ms, {u['after']} after it; {after_1s} after the run's first second).",
              f"1,000 concurrent starts of one job (Graph's start delayed {o['delay_ms']} ms): {o['upstream_starts']} upstream start(s), {o['answered_204']} × 204, {o['shed']} shed; every follower answered within {o['followers_within_ms']} ms of the first answer (the server audited the last follower {o['followers_audited_within_ms']} ms after the leader).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in processes:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
        # Gone before their work directory is removed (atexit), so that nothing is left in it.
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
