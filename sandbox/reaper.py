"""Removing what sandbox runs left on the engine.

A run removes its own containers, volumes and snapshot in a ``finally``; what survives is the
residue of a worker that was killed outright (SIGKILL, power loss). ``reap`` clears it, e.g.
when a worker starts; ``remove_task`` is the per-task sweep the runner itself uses.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection

import docker
import docker.errors

from sandbox.naming import DEFAULT_INSTANCE, TASK, RunNames, selector

log = logging.getLogger(__name__)


def reap(
    client: docker.DockerClient, keep: Collection[str] = (), *, instance: str = DEFAULT_INSTANCE
) -> list[str]:
    """Remove the instance's containers, volumes and snapshots of every task not in ``keep``.

    ``keep`` must name the tasks that are running right now (on any worker sharing the
    engine and instance), or their containers are killed under them. Returns the task ids
    whose leftovers were removed, sorted.
    """
    found: set[str] = set()
    filters = selector(instance)
    for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
        found.add(container.labels.get(TASK, ""))
    for volume in client.volumes.list(filters=filters):
        found.add((volume.attrs.get("Labels") or {}).get(TASK, ""))
    for image in client.images.list(filters=filters):
        found.add(image.labels.get(TASK, ""))
    for network in client.networks.list(filters=filters):
        found.add((network.attrs.get("Labels") or {}).get(TASK, ""))
    found.discard("")
    reaped = sorted(found - set(keep))
    for task_id in reaped:
        remove_task(client, task_id, instance=instance)
    if reaped:
        log.info("reaped the sandbox leftovers of %d task(s): %s", len(reaped), ", ".join(reaped))
    return reaped


def remove_task(
    client: docker.DockerClient, task_id: str, *, instance: str = DEFAULT_INSTANCE
) -> None:
    """Force-remove every container, volume, network and snapshot image labelled with
    ``task_id``, and
    drop the task's hold on a setup cache entry (the entry itself stays).

    Containers go first: they hold the volumes and the image. Objects that vanish meanwhile
    are fine; any other engine error propagates.
    """
    filters = selector(instance, task_id)
    gone = contextlib.suppress(docker.errors.NotFound)
    for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
        with gone:
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=filters):
        with gone:
            volume.remove(force=True)
    for network in client.networks.list(filters=filters):
        with gone:
            network.remove()
    for image in client.images.list(filters=filters):
        with gone:
            client.images.remove(str(image.id), force=True)
    # Not forced: the entry keeps its own cache tag, so this only untags it.
    with gone:
        client.images.remove(RunNames(task_id, instance).cache_use)

