"""What the agent is handed under /chatops, and the summary it may leave there.

The contract is the one ``chatops.core.agents`` documents: the instruction, the context and
both together as a prompt, in read-only files whose paths are in CHATOPS_* variables, and a
summary file in the one directory the agent may write (``out/``, owned by the agent).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterable, Mapping

from chatops.core.ports import SandboxJob
from sandbox.archive import ChunkReader
from sandbox.images import AGENT_GID, AGENT_HOME, AGENT_UID

CHATOPS_DIR = "/chatops"
INPUT_FILES = {
    "CHATOPS_INSTRUCTION_FILE": "instruction.md",
    "CHATOPS_CONTEXT_FILE": "context.md",
    "CHATOPS_PROMPT_FILE": "prompt.md",
}
OUT_DIR = "out"
SUMMARY_FILE = f"{OUT_DIR}/summary.md"
# 4 KiB: the summary goes into a pull request body and a chat message, not a report.
SUMMARY_LIMIT_BYTES = 4096


def agent_environment(job: SandboxJob) -> dict[str, str]:
    """The agent's variables: the environment's, its credentials, then the runner's own."""
    files = {var: f"{CHATOPS_DIR}/{name}" for var, name in INPUT_FILES.items()}
    return {
        **job.environment.env,
        **job.agent_env,
        "HOME": AGENT_HOME,
        "CHATOPS_TASK_ID": job.task_id,
        **({"CHATOPS_ATTEMPT": str(job.attempt)} if job.attempt else {}),
        **files,
        "CHATOPS_SUMMARY_FILE": f"{CHATOPS_DIR}/{SUMMARY_FILE}",
    }


def input_archive(job: SandboxJob, extra: Mapping[str, bytes] | None = None) -> bytes:
    """A tar to extract at /chatops: the input files and ``extra`` ones (root's, read-only),
    and ``out/``."""
    prompt = job.instruction + (f"\n\n{job.context}" if job.context else "")
    contents = {
        INPUT_FILES["CHATOPS_INSTRUCTION_FILE"]: job.instruction.encode(),
        INPUT_FILES["CHATOPS_CONTEXT_FILE"]: job.context.encode(),
        INPUT_FILES["CHATOPS_PROMPT_FILE"]: prompt.encode(),
        **(extra or {}),
    }
    now = int(time.time())
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in contents.items():
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.mtime = len(data), 0o444, now
            tar.addfile(member, io.BytesIO(data))
        directory = tarfile.TarInfo(OUT_DIR)
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o755, now
        directory.uid, directory.gid = AGENT_UID, AGENT_GID
        tar.addfile(directory)
    return out.getvalue()


def read_summary(chunks: Iterable[bytes]) -> str:
    """The first SUMMARY_LIMIT_BYTES of the summary in a one-file tar stream, "" if unusable.

    Only a regular file counts: a link could point anywhere in the container.
    """
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks)), mode="r|") as tar:
        member = next(iter(tar), None)
        if member is None or not member.isreg():
            return ""
        file = tar.extractfile(member)
        data = file.read(SUMMARY_LIMIT_BYTES) if file else b""
    return data.decode(errors="replace").strip()
