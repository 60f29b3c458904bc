"""lakevec's batch UDFs for ``Dataset.map_batches(udf, batch_format="pyarrow")``, sizing
lakevec's thread pool from the CPUs Ray granted the task (:func:`granted_cpus`)."""

from __future__ import annotations

import math

import ray

from lakevec import _dist

__all__ = ["MinHashSignatures", "HashingEmbed", "TagRules", "TagKNN", "SearchIndex", "granted_cpus", "cluster_cpus"]


def granted_cpus() -> int | None:
    """CPUs Ray granted the running task or actor (rounded up, at least 1); ``None`` outside
    a Ray worker (then lakevec's default applies, see :func:`lakevec.default_num_threads`)."""
    try:
        if not ray.is_initialized():
            return None
        ctx = ray.get_runtime_context()
        if ctx.worker.mode != ray.WORKER_MODE:
            return None
        cpu = ctx.get_assigned_resources().get("CPU")
    except Exception:  # pragma: no cover - depends on the Ray version
        return None
    return max(1, math.ceil(cpu)) if cpu else None


class _RayThreads:
    threads = staticmethod(granted_cpus)


class MinHashSignatures(_RayThreads, _dist.MinHashSignatures):
    __doc__ = _dist.MinHashSignatures.__doc__


class HashingEmbed(_RayThreads, _dist.HashingEmbed):
    __doc__ = _dist.HashingEmbed.__doc__


class TagRules(_RayThreads, _dist.TagRules):
    __doc__ = _dist.TagRules.__doc__


class TagKNN(_RayThreads, _dist.TagKNN):
    __doc__ = _dist.TagKNN.__doc__


class SearchIndex(_RayThreads, _dist.SearchIndex):
    __doc__ = _dist.SearchIndex.__doc__


def cluster_cpus() -> int:
    """The CPUs of the Ray cluster (at least 1): what work is spread over by default."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
