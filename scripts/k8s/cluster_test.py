"""`make k8s-test`: jobrelay on the local cluster of `make k8s-up`, checked end to end.

Runs inside the cluster's network namespace (scripts/k8s-cluster.sh exec), so it reaches the
Services by their cluster addresses, as a pod would; kubectl comes from the environment the
cluster script sets (KUBECTL, KUBECONFIG). Each check prints one line; the last line is
`N passed, N failed`, and the exit status is non-zero if any failed. Figures (jobs lost,
duplicated, throughput) go to stdout and, as JSON, to JOBRELAY_K8S_FIGURES when set.

Nothing here fakes a part: the jobs go through intake's Service, the broker and the store are
the in-cluster Redis, the model is the model pod, and the sidecars are the injected daprd.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("k8s-test")

NAMESPACE = "jobrelay"
APPS_WITH_SIDECAR = ("intake", "status", "worker")
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}
# KEDA's documented way to hold a ScaledObject at a fixed count (and stop autoscaling it).
PAUSE = "autoscaling.keda.sh/paused-replicas"
# A classify job on the built-in model: the cheapest real model call the worker makes.
JOB_BODY = {
    "task": "classify",
    "input": {"text": "The parcel came two days late and the box was crushed."},
    "params": {"labels": ["complaint", "praise", "question"]},
}
# Jobs per step of the scaling check: enough that a batch takes many seconds, not a few.
SCALING_BATCH = 150
# A job's "succeeded" line in a worker's log: JSON (`"job_id": "...", ..., "status":
# "succeeded"`, the default) or key=value with a text log format.
SUCCEEDED_LINE = re.compile(
    r'"job_id": "(\w+)", "task": "[^"]*", "status": "succeeded"'
    r"|job_id=(\w+) task=\S+ status=succeeded"
)


class CheckFailed(Exception):
    """A check saw something other than what it expects; the message says what."""


@dataclass
class Figures:
    """What the checks measured, for the report in docs/kubernetes.md."""

    values: dict[str, Any] = field(default_factory=dict)

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value
        sys.stdout.write(f"    {key}: {value}\n")


def kubectl(*args: str, check: bool = True, timeout: float = 120) -> str:
    command = [os.environ.get("KUBECTL", "kubectl"), *args]
    done = subprocess.run(  # noqa: S603 - the cluster's own kubectl, fixed arguments
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise CheckFailed(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def pods(app: str, *, terminating: bool = False) -> list[dict[str, Any]]:
    found = json.loads(
        kubectl("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={app}", "-o", "json")
    )
    items: list[dict[str, Any]] = found["items"]
    return [p for p in items if terminating or not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses", [])
    return bool(statuses) and all(s.get("ready") for s in statuses)


def service_url(name: str) -> str:
    svc = json.loads(kubectl("-n", NAMESPACE, "get", "service", name, "-o", "json"))
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def wait_until(what: str, seconds: float, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not probe():
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {seconds:.0f} s")
        time.sleep(2)


def exec_python(pod: str, container: str, code: str) -> str:
    """Runs code with the Python of an app's container: the app images carry no curl."""
    return kubectl(
        "-n", NAMESPACE, "exec", pod, "-c", container, "--", "python", "-c", code, check=False
    ).strip()


