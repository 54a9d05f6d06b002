"""Ray's side of bench/peers: the same shapes as the Muster side, on Ray 2.60.

Driven by bench/peers/ray.ts (which creates the virtualenv and starts this
file in it); not meant to be run by hand, though it can be:

    python bench/peers/ray_peers.py --shapes pg,tp8,actors,latency,http --rounds 3

One local Ray instance, started the way the issue sets the two side by side:
num_cpus=2 (the machine's cores), 16 GPUs declared (nothing uses a real GPU;
Ray only counts them, as Muster's simulated 8-GPU nodes do) and a "custom"
resource for Ray's own placement-group microbenchmark bundles.

Every result is one JSON line on stdout: {"shape": ..., ...}. For the HTTP
shape it prints {"event": "http-ready", "url": ...} once Serve's proxy
answers, then waits for one line on stdin (the driver ran wrk against it)
before shutting down. Logs go to stderr so stdout stays parseable.

Shapes (what each measures; the Muster side in muster.ts mirrors it):
  pg       Ray's placement-group microbenchmark shape: 100 one-bundle groups
           created without waiting, all waited, all removed, repeated; timed
           as Ray's own timeit does (1 s warm-up, rounds of at least 2 s).
  tp8      one TP8 group (8 one-GPU bundles, STRICT_PACK) created, waited
           until ready and removed, one at a time; groups per second.
  actors   1:1 async actor calls (one driver, one actor, all calls in flight)
           and n:n (2 caller actors, each with its own target actor).
  latency  p50 of one-at-a-time calls: an actor method, and a Serve handle
           call to a 2-replica no-op deployment.
  http     Serve's HTTP proxy in front of the same 2-replica deployment.
"""

import argparse
import json
import statistics
import sys
import time


# Ray's timeit: 1 s of warm-up, then rounds of at least 2 s (the same in muster.ts).
PG_WARMUP_S = 1.0
PG_ROUND_S = 2.0


def emit(obj):
    print(json.dumps(obj), flush=True)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", default="pg,tp8,actors,latency,http")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pg-groups", type=int, default=100)
    p.add_argument("--tp8-groups", type=int, default=10)
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--seq", type=int, default=2000)
    p.add_argument("--http-port", type=int, default=0)
    a = p.parse_args()
    shapes = [s for s in a.shapes.split(",") if s]

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, num_gpus=16, resources={"custom": 100},
             include_dashboard=False, log_to_driver=False)
    emit({"event": "started", "ray": ray.__version__, "seconds": round(time.perf_counter() - t0, 2)})

    if "pg" in shapes:
        emit({"shape": "pg", "rates": pg_shape(ray, a.rounds, a.pg_groups)})
    if "tp8" in shapes:
        emit({"shape": "tp8", "rates": tp8_shape(ray, a.rounds, a.tp8_groups)})
    if "actors" in shapes:
        emit({"shape": "actors", **actor_rates(ray, a.rounds, a.calls)})
    if "latency" in shapes or "http" in shapes:
        serve_shapes(ray, a, "latency" in shapes, "http" in shapes)
    ray.shutdown()


def pg_shape(ray, rounds, groups):
    """Ray's microbenchmark: create `groups` without waiting, wait for all, remove all.

    Timed the way Ray's own `timeit` (ray_microbenchmark_helpers) times it: one
    second of repeated batches to warm up, then each round repeats batches for
    at least two seconds; a round's rate is groups done / its time. muster.ts
    times its side the same way (PG_WARMUP_S, PG_ROUND_S).
    """
    from ray.util.placement_group import placement_group, remove_placement_group

    def batch():
        pgs = [placement_group([{"custom": 0.001}], strategy="SPREAD") for _ in range(groups)]
        for pg in pgs:
            if not pg.wait(timeout_seconds=30):
                raise RuntimeError("a placement group was not ready within 30 s")
        for pg in pgs:
            remove_placement_group(pg)

    def repeat_for(seconds):
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < seconds:
            batch()
            n += groups
        return round(n / (time.perf_counter() - t))

    repeat_for(PG_WARMUP_S)
    return [repeat_for(PG_ROUND_S) for _ in range(rounds)]


