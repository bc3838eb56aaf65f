"""A Ray cluster of several nodes on this one machine: for the tests and the sweep benchmark, which need real
Ray nodes (their own raylets and job agents) without a second machine.

    with LocalRayCluster(cpus_per_node=1) as cluster:   # the head node only
        cluster.add_node()                                # a second node joins
        address = cluster.address                         # the dashboard, for the Jobs API

`ray start` is Ray's own command, so these are the nodes a real cluster would run, only on one host. Every node
gets ports of its own: two nodes on one machine would otherwise collide on the agents' default ports.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from types import TracebackType

from genai_core.errors import GenAIError


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRayCluster:
    """A head node started on enter, more nodes with `add_node`, every node stopped on exit (`ray stop`)."""

    def __init__(self, cpus_per_node: int = 1, *, start_timeout: float = 120.0) -> None:
        if shutil.which("ray") is None:
            raise GenAIError("a local Ray cluster needs the ray command: pip install 'ray[default]'")
        self.cpus_per_node = cpus_per_node
        self.start_timeout = start_timeout
        self.nodes = 0
        self._gcs, self._dashboard = free_port(), free_port()
        # RAY_JOB_STOP_WAIT_TIME_S: a stopped job's trainer gets 30 s to checkpoint before Ray kills it.
        # RAY_AUTH_MODE: a node started where a token file exists (~/.ray/auth_token, which any earlier local
        # `ray.init` leaves) turns token authentication on by itself, and then refuses this process's job client.
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_JOB_STOP_WAIT_TIME_S": "30",
                    "RAY_AUTH_MODE": "disabled"}

    @property
    def address(self) -> str:
        """The dashboard's address: what `train.ray_address` and the Jobs API take."""
        return f"http://127.0.0.1:{self._dashboard}"

    def __enter__(self) -> LocalRayCluster:
        self._start(["ray", "start", "--head", "--port", str(self._gcs), "--dashboard-port", str(self._dashboard),
                     "--include-dashboard", "true", "--disable-usage-stats"])
        return self

    def add_node(self) -> None:
        """One more node (of `cpus_per_node` CPUs), ready for jobs when this returns."""
        self._start(["ray", "start", "--address", f"127.0.0.1:{self._gcs}", "--dashboard-agent-listen-port",
                     str(free_port()), "--metrics-export-port", str(free_port())])

    def _start(self, command: list[str]) -> None:
        try:
            subprocess.run([*command, "--num-cpus", str(self.cpus_per_node)], env=self.env, check=True,
                           capture_output=True, timeout=self.start_timeout)
        except subprocess.CalledProcessError as e:
            raise GenAIError(f"`{' '.join(command[:3])}` failed: {e.stderr.decode(errors='replace')[-300:]}") from None
        self.nodes += 1
        self._wait_for_job_agents()

    def _wait_for_job_agents(self) -> None:
        """`ray start` returns before a node's job agent accepts work: run no-op jobs, one CPU each, until as
        many run at once as the cluster has CPUs (so every node's agent has answered)."""
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                client = JobSubmissionClient(self.address)
                ids = [client.submit_job(entrypoint="true", entrypoint_num_cpus=self.cpus_per_node)
                       for _ in range(self.nodes)]
                break
            except (RuntimeError, ConnectionError):
                if time.monotonic() > deadline:
                    raise GenAIError(f"the local Ray cluster at {self.address} did not accept jobs") from None
                time.sleep(1.0)
        while not all(client.get_job_status(i).is_terminal() for i in ids):
            if time.monotonic() > deadline:
                raise GenAIError("the local Ray cluster did not run a no-op job")
            time.sleep(0.5)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        subprocess.run(["ray", "stop", "--force"], env=self.env, capture_output=True, timeout=120)