class Cluster:
    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.intake = service_url("intake")
        self.status = service_url("status")
        self.http = httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0))
        self.figures = Figures()
        self.keda = bool(
            kubectl("-n", NAMESPACE, "get", "scaledobject", "worker", "-o", "name", check=False)
        )

    def headers(self, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    def submit(self, tenant: str = "acme") -> str:
        answer = self.http.post(
            f"{self.intake}/v1/jobs", json=JOB_BODY, headers=self.headers(tenant)
        )
        if answer.status_code != 202:
            raise CheckFailed(f"submit: {answer.status_code} {answer.text[:200]}")
        job_id: str = answer.json()["id"]
        return job_id

    def get(self, job_id: str, tenant: str = "acme") -> httpx.Response:
        return self.http.get(f"{self.status}/v1/jobs/{job_id}", headers=self.headers(tenant))

    def run_batch(self, count: int, timeout: float) -> tuple[dict[str, dict[str, Any]], float]:
        """Submits count jobs (8 at a time), polls until each is terminal; the records, and
        the seconds from the first submit to the last job done."""
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: self.submit(), range(count)))
        records: dict[str, dict[str, Any]] = {}
        deadline = started + timeout
        while len(records) < count and time.monotonic() < deadline:
            for job_id in [i for i in ids if i not in records]:
                answer = self.get(job_id)
                if answer.status_code == 200 and answer.json()["status"] in TERMINAL:
                    records[job_id] = answer.json()
            time.sleep(1)
        return records, time.monotonic() - started

    def scale_worker(self, replicas: int | None) -> None:
        """Holds the worker at `replicas` through KEDA (None hands it back to KEDA). Scaling
        the Deployment directly would fight KEDA's HPA; without KEDA (a cluster brought up
        without it, for debugging) the Deployment is scaled."""
        value = f"{PAUSE}-" if replicas is None else f"{PAUSE}={replicas}"
        if self.keda:
            kubectl("-n", NAMESPACE, "annotate", "scaledobject", "worker", value, "--overwrite")
        elif replicas is not None:
            kubectl("-n", NAMESPACE, "scale", "deploy", "worker", f"--replicas={replicas}")
        if replicas is not None:
            # Until a removed pod is gone its sidecar may still take deliveries, which then
            # wait out the broker's processingTimeout (300 s) before another worker gets
            # them (docs/kubernetes.md): a batch timed before that measures the timeout.
            wait_until(
                f"worker at {replicas} ready replicas and none terminating",
                300,
                lambda: (
                    sum(ready(p) for p in pods("worker")) == replicas
                    and len(pods("worker", terminating=True)) == replicas
                ),
            )


def summarize(cluster: Cluster, label: str, ids: int, records: dict[str, dict[str, Any]]) -> None:
    statuses = Counter(r["status"] for r in records.values())
    duplicated = sum(1 for r in records.values() if r.get("attempts", 0) > 1)
    cluster.figures.put(f"{label}.submitted", ids)
    cluster.figures.put(f"{label}.statuses", dict(statuses))
    cluster.figures.put(f"{label}.lost", ids - len(records))
    cluster.figures.put(f"{label}.run_more_than_once", duplicated)


def worker_counts(since: str) -> dict[str, int]:
    """Jobs each worker pod finished (its "succeeded" log lines) since a time."""
    counts: dict[str, int] = {}
    for pod in pods("worker"):
        name = pod["metadata"]["name"]
        text = kubectl("-n", NAMESPACE, "logs", name, "-c", "worker", f"--since-time={since}")
        counts[name] = len({a or b for a, b in SUCCEEDED_LINE.findall(text)})
    return counts


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- the checks ---------------------------------------------------------------------------


def check_sidecars(cluster: Cluster) -> None:
    """The injector added daprd to each app pod, and every container is ready (2/2)."""
    for app in APPS_WITH_SIDECAR:
        found = pods(app)
        if not found:
            if app == "worker":
                continue  # KEDA may hold it at zero; the scaling checks see its pods
            raise CheckFailed(f"no {app} pod")
        for pod in found:
            names = [c["name"] for c in pod["spec"]["containers"]]
            if names != [app, "daprd"] and sorted(names) != sorted([app, "daprd"]):
                raise CheckFailed(f"{pod['metadata']['name']} has containers {names}")
            if not ready(pod):
                raise CheckFailed(f"{pod['metadata']['name']} is not ready")
    for pod in pods("model"):
        if len(pod["spec"]["containers"]) != 1:
            raise CheckFailed("the model pod got a sidecar it should not have")


def check_api_keys(cluster: Cluster) -> None:
    """No key: 401 at intake and status; another tenant's job: 404."""
    no_key = cluster.http.post(f"{cluster.intake}/v1/jobs", json=JOB_BODY)
    if no_key.status_code != 401:
        raise CheckFailed(f"submit without a key answered {no_key.status_code}")
    job_id = cluster.submit("acme")
    if (code := cluster.http.get(f"{cluster.status}/v1/jobs/{job_id}").status_code) != 401:
        raise CheckFailed(f"status without a key answered {code}")
    if (code := cluster.get(job_id, "globex").status_code) != 404:
        raise CheckFailed(f"another tenant's job answered {code}, not 404")