def tp8_shape(ray, rounds, groups):
    """One TP8 STRICT_PACK group at a time: create, wait until ready, remove."""
    from ray.util.placement_group import placement_group, remove_placement_group

    rates = []
    for r in range(rounds + 1):
        t = time.perf_counter()
        for _ in range(groups):
            pg = placement_group([{"GPU": 1}] * 8, strategy="STRICT_PACK")
            ray.get(pg.ready(), timeout=60)
            remove_placement_group(pg)
        if r > 0:
            rates.append(round(groups / (time.perf_counter() - t), 2))
    return rates


def actor_rates(ray, rounds, calls):
    @ray.remote(num_cpus=0)
    class Target:
        def small_value(self):
            return b"ok"

    @ray.remote(num_cpus=0)
    class Caller:
        def __init__(self, target):
            self.target = target

        def batch(self, n):
            ray.get([self.target.small_value.remote() for _ in range(n)])

    one = Target.remote()
    ray.get([one.small_value.remote() for _ in range(500)])
    one_to_one = []
    for _ in range(rounds):
        t = time.perf_counter()
        ray.get([one.small_value.remote() for _ in range(calls)])
        one_to_one.append(round(calls / (time.perf_counter() - t)))
    callers = [Caller.remote(Target.remote()) for _ in range(2)]
    ray.get([c.batch.remote(500) for c in callers])
    n_to_n = []
    for _ in range(rounds):
        t = time.perf_counter()
        ray.get([c.batch.remote(calls) for c in callers])
        n_to_n.append(round(2 * calls / (time.perf_counter() - t)))
    for actor in [one, *callers]:
        ray.kill(actor)
    return {"oneToOne": one_to_one, "nToN": n_to_n, "nToNCallers": 2}


def p50_ms(fn, n):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(lat), 3)


def warm_until_steady(fn):
    """As the Muster side's warm-up (phases.ts): blocks of 1,000 calls one at a time until two in a row agree within 3% (at most 10)."""
    last = p50_ms(fn, 1000)
    for _ in range(10):
        p = p50_ms(fn, 1000)
        if abs(p - last) <= 0.03 * last:
            return
        last = p


def serve_shapes(ray, a, latency, http):
    from ray import serve

    @ray.remote(num_cpus=0)
    class Target:
        def small_value(self):
            return b"ok"

    if latency:
        actor = Target.remote()
        ray.get(actor.small_value.remote())
        p50_ms(lambda: ray.get(actor.small_value.remote()), 200)
        warm_until_steady(lambda: ray.get(actor.small_value.remote()))
        actor_p50 = [p50_ms(lambda: ray.get(actor.small_value.remote()), a.seq) for _ in range(a.rounds)]
        ray.kill(actor)

    @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
    class NoOp:
        async def __call__(self, request):
            await request.body()
            return None

        def noop(self):
            return None

    serve.start(http_options={"host": "127.0.0.1", "port": a.http_port or 8000})
    handle = serve.run(NoOp.bind(), name="peers", route_prefix="/noop")
    if latency:
        p50_ms(lambda: handle.noop.remote().result(), 200)
        warm_until_steady(lambda: handle.noop.remote().result())
        handle_p50 = [p50_ms(lambda: handle.noop.remote().result(), a.seq) for _ in range(a.rounds)]
        emit({"shape": "latency", "actorP50Ms": actor_p50, "serveHandleP50Ms": handle_p50})
    if http:
        emit({"event": "http-ready", "url": f"http://127.0.0.1:{a.http_port or 8000}/noop"})
        sys.stdin.readline()  # the driver has run wrk
    serve.shutdown()


if __name__ == "__main__":
    main()
