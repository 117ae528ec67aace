"""Scale-out: stage artifacts in an S3-compatible store, and two training workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections.common import fmt, md_table, times

ORDER = 80
TITLE = "8. Scale-out: object storage and training workers"
RESULTS = ("scaleout",)


def _pair(stats: dict[str, float], digits: int = 2) -> str:
    return f"{fmt(stats['p50_ms'], digits)} / {fmt(stats['p95_ms'], digits)}"


def summary(results: dict[str, Any]) -> list[str]:
    data = results["scaleout"]
    r, er = data["ratios"], data["erasure"]
    return [
        f"**Scale-out** (SeaweedFS on loopback, CPU only): approval → certificate takes "
        f"{fmt(er['s3']['approval_to_certificate']['p50_ms'], 0)} ms with artifacts in the "
        f"bucket against {fmt(er['local']['approval_to_certificate']['p50_ms'], 0)} ms in a "
        f"local folder ({times(r['s3_over_local_erasure_p50'])}, p50); two training workers "
        f"train at {times(r['two_over_one_workers_stages_per_s'])} the stage rate of one on "
        f"this 2-vCPU machine; a cold stage load from the bucket costs "
        f"{times(r['store_over_cache_load_p50_stages'], 0)} a cache hit."
    ]


def render(results: dict[str, Any], plots: Path) -> str:
    data = results["scaleout"]
    s, t, ld, er, r = (data[k] for k in ("settings", "training", "stage_load", "erasure", "ratios"))
    one, two = t["one_worker"], t["two_workers"]
    training = md_table(
        ["training workers", "wall s", "stages / s", "example-epochs / s",
         "sum of stage seconds", "1-min load before → after"],
        [[b["workers"], fmt(b["wall_s"], 1), fmt(b["stages_per_s"], 3),
          fmt(b["example_epochs_per_s"], 0), fmt(b["stage_seconds_sum"], 1),
          f"{fmt(b['load_1min_before'])} → {fmt(b['load_1min_after'])}"]
         for b in (one, two)],
    )  # fmt: skip
    loads = md_table(
        ["stage", "from the bucket (cold) p50 / p95 ms", "cache hit p50 / p95 ms",
         "local folder p50 / p95 ms", "bucket ÷ cache"],
        [[f"{name} ({fmt(ld[size]['bytes_mean'])} bytes)", _pair(ld[size]["store"]),
          _pair(ld[size]["cache"]), _pair(ld[size]["local_folder"]),
          times(r[f"store_over_cache_load_p50_{size}"], 1)]
         for size, name in (("stages", "tiny-bert stages"), ("large", "synthetic"))],
    )  # fmt: skip
    erasure = md_table(
        ["artifacts in", "approval → certificate p50 / p95 ms", "stages destroyed per request",
         "last certificate's claims hold"],
        [[name, _pair(er[key]["approval_to_certificate"], 0),
          ", ".join(str(n) for n in er[key]["stages_destroyed_per_request"]),
          er[key]["last_certificate_claims_ok"]]
         for key, name in (("local", "local folder (embedded default)"),
                           ("s3", "SeaweedFS bucket (versioned)"))],
    )  # fmt: skip
    return f"""\
Script: `bench/bench_scaleout.py`. {s['object_store']}; {s['broker']}; PostgreSQL.
Model: {s['backbone']}, m={s['shards']}, L={s['slices']}, B={s['budget']} {s['policy']},
{s['records']:,} records, {s['epochs']} epoch, batch {s['batch_size']}. **No GPU**:
{s['gpu'].split(': ', 1)[-1]}.

**Training throughput, two workers against one.** Real `manage.py worker --queues=training`
processes, each with its own folders and {s['torch_threads_per_worker']} torch thread,
artifacts in the bucket; the same spec trained once with one worker and once with two,
timed from `model_train` to the job's `succeeded`:

{training}

Two workers train at {times(r['two_over_one_workers_stages_per_s'])} the stage rate of one.
This machine has 2 vCPUs shared with other work, so a second worker mostly competes for
the same cores (the sum of stage seconds shows each stage getting slower); on machines
with a core or a GPU per worker the sequences of a shard train in parallel.

**Cold stage load from the bucket against the local cache** (`StageStore.load` with each
process's read-through cache, digest checked every time; {s['loads_per_mode']} loads per
mode, the synthetic stage a quarter as many):

{loads}

**Erasure approval → certificate with artifacts in SeaweedFS against the local folder**,
in one process, alternating backends request by request, {s['erasures_per_backend']}
measured requests each after {s['warmup_per_backend']} warm-ups; the model is put back as
trained before each request (untimed). Both sent the cache-eviction broadcast in this
run (the local folder no longer does: no process caches it); in the bucket each purge
also lists and deletes every version of each stage object, and the certificate's
"bytes destroyed" claim is a HEAD that answers not-found:

{erasure}

The bucket makes an erasure {times(r['s3_over_local_erasure_p50'])} slower at p50
({times(r['s3_over_local_erasure_p95'])} at p95): a few HTTP round trips per destroyed
stage, on loopback here; a remote store adds its network latency to each.
"""  # fmt: skip