PUBLISH_PROBE = """
import json, os, urllib.request, urllib.error
def publish(token):
    req = urllib.request.Request("http://127.0.0.1:3500/v1.0/publish/pubsub/jobs",
        data=b"{}", method="POST", headers={"Content-Type": "application/json", **token})
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
print(json.dumps([publish({}), publish({"dapr-api-token": os.environ["DAPR_API_TOKEN"]})]))
"""


def check_scopes_and_tokens(cluster: Cluster) -> None:
    """In the status pod, daprd refuses a call without the Dapr API token (401), and with it
    refuses to publish to `jobs`, a topic only intake and worker may publish (403)."""
    pod = pods("status")[0]["metadata"]["name"]
    out = exec_python(pod, "status", PUBLISH_PROBE)
    try:
        without, with_token = json.loads(out.splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise CheckFailed(f"probe in {pod} printed {out!r}") from exc
    cluster.figures.put("scopes.status_publish_jobs", {"no_token": without, "token": with_token})
    if without != 401 or with_token != 403:
        raise CheckFailed(f"status's sidecar answered {without} without a token, {with_token} with")


CONNECT_PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("open")
except OSError as e:
    print("blocked", type(e).__name__)
"""


def probe(app: str, host: str, port: int) -> str:
    pod = pods(app)[0]["metadata"]["name"]
    return kubectl(
        "-n",
        NAMESPACE,
        "exec",
        pod,
        "-c",
        app,
        "--",
        "python",
        "-c",
        CONNECT_PROBE,
        host,
        str(port),
        check=False,
    ).strip()


def check_network_policies(cluster: Cluster) -> None:
    """The model answers workers only; Redis answers pods with a Dapr sidecar only."""
    cluster.scale_worker(1)  # KEDA may have taken it to zero
    seen = {
        "worker->model": probe("worker", "model", 8002),
        "intake->model": probe("intake", "model", 8002),
        "model->redis": probe("model", "redis", 6379),
        "intake->redis": probe("intake", "redis", 6379),
    }
    cluster.figures.put("network_policies", seen)
    expected = {
        "worker->model": "open",
        "intake->model": "blocked",
        "model->redis": "blocked",
        "intake->redis": "open",
    }
    for path, want in expected.items():
        if not seen[path].startswith(want):
            raise CheckFailed(f"{path}: {seen[path]}, expected {want}")


def check_200_jobs(cluster: Cluster) -> None:
    """200 jobs through intake's Service, read back through status's: none lost."""
    cluster.scale_worker(1)
    records, seconds = cluster.run_batch(200, timeout=900)
    summarize(cluster, "jobs200", 200, records)
    cluster.figures.put("jobs200.seconds", round(seconds, 1))
    if len(records) != 200 or any(r["status"] != "succeeded" for r in records.values()):
        raise CheckFailed("not every job of 200 succeeded")


def check_worker_deleted_mid_job(cluster: Cluster) -> None:
    """Two workers; one is deleted (kubectl delete pod, as a drain would) while jobs run."""
    cluster.scale_worker(2)
    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(cluster.run_batch, 60, 900)
        wait_until("a job running", 120, lambda: _running_somewhere())
        victim = pods("worker")[0]["metadata"]["name"]
        kubectl("-n", NAMESPACE, "delete", "pod", victim, "--wait=false")
        cluster.figures.put("deletion.pod", victim)
        records, _ = batch.result()
    summarize(cluster, "deletion", 60, records)
    if len(records) != 60 or any(r["status"] != "succeeded" for r in records.values()):
        raise CheckFailed("a job was lost or failed across the pod deletion")
    if any(
        r.get("attempts", 0) > 1 and len(r.get("model_calls", [])) > 1 for r in records.values()
    ):
        log.info("a job was handed back and run again (attempts > 1): see the figures")


def _running_somewhere() -> bool:
    for pod in pods("worker"):
        name = pod["metadata"]["name"]
        text = kubectl("-n", NAMESPACE, "logs", name, "-c", "worker", "--tail=50", check=False)
        # The worker logs JSON lines (`"status": "running"`), or key=value ones with a text
        # log format.
        if '"status": "running"' in text or "status=running" in text:
            return True
    return False


def check_scaling(cluster: Cluster) -> None:
    """Worker at 1, then 3, then 1: the same batch each time; throughput side by side, and
    the jobs each pod finished."""
    spread: dict[str, int] = {}
    for step, replicas in enumerate((1, 3, 1), start=1):
        cluster.scale_worker(replicas)
        since = now_rfc3339()
        records, seconds = cluster.run_batch(SCALING_BATCH, timeout=900)
        if len(records) != SCALING_BATCH:
            raise CheckFailed(f"{SCALING_BATCH - len(records)} unfinished with {replicas} workers")
        counts = worker_counts(since)
        if replicas == 3:
            spread = counts
        cluster.figures.put(
            f"scaling.{step}",
            {
                "replicas": replicas,
                "jobs_per_second": round(SCALING_BATCH / seconds, 2),
                "per_pod": counts,
            },
        )
    if len(spread) != 3 or min(spread.values()) == 0:
        raise CheckFailed(f"with 3 workers the jobs did not spread: {spread}")


def check_keda(cluster: Cluster) -> None:
    """KEDA wakes the worker from zero on a backlog and sizes it by the backlog.

    The backlog must outlast KEDA's polling (5 s) and the HPA's sync (15 s): one worker
    drains 40 jobs before the HPA has looked."""
    backlog = 400
    cluster.scale_worker(0)
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: cluster.submit(), range(backlog)))
    cluster.scale_worker(None)
    started = time.monotonic()
    peak = ready_peak = 0

    def grown() -> bool:
        nonlocal peak, ready_peak
        deploy = json.loads(kubectl("-n", NAMESPACE, "get", "deploy", "worker", "-o", "json"))
        peak = max(peak, int(deploy["spec"].get("replicas", 0)))
        ready_peak = max(ready_peak, int(deploy["status"].get("readyReplicas", 0)))
        return peak > 1

    wait_until(f"KEDA scaling the worker above 1 on a backlog of {backlog}", 180, grown)
    asked_after = time.monotonic() - started
    deadline = time.monotonic() + 900
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        grown()
        pending = {i for i in pending if cluster.get(i).json()["status"] not in TERMINAL}
        time.sleep(2)
    cluster.figures.put(
        "keda",
        {
            "backlog": backlog,
            "replicas_asked": peak,
            "replicas_ready_at_most": ready_peak,
            "seconds_to_scale_above_1": round(asked_after, 1),
            "seconds_to_drain": round(time.monotonic() - started, 1),
            "unfinished": len(pending),
        },
    )
    if pending:
        raise CheckFailed(f"{len(pending)} of the backlog unfinished after 900 s")


CHECKS: list[Callable[[Cluster], None]] = [
    check_sidecars,
    check_api_keys,
    check_scopes_and_tokens,
    check_network_policies,
    check_200_jobs,
    check_worker_deleted_mid_job,
    check_scaling,
    check_keda,
]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # One line per check, not one per request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    keys_file = Path(os.environ["JOBRELAY_K8S_KEYS"])
    keys: dict[str, str] = json.loads(keys_file.read_text())["api_keys"]
    cluster = Cluster(keys)
    only = os.environ.get("JOBRELAY_K8S_CHECKS", "")
    passed = failed = 0
    for check in CHECKS:
        if only and check.__name__.removeprefix("check_") not in only.split(","):
            continue
        started = time.monotonic()
        try:
            check(cluster)
        except Exception as exc:  # one broken check must not hide the others' results
            failed += 1
            sys.stdout.write(f"FAIL {check.__name__} ({time.monotonic() - started:.0f} s): {exc}\n")
        else:
            passed += 1
            sys.stdout.write(f"PASS {check.__name__} ({time.monotonic() - started:.0f} s)\n")
        sys.stdout.flush()
    if out := os.environ.get("JOBRELAY_K8S_FIGURES"):
        Path(out).write_text(json.dumps(cluster.figures.values, indent=1))
    sys.stdout.write(f"{passed} passed, {failed} failed\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
