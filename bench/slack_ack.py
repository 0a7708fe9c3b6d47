"""Acknowledgement latency of /slack/events under a burst of signed app_mention events.

    python bench/slack_ack.py [--events 300] [--concurrency 16]

Everything runs on this machine: the web app (uvicorn) with a private Redis and SQLite, and
the loopback fake Slack Web API from the test suite for the calls made after the ack. Each
event is a distinct mention (so each commits a task and enqueues a job before the 2xx); a
`GET /healthz` burst measured in the same run is the baseline. Run by hand; CI never runs it.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatops.app.local_redis import LocalRedis
from chatops.app.settings import Settings
from chatops.app.web import create_app
from chatops.app.wiring import Runtime
from tests.fakes import BOT_TOKEN, FakeSlack
from tests.fakes.slack_signing import event_envelope, sign

SECRET = "bench-signing-secret"
CHANNEL = "C0BENCH0001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def burst(send: callable, count: int, concurrency: int) -> list[float]:  # type: ignore[valid-type]
    def timed(i: int) -> float:
        start = time.perf_counter()
        status = send(i)
        if status != 200:
            raise SystemExit(f"request {i} answered {status}")
        return time.perf_counter() - start

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(timed, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatops-ack-") as scratch, FakeSlack() as fake:
        root = Path(scratch)
        (root / "environments.toml").write_text(
            '[environments.bench]\nrepository = "/nonexistent.git"\nqueue = "bench"\n')
        with LocalRedis(root / "redis") as redis_server:
            runtime = Runtime(Settings.from_env({
                "CHATOPS_HOME": str(root / "state"), "CHATOPS_REDIS_URL": redis_server.url,
                "CHATOPS_ENVIRONMENTS": str(root / "environments.toml"),
                "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": fake.base_url,
            }))
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1",
                                                   port=port, log_level="warning"))
            threading.Thread(target=server.run, daemon=True).start()
            while not server.started:
                time.sleep(0.02)
            base = f"http://127.0.0.1:{port}"
            bodies = []
            for i in range(args.events):
                ts = fake.add_message(CHANNEL, f"<@{fake.bot_user_id}> touch f{i}")
                event = {"type": "app_mention", "user": "U0HUMAN0001", "ts": ts,
                         "event_ts": ts, "channel": CHANNEL,
                         "text": f"<@{fake.bot_user_id}> touch f{i}"}
                bodies.append(json.dumps(event_envelope(
                    event, team_id=fake.team_id, api_app_id=fake.app_id, event_id=f"Ev{i:08d}",
                    bot_user_id=fake.bot_user_id)).encode())
            with httpx.Client(limits=httpx.Limits(max_connections=args.concurrency)) as client:
                client.get(f"{base}/healthz")  # warm up both paths before measuring
                health = burst(lambda i: client.get(f"{base}/healthz").status_code,
                               args.events, args.concurrency)
                acks = burst(lambda i: client.post(
                    f"{base}/slack/events", content=bodies[i],
                    headers={"Content-Type": "application/json",
                             **sign(bodies[i], SECRET)}).status_code,
                    args.events, args.concurrency)
            server.should_exit = True
            tasks = len(runtime.store.recent(limit=args.events + 10))
    print(f"{args.events} requests, {args.concurrency} concurrent; tasks committed: {tasks}")
    for label, values in (("GET /healthz (baseline)", health), ("POST /slack/events", acks)):
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"{label:<26} p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   "
              f"p50 ratio {p50 / statistics.median(health):4.1f}x")


if __name__ == "__main__":
    main()
