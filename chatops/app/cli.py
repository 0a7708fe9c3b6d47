"""The `chatops` command."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chatops.app import progress
from chatops.app.settings import Settings
from chatops.app.views import environment_view, task_view
from chatops.app.wiring import Runtime
from chatops.core import texts
from chatops.core.errors import ChatopsError, ImageMissing
from chatops.core.lifecycle import TaskState
from chatops.core.task import CliOrigin, Task, TaskRequest

# Exit codes, for scripts: 1 the task did not succeed, 2 the command itself failed.
EXIT_TASK_FAILED = 1
EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_ERROR
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        runtime = Runtime(Settings.from_env())
        return int(args.run(runtime, args) or 0)
    except ChatopsError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  fix: {exc.hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatops", description="Hand coding work to an agent; get a pull request back.",
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("exec", help="run a task and wait for its pull request")
    p.add_argument("instruction", nargs="?", help="what to do (or use --file)")
    p.add_argument("--env", dest="environment", help="environment name (see `envs list`)")
    p.add_argument("--file", "-f", type=Path, help="read the instruction from a file ('-': stdin)")
    p.add_argument("--detach", "-d", action="store_true", help="print the task id and return")
    p.add_argument("--quiet", "-q", action="store_true", help="show state changes, not logs")
    p.add_argument("--attempts", "-n", type=int, default=1,
                   help="run N candidates side by side, then pick one (`chatops pick`)")
    p.set_defaults(run=cmd_exec)

    p = sub.add_parser("pick", help="open the pull request of one attempt of a best-of-N task")
    p.add_argument("task_id")
    p.add_argument("attempt", type=int)
    p.add_argument("--detach", "-d", action="store_true", help="print the task id and return")
    p.set_defaults(run=cmd_pick)

    tasks = sub.add_parser("tasks", help="list or show tasks").add_subparsers(metavar="ACTION")
    p = tasks.add_parser("list", help="recent tasks")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(run=cmd_tasks_list)
    p = tasks.add_parser("show", help="one task, with its transitions")
    p.add_argument("task_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_tasks_show)

    p = sub.add_parser("logs", help="a task's logs, every phase")
    p.add_argument("task_id")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    p.set_defaults(run=cmd_logs)

    p = sub.add_parser("diff", help="print a task's patch")
    p.add_argument("task_id")
    p.add_argument("--attempt", type=int, help="one candidate of a best-of-N task")
    p.set_defaults(run=cmd_diff)

    p = sub.add_parser("apply", help="apply a task's patch to the git tree you are in")
    p.add_argument("task_id")
    p.add_argument("--attempt", type=int, help="one candidate of a best-of-N task")
    p.add_argument("--check", action="store_true", help="only check that it applies")
    p.set_defaults(run=cmd_apply)

    p = sub.add_parser("cancel", help="stop a task")
    p.add_argument("task_id")
    p.set_defaults(run=cmd_cancel)

    envs = sub.add_parser("envs", help="environments").add_subparsers(metavar="ACTION")
    p = envs.add_parser("list", help="the environments in the file (validates it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_envs_list)
    p = envs.add_parser("cache", help="the setup cache: list its entries, or --clear them")
    p.add_argument("--json", action="store_true")
    p.add_argument("--clear", nargs="?", const="", metavar="NAME",
                   help="remove the entries (only environment NAME's, if given)")
    p.add_argument("--instance", help="the deployment's instance label (default: default)")
    p.set_defaults(run=cmd_envs_cache)

    p = sub.add_parser("worker", help="run an RQ worker for the given queues")
    p.add_argument("queues", nargs="*", default=["default"])
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    p.set_defaults(run=cmd_worker)

    p = sub.add_parser("serve", help="run the web app (health check, task API)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(run=cmd_serve)

    image = sub.add_parser("image", help="sandbox images").add_subparsers(metavar="ACTION")
    p = image.add_parser("build", help="build the offline sandbox and egress proxy images")
    p.add_argument("--force", action="store_true", help="rebuild even if it exists")
    p.set_defaults(run=cmd_image_build)

    p = sub.add_parser("demo", help="run a real task end to end on embedded defaults")
    p.add_argument("--keep", action="store_true", help="keep the demo's files afterwards")
    p.set_defaults(run=cmd_demo)
    return parser


def cmd_exec(runtime: Runtime, args: argparse.Namespace) -> int:
    instruction = _instruction(args)
    user = getpass.getuser()
    task = runtime.service.submit(TaskRequest(
        origin=CliOrigin(user=user), requester=user, instruction=instruction,
        environment=args.environment, attempts=args.attempts,
    ))
    return _wait(runtime, task, args)


def _wait(runtime: Runtime, task: Task, args: argparse.Namespace) -> int:
    if args.detach:
        print(task.id)
        return 0
    print(f"task {task.id} — {task.reason}")
    task = progress.follow(runtime.store, task.id, show_logs=not getattr(args, "quiet", False))
    if task.request.attempts > 1:
        print(task.summary)
    print(texts.final_line(task))
    return 0 if task.state is TaskState.SUCCEEDED else EXIT_TASK_FAILED


def cmd_pick(runtime: Runtime, args: argparse.Namespace) -> int:
    return _wait(runtime, runtime.service.pick(args.task_id, args.attempt), args)


def _instruction(args: argparse.Namespace) -> str:
    if args.file is not None:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    else:
        text = args.instruction or ""
    if not text.strip():
        raise ChatopsError("no instruction given", 'pass it as an argument or with --file')
    return text


def cmd_tasks_list(runtime: Runtime, args: argparse.Namespace) -> int:
    tasks = runtime.store.recent(limit=args.limit)
    if args.json:
        print(json.dumps([task_view(t) for t in tasks], indent=2))
        return 0
    now = datetime.now(UTC)
    print(f"{'ID':<20} {'STATE':<12} {'ENV':<14} {'AGE':>6}  RESULT")
    for t in tasks:
        result = t.pull_request.url if t.pull_request else (t.reason if t.state.terminal else "")
        print(f"{t.id:<20} {t.state.value:<12} {t.environment:<14} "
              f"{_age(now - t.created_at):>6}  {result[:80]}")
    return 0


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cmd_tasks_show(runtime: Runtime, args: argparse.Namespace) -> int:
    task = runtime.store.get(args.task_id)
    view = task_view(task, runtime.store)
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    for key in ("id", "state", "reason", "environment", "requester", "branch", "diffstat"):
        if view[key]:
            print(f"{key + ':':<13} {view[key]}")
    if task.pull_request:
        pr = task.pull_request
        print(f"{'pull request:':<13} #{pr.number} {pr.title}\n{'':<13} {pr.url}")
    if task.request.attempts > 1 and task.summary:
        print("attempts:")
        print("".join(f"    {line}\n" for line in task.summary.splitlines()), end="")
    if task.blocked:
        print("blocked by the network allowlist:")
        for b in task.blocked:
            attempt = f" (attempt {b.attempt})" if b.attempt else ""
            print(f"    {b.at:%H:%M:%S} {b.method} {b.url or b.host}{attempt}")
    print("instruction:")
    print("".join(f"    {line}\n" for line in task.request.instruction.splitlines()), end="")
    print("transitions:")
    for t in view["transitions"]:
        print(f"    {t['at'][11:19]} {t['to']:<12} {t['reason']}")
    return 0


def cmd_logs(runtime: Runtime, args: argparse.Namespace) -> int:
    progress.follow_logs(runtime.store, args.task_id, sys.stdout, keep_following=args.follow)
    return 0


def _patch(runtime: Runtime, args: argparse.Namespace) -> bytes | None:
    if args.attempt is not None:
        return runtime.store.attempt_patch(args.task_id, args.attempt)
    return runtime.store.patch(args.task_id)


def cmd_diff(runtime: Runtime, args: argparse.Namespace) -> int:
    patch = _patch(runtime, args)
    if not patch:
        task = runtime.store.get(args.task_id)
        raise ChatopsError(f"task {task.id} has no patch ({task.state.value})",
                           "a patch exists once the agent phase has finished")
    sys.stdout.buffer.write(patch)
    sys.stdout.flush()
    return 0


def cmd_apply(runtime: Runtime, args: argparse.Namespace) -> int:
    from integrations.git.repository import apply_to_worktree

    patch = _patch(runtime, args)
    if not patch:
        raise ChatopsError(f"task {args.task_id} has no patch to apply")
    apply_to_worktree(Path.cwd(), patch, check_only=args.check)
    print("the patch applies cleanly" if args.check else f"applied task {args.task_id}'s patch")
    return 0


def cmd_cancel(runtime: Runtime, args: argparse.Namespace) -> int:
    task = runtime.service.cancel(args.task_id)
    if task.state.terminal:
        print(f"task {task.id} is {task.state.value}: {task.reason}")
    else:
        print(f"task {task.id} is stopping (it was {task.state.value})")
    return 0


def cmd_envs_list(runtime: Runtime, args: argparse.Namespace) -> int:
    envs = list(runtime.catalogue)
    if args.json:
        print(json.dumps([environment_view(e) for e in envs], indent=2))
        return 0
    print(f"{runtime.catalogue.source}: {len(envs)} environment(s)")
    for env in envs:
        agent = env.agent.preset or "custom command"
        print(f"  {env.name:<16} {env.repository} ({env.base_branch}) image={env.image} "
              f"agent={agent} network={env.network.mode} queue={env.queue}")
    return 0


def cmd_envs_cache(runtime: Runtime, args: argparse.Namespace) -> int:
    from sandbox.archive import format_size
    from sandbox.cache import SetupCache

    cache = SetupCache(runtime.docker, instance=args.instance or runtime.settings.instance)
    if args.clear is not None:
        removal = cache.clear(args.clear or None)
        whose = f" of {args.clear}" if args.clear else ""
        print(f"removed {len(removal.removed)} setup cache entries{whose} "
              f"({format_size(removal.freed)})")
        if removal.in_use:
            print(f"kept {len(removal.in_use)} held by a running task; clear again once it ended")
        return 0
    now = datetime.now(UTC)
    entries = cache.entries()
    if args.json:
        print(json.dumps([{
            "environment": e.environment, "key": e.key, "image": e.image_id, "tag": e.tag,
            "created": datetime.fromtimestamp(e.created, UTC).isoformat(),
            "last_used": (datetime.fromtimestamp(e.last_used, UTC).isoformat()
                          if e.last_used is not None else None),
            "size": e.size, "ttl": e.ttl, "expired": e.expired(now.timestamp()),
        } for e in entries], indent=2))
        return 0
    if not entries:
        print("the setup cache is empty")
        return 0
    print(f"{'ENVIRONMENT':<16} {'KEY':<12} {'AGE':>6} {'LAST USED':>10} {'SIZE':>10}")
    for e in entries:
        age = _age(now - datetime.fromtimestamp(e.created, UTC))
        used = "-" if e.last_used is None else \
            _age(now - datetime.fromtimestamp(e.last_used, UTC)) + " ago"
        expired = "  (expired)" if e.expired(now.timestamp()) else ""
        print(f"{e.environment:<16} {e.short:<12} {age:>6} {used:>10} "
              f"{format_size(e.size):>10}{expired}")
    return 0


def cmd_worker(runtime: Runtime, args: argparse.Namespace) -> int:
    from chatops.app.worker import work

    logging.getLogger().setLevel(logging.INFO)
    work(runtime, args.queues, burst=args.burst)
    return 0


def cmd_serve(runtime: Runtime, args: argparse.Namespace) -> int:
    import uvicorn

    from chatops.app.web import create_app

    settings = runtime.settings
    if settings.slack_app_token and runtime.slack_app is not None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        # Socket Mode: Slack pushes events over a WebSocket this process opens, so no public
        # URL is needed; /slack/events keeps working for the HTTP Events API.
        SocketModeHandler(runtime.slack_app, settings.slack_app_token).connect()  # type: ignore[no-untyped-call]
    uvicorn.run(create_app(runtime), host=args.host or settings.bind,
                port=args.port or settings.port, log_level="info")
    return 0


def cmd_image_build(runtime: Runtime, args: argparse.Namespace) -> int:
    from sandbox.images import DEFAULT_TAG, build_busybox_image, ensure_image
    from sandbox.proxy_image import PROXY_TAG, build_proxy_image, ensure_proxy_image

    if args.force:
        build_busybox_image(runtime.docker, DEFAULT_TAG)
    else:
        ensure_image(runtime.docker, DEFAULT_TAG)
    print(f"sandbox image ready: {DEFAULT_TAG}")
    try:
        (build_proxy_image if args.force else ensure_proxy_image)(runtime.docker, PROXY_TAG)
    except ImageMissing as exc:
        # Only environments with a network allowlist need it; say so rather than fail.
        print(f"egress proxy image not built: {exc.message}\n  fix: {exc.hint} "
              "(needed only by environments with a network allowlist)")
        return 0
    print(f"egress proxy image ready: {PROXY_TAG}")
    return 0


def cmd_demo(runtime: Runtime, args: argparse.Namespace) -> int:
    from chatops.app.demo import run_demo

    return run_demo(keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
