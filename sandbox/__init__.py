"""Running tasks in containers: the Docker sandbox, its images, and cleanup of leftovers.

    docker_runner  DockerSandbox, the ``chatops.core.ports.Sandbox`` implementation
    provision      the setup phase: from the image and the setup script, or a cache hit
    cache          setup snapshots kept as images, looked up by key, evicted by age and size
    cachekey       what a setup snapshot depends on, digested (secret values never kept)
    watch          a container's redacted output, the cancel flag and the clock
    images         the offline busybox image; ``ensure_image`` before the first run
    reaper         ``reap`` what a killed worker left on the engine
    archive        the checkout in and the agent's result out, as tar streams
    logstream      container output as redacted lines
    naming         the names and labels every engine object of a run carries
"""
