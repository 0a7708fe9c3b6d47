"""Running tasks in containers: the Docker sandbox, its images, and cleanup of leftovers.

    docker_runner  DockerSandbox, the ``chatops.core.ports.Sandbox`` implementation
    images         the offline busybox image; ``ensure_image`` before the first run
    reaper         ``reap`` what a killed worker left on the engine
    archive        the checkout in and the agent's result out, as tar streams
    logstream      container output as redacted lines
    naming         the names and labels every engine object of a run carries
"""
