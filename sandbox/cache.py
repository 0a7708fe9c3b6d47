"""The setup cache: setup snapshots kept as images on the engine and found again by key.

An entry is an image committed from a setup container after its setup script succeeded and
the checkout was taken out again (``sandbox.provision``), tagged
``chatops-cache:<key prefix>-<random>`` and labelled:

    chatops.managed=1, chatops.instance=NAME, chatops.phase=cache
    chatops.task=""              no task owns it: the per-task sweep and the reaper pass it by
    chatops.cache.key            the key (``sandbox.cachekey``)
    chatops.cache.part.PART      each part's digest, so a miss can name what changed
    chatops.cache.environment    the environment that made it
    chatops.cache.created        when, in epoch seconds
    chatops.cache.ttl            the TTL it was made under (s); past it, eviction removes it
    chatops.cache.size           the bytes of its own layer

Everything lives on the engine, so the cache survives worker restarts and every worker of the
instance on that engine shares it. Labels cannot change after a commit, so "last used" is the
engine's own record of the image's last tagging (``Metadata.LastTagTime``): a run that uses an
entry tags it with its hold, below.

Concurrency. A run holds the entry it uses with a second reference,
``chatops-cache-use:<task>`` (``RunNames.cache_use``), dropped when the task's objects are
removed. Entries are only ever removed by image id and never forced, which the engine refuses
for an image with a second reference, a container or a child image; so neither eviction nor
``clear`` can take an entry from under a run: they skip it and report it as in use. A run that
finds its entry gone between lookup and hold sets up from scratch. Two runs that miss on one
key at once both build and both insert; lookups take the newest, and the next eviction drops
the older one once nobody holds it.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from sandbox.archive import format_size
from sandbox.cachekey import PART_NAMES, CacheKey
from sandbox.naming import (
    CACHE_REPOSITORY,
    DEFAULT_INSTANCE,
    INSTANCE,
    MANAGED,
    PHASE,
    TASK,
)

log = logging.getLogger(__name__)

# 12 h: long enough that a day's tasks on an environment share one setup, short enough that
# dependencies pinned loosely (latest patch releases, a moving branch) are fetched again daily.
DEFAULT_TTL_S = 12 * 3600
# 10 GiB of entry layers per instance: room for a handful of environments with real
# dependency trees, small next to the disk an engine running them needs anyway.
DEFAULT_CAP_BYTES = 10 * 1024**3

CACHE_PHASE = "cache"
_PREFIX = "chatops.cache."
KEY = _PREFIX + "key"
ENVIRONMENT = _PREFIX + "environment"
CREATED = _PREFIX + "created"
TTL = _PREFIX + "ttl"
SIZE = _PREFIX + "size"
PART = _PREFIX + "part."

# The engine's LastTagTime: RFC 3339 with up to nanoseconds, which datetime cannot parse.
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class Entry:
    image_id: str
    key: str
    environment: str
    created: float
    ttl: int
    size: int
    parts: dict[str, str] = field(default_factory=dict)
    tag: str = ""
    # From the engine; None when not asked for (``entries(usage=False)``) or not recorded.
    last_used: float | None = None

    @property
    def short(self) -> str:
        return self.key[:12]

    def age(self, now: float) -> float:
        return max(0.0, now - self.created)

    def expired(self, now: float, ttl: int | None = None) -> bool:
        return self.age(now) >= (self.ttl if ttl is None else ttl)


@dataclass(frozen=True)
class Lookup:
    """What ``SetupCache.lookup`` found: an entry to use, or why there is none."""

    entry: Entry | None
    reason: str


@dataclass(frozen=True)
class Removal:
    removed: list[Entry]
    in_use: list[Entry]

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.removed)


class SetupCache:
    """The setup cache entries of one instance on one engine (see the module docstring).

    ``clock`` gives the time in epoch seconds for ages and expiry; tests move it forward.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        instance: str = DEFAULT_INSTANCE,
        cap_bytes: int = DEFAULT_CAP_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.api = client.api
        self.instance = instance
        self.cap_bytes = cap_bytes
        self.clock = clock

    # -- reading ---------------------------------------------------------------------------

    def entries(self, *, usage: bool = True) -> list[Entry]:
        """Every entry, newest first; ``usage`` also asks the engine when each was last used."""
        wanted = [f"{MANAGED}=1", f"{INSTANCE}={self.instance}", f"{PHASE}={CACHE_PHASE}"]
        found = []
        for image in self.api.images(filters={"label": wanted}):
            entry = _entry(image)
            if entry is None:
                continue
            if usage:
                entry = self._with_usage(entry)
            found.append(entry)
        return sorted(found, key=lambda e: e.created, reverse=True)

    def _with_usage(self, entry: Entry) -> Entry:
        try:
            metadata = self.client.images.get(entry.image_id).attrs.get("Metadata") or {}
        except docker.errors.NotFound:
            return entry
        used = _parse_stamp(str(metadata.get("LastTagTime") or ""))
        return Entry(**{**entry.__dict__, "last_used": used})

    def lookup(self, key: CacheKey, environment: str, ttl: int) -> Lookup:
        """The newest entry for ``key`` younger than ``ttl`` s, or the reason for a miss."""
        entries = self.entries(usage=False)
        now = self.clock()
        same = [e for e in entries if e.key == key.digest]
        if same:
            newest = same[0]
            if newest.expired(now, ttl):
                return Lookup(None, f"the entry expired: {format_age(newest.age(now))} old, "
                                    f"the TTL is {format_age(ttl)}")
            return Lookup(newest, f"entry {newest.short}, made {format_age(newest.age(now))} ago")
        mine = [e for e in entries if e.environment == environment]
        if not mine:
            return Lookup(None, "no entry yet")
        changed = key.changed(mine[0].parts) or ["the key"]
        return Lookup(None, f"key changed: {', '.join(changed)}")

    # -- writing ---------------------------------------------------------------------------

    def insert(
        self, container: Container, key: CacheKey, *, environment: str, ttl: int, hold: str
    ) -> Entry:
        """Commit ``container`` as an entry for ``key``, held by the reference ``hold``.

        The commit takes the hold's name first and the cache tag second, so the new entry is
        never without a holder while the run that made it still needs it.
        """
        size = self._size(container)
        created = self.clock()
        labels = {
            MANAGED: "1",
            INSTANCE: self.instance,
            TASK: "",  # overrides the setup container's task label, which commit would copy
            PHASE: CACHE_PHASE,
            KEY: key.digest,
            ENVIRONMENT: environment,
            CREATED: f"{created:.3f}",
            TTL: str(ttl),
            SIZE: str(size),
            **{PART + part: value for part, value in key.parts.items()},
        }
        repository, _, hold_tag = hold.rpartition(":")
        image = container.commit(repository=repository, tag=hold_tag, conf={"Labels": labels})
        tag = f"{key.digest[:16]}-{secrets.token_hex(3)}"
        image.tag(CACHE_REPOSITORY, tag)
        return Entry(
            image_id=str(image.id), key=key.digest, environment=environment, created=created,
            ttl=ttl, size=size, parts=dict(key.parts), tag=f"{CACHE_REPOSITORY}:{tag}",
        )

    def _size(self, container: Container) -> int:
        # What the commit will hold: the container's own layer (the engine sizes it).
        listed = self.api.containers(all=True, size=True, filters={"id": str(container.id)})
        return int(listed[0].get("SizeRw") or 0) if listed else 0

    def touch(self, entry: Entry, hold: str) -> bool:
        """Mark ``entry`` used now and hold it with the reference ``hold``.

        False when the entry was removed since it was looked up.
        """
        repository, _, tag = hold.rpartition(":")
        try:
            self.api.tag(entry.image_id, repository, tag, force=True)
        except docker.errors.NotFound:
            return False
        return True

    def evict(self, keep: Collection[str] = ()) -> Removal:
        """Remove superseded and expired entries, then the least recently used ones until the
        rest fits under the cap. Entries in ``keep`` (image ids) and held ones stay.
        """
        entries = self.entries()
        now = self.clock()
        newest: set[str] = set()
        doomed: list[Entry] = []
        for entry in entries:  # newest first
            if entry.key in newest or entry.expired(now):
                doomed.append(entry)
            newest.add(entry.key)
        removed, in_use = self._remove([e for e in doomed if e.image_id not in keep])
        live = [e for e in entries if e not in removed]
        total = sum(e.size for e in live)
        for entry in sorted(live, key=_last_used):
            if total <= self.cap_bytes:
                break
            if entry.image_id in keep or entry in in_use:
                continue
            gone, held = self._remove([entry])
            removed += gone
            in_use += held
            total -= sum(e.size for e in gone)
        if removed:
            log.info("setup cache: removed %d entries (%s)", len(removed),
                     format_size(sum(e.size for e in removed)))
        return Removal(removed, in_use)

    def clear(self, environment: str | None = None) -> Removal:
        """Remove every entry (of ``environment`` if given) that no run holds."""
        chosen = [e for e in self.entries(usage=False)
                  if environment is None or e.environment == environment]
        removed, in_use = self._remove(chosen)
        return Removal(removed, in_use)

    def _remove(self, entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
        removed: list[Entry] = []
        in_use: list[Entry] = []
        for entry in entries:
            try:
                # By id and unforced: refused while a run holds it (see the module docstring).
                self.api.remove_image(entry.image_id)
            except docker.errors.NotFound:
                removed.append(entry)  # another worker was first; it is gone all the same
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                in_use.append(entry)
            else:
                removed.append(entry)
        return removed, in_use


def _entry(image: dict[str, Any]) -> Entry | None:
    labels: dict[str, str] = image.get("Labels") or {}
    try:
        entry = Entry(
            image_id=str(image["Id"]),
            key=labels[KEY],
            environment=labels.get(ENVIRONMENT, ""),
            created=float(labels[CREATED]),
            ttl=int(labels[TTL]),
            size=int(labels.get(SIZE) or 0),
            parts={p: labels.get(PART + p, "") for p in PART_NAMES},
            tag=next((t for t in image.get("RepoTags") or []
                      if t.startswith(f"{CACHE_REPOSITORY}:")), ""),
        )
    except (KeyError, ValueError):
        return None  # not made by this module (or by a version with other labels): ignored
    return entry


def _last_used(entry: Entry) -> float:
    return entry.last_used if entry.last_used is not None else entry.created


def _parse_stamp(text: str) -> float | None:
    match = _STAMP.match(text)
    if not match:
        return None
    seconds, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    stamp = datetime.fromisoformat(f"{seconds}.{(fraction or '0')[:6]:0<6}{zone}").timestamp()
    # The engine's zero value ("0001-01-01T00:00:00Z") means it never recorded one.
    return stamp if stamp > 0 else None


def format_age(seconds: float) -> str:
    """A duration for a log line: 45s, 12m, 3h, 2d (rounded down, like `tasks list`)."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"
