"""Deletion capacity: how many erasures an S3T model absorbs before it can no longer serve.

"Capacity" is the number of deletions, one at a time and with no retraining, until no shard
has a clean prefix left (the last deletion counted), the metric of s3t.md section 5. One
process, one throw-away PostgreSQL database (default ``lethe_bench_capacity``), three parts:

A. **The paper's setting.** m=5 shards, L=6 slices, B=1..6 cyclic sequences per shard:
   Monte Carlo mean ± stderr (``unlearning.simulate.simulate_capacity``, uniform deletions
   over the 30 slices, ``--trials`` streams) next to the closed form m·L·H(m·min(B, L))
   and SISA without slice checkpoints (``simulate_sisa``, closed form m·H(m)).
B. **Sequence policies.** Same m, L; B=1..6; policies cyclic, BMS (``sequences.bms`` given
   the prior, t=100, the repository default), random permutations (per shard, averaged over
   ``--seeds`` plan seeds) and cyclic with a random slice labelling (the slice that is hot is
   arbitrary, so this is what a prior-blind Latin square gets on average; same seeds). Four
   priors, the same shape over the L slices of every shard (global prior = shape / m):
   uniform; Zipf hot-first (p_j ∝ 1/(j+1)); the same Zipf reversed (hot last); one hot slice
   (slice 0: 0.5, the others 0.1). Thresholds 1, 2 and 3: a shard serves while some
   sequence has a clean prefix of depth ≥ t, so at t ≥ 2 the order after the head matters.
C. **The live system.** ``--live-subjects`` subjects of ``unlearning.sample_data.generate``
   are ingested with ``records_upsert``; an m, L, B (``--live``, default 3,4,2) cyclic model
   on ``tiny-bert`` is created with ``model_create`` and trained for real with
   ``model_train`` + ``training_task_run`` in this process (1 epoch, batch 32, LoRA r=8;
   torch 1 thread). Each of ``--live-trials`` trials restores the model as trained (records,
   stage files from a snapshot, a new manifest; as ``bench_erasure._restore``), then erases
   distinct subjects in a seeded random order through ``erasure_request_create``,
   ``erasure_request_approve`` and ``erasure_request_execute`` (on-commit enqueue captured,
   no broker, no retraining) until the manifest has no serving entry. The erasure at which
   the first shard stops serving (where the scheduler would first retrain) and the one at
   which none serves are recorded; at the first, ``model_predict`` must answer, at the last
   it must raise ``model_not_servable`` (HTTP 409). Compared with: ``simulate_capacity`` on
   the model's own plans and the empirical priors (each cell's share of subjects: every
   subject's records lie in one cell, ``unlearning.partition.assign``), and a numpy Monte
   Carlo on the subject → cell map, drawing subjects without replacement as the live trials
   do (the simulator draws slices with replacement), which also gives the first-shard death.

Writes bench/results/capacity.json (only when all parts ran) and prints tables. Drops and
recreates the database named by DATABASE_URL (``lethe_bench*`` names only) and drops it at
the end; artifacts, keys and broker folder live in a temporary folder removed at the end.

Usage: python bench/bench_capacity.py [--trials 2000] [--seeds 8] [--live 3,4,2]
       [--live-subjects 600] [--live-trials 40] [--parts abc] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lethe_bench_capacity")

from bench.harness import (  # noqa: E402
    CAPTURED,
    capture_enqueues,
    django_setup,
    ingest,
    machine_info,
    postgres_url,
    print_table,
    recreate_postgres,
    restore_as_trained,
    stage_folder,
    train,
    write_results,
)
from unlearning.sequences import bms, cyclic, random_permutations  # noqa: E402
from unlearning.simulate import (  # noqa: E402
    CapacityResult,
    closed_form_capacity,
    simulate_capacity,
    simulate_sisa,
    sisa_closed_form,
)

SHARDS, SLICES = 5, 6
BUDGETS = tuple(range(1, SLICES + 1))
THRESHOLDS = (1, 2, 3)
BMS_T = 100.0
BACKBONE, EPOCHS, BATCH, LR, SEED, LORA_RANK = "tiny-bert", 1, 32, 1e-3, 0, 8
LIVE_MC_TRIALS = 20_000

Order = tuple[int, ...]
Plan = list[Order]


def _zipf(num_slices: int) -> list[float]:
    weights = [1.0 / (j + 1) for j in range(num_slices)]
    return [w / sum(weights) for w in weights]


# Deletion prior over the L slices of one shard (every shard has the same shape).
PRIORS: dict[str, tuple[str, list[float]]] = {
    "uniform": ("uniform: every slice 1/6", [1.0 / SLICES] * SLICES),
    "zipf": ("Zipf, hot first: p_j ∝ 1/(j+1) (0.41, 0.20, … 0.07)", _zipf(SLICES)),
    "zipf_reversed": ("Zipf, hot last: the same values, slice 5 hottest", _zipf(SLICES)[::-1]),
    "hot_slice": ("one hot slice: slice 0 gets 0.5, the others 0.1 each", [0.5] + [0.1] * 5),
}
POLICIES = ("cyclic", "cyclic_relabelled", "bms", "random")


def _result(r: CapacityResult) -> dict[str, float]:
    return {
        "mean": round(r.mean, 3),
        "std": round(r.std, 3),
        "stderr": round(r.stderr, 3),
        "trials": r.trials,
    }


def _summary(values: np.ndarray) -> dict[str, float]:
    """Mean, std, stderr and quartiles of a sample of counts."""
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        "mean": round(float(values.mean()), 3),
        "std": round(std, 3),
        "stderr": round(std / float(np.sqrt(values.size)), 3),
        "p25": float(q1),
        "median": float(median),
        "p75": float(q3),
        "min": int(values.min()),
        "max": int(values.max()),
        "trials": int(values.size),
    }


# --- part A: the paper's setting -------------------------------------------------------------


def part_a(trials: int) -> dict[str, Any]:
    sisa = simulate_sisa(SHARDS, trials=trials, seed=SEED)
    sisa_cf = sisa_closed_form(SHARDS)
    rows = []
    for budget in BUDGETS:
        sim = simulate_capacity(SHARDS, cyclic(SLICES, budget), SLICES, trials=trials, seed=budget)
        cf = closed_form_capacity(SHARDS, SLICES, budget)
        rows.append(
            {
                "budget": budget,
                "simulated": _result(sim),
                "closed_form": round(cf, 3),
                "relative_difference": round((sim.mean - cf) / cf, 4),
                "z": round((sim.mean - cf) / sim.stderr, 2),
                "over_sisa_simulated": round(sim.mean / sisa.mean, 2),
                "over_sisa_closed_form": round(cf / sisa_cf, 2),
            }
        )
    return {
        "shards": SHARDS,
        "slices": SLICES,
        "policy": "cyclic",
        "threshold": 1,
        "rows": rows,
        "sisa": {"simulated": _result(sisa), "closed_form": round(sisa_cf, 3)},
    }


# --- part B: sequence policies ---------------------------------------------------------------


def _relabelled(plan: Plan, seed: int) -> list[Plan]:
    """``plan`` in every shard, with each shard's slice labels permuted at random."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(SHARDS):
        perm = rng.permutation(SLICES)
        out.append([tuple(int(perm[s]) for s in order) for order in plan])
    return out


def _random_plans(budget: int, seed: int) -> list[Plan]:
    return [
        random_permutations(SLICES, budget, seed=seed * 1000 + shard) for shard in range(SHARDS)
    ]


def _over_seeds(plans: list[list[Plan]], priors: list[float], threshold: int, trials: int) -> Any:
    """Grand mean over plan seeds; stderr from the spread of the per-seed means."""
    means = np.array(
        [
            simulate_capacity(
                SHARDS, p, SLICES, trials=trials, seed=n, priors=priors, threshold=threshold
            ).mean
            for n, p in enumerate(plans)
        ]
    )
    return {
        "mean": round(float(means.mean()), 3),
        "stderr": round(float(means.std(ddof=1) / np.sqrt(means.size)), 3),
        "seed_min": round(float(means.min()), 3),
        "seed_max": round(float(means.max()), 3),
        "seeds": int(means.size),
        "trials_per_seed": trials,
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def part_b(trials: int, seeds: int) -> dict[str, Any]:
    per_seed = max(trials // 4, 100)
    out: dict[str, Any] = {}
    for name, (label, shape) in PRIORS.items():
        priors = [p / SHARDS for p in shape] * SHARDS
        plans = {
            b: {"cyclic": cyclic(SLICES, b), "bms": bms(shape, budget=b, t=BMS_T)} for b in BUDGETS
        }
        cells: dict[str, list[dict[str, Any]]] = {}
        for threshold in THRESHOLDS:
            rows = []
            for b in BUDGETS:
                sim = {
                    policy: _result(
                        simulate_capacity(
                            SHARDS,
                            plans[b][policy],
                            SLICES,
                            trials=trials,
                            seed=100 * threshold + b,
                            priors=priors,
                            threshold=threshold,
                        )
                    )
                    for policy in ("cyclic", "bms")
                }
                sim["cyclic_relabelled"] = _over_seeds(
                    [_relabelled(plans[b]["cyclic"], s) for s in range(seeds)],
                    priors,
                    threshold,
                    per_seed,
                )
                sim["random"] = _over_seeds(
                    [_random_plans(b, s) for s in range(seeds)], priors, threshold, per_seed
                )
                rows.append(
                    {
                        "budget": b,
                        **sim,
                        "bms_over_cyclic": _ratio(sim["bms"]["mean"], sim["cyclic"]["mean"]),
                        "bms_over_cyclic_relabelled": _ratio(
                            sim["bms"]["mean"], sim["cyclic_relabelled"]["mean"]
                        ),
                        "bms_over_random": _ratio(sim["bms"]["mean"], sim["random"]["mean"]),
                    }
                )
            cells[str(threshold)] = rows
        out[name] = {
            "label": label,
            "shape": [round(p, 4) for p in shape],
            "plans": {
                str(b): {k: [list(o) for o in v] for k, v in plans[b].items()} for b in BUDGETS
            },
            "thresholds": cells,
        }
        print(f"   prior {name}: done", flush=True)
    return {
        "shards": SHARDS,
        "slices": SLICES,
        "bms_t": BMS_T,
        "trials": trials,
        "plan_seeds": seeds,
        "priors": out,
    }


# --- part C: the live system -----------------------------------------------------------------


def _train(engineer: Any, dataset: Any, shards: int, slices: int, budget: int) -> Any:
    from governance.services.training import ModelSpec

    spec = ModelSpec(
        name="bench-capacity",
        dataset=dataset,
        base_model=BACKBONE,
        shards=shards,
        slices=slices,
        sequences=budget,
        sequence_policy="cyclic",
        lora_rank=LORA_RANK,
        epochs=EPOCHS,
        learning_rate=LR,
        batch_size=BATCH,
        seed=SEED,
    )
    model, _ = train(engineer, spec)
    return model


def _erase(officer: Any, ref: str) -> int:
    """File, approve and execute one request; returns the shards serving afterwards."""
    from governance.models import ErasureRequest
    from governance.services.erasure import (
        erasure_request_approve,
        erasure_request_create,
    )
    from governance.services.erasure_execution import erasure_request_execute

    request, _ = erasure_request_create(
        actor=officer, subject_ref=ref, reason="bench", channel="email"
    )
    CAPTURED["erasure"].clear()
    request = erasure_request_approve(actor=officer, request=request)
    if CAPTURED["erasure"] != [request.pk]:
        sys.exit(f"approval of {request.pk} queued {CAPTURED['erasure']}")
    status = erasure_request_execute(request_id=request.pk)
    if status != ErasureRequest.Status.COMPLETED:
        sys.exit(f"request {request.pk} for {ref} ended {status}")
    execution = ErasureRequest.objects.get(pk=request.pk).execution
    (entry,) = execution["models"]
    return len((entry["manifest_after"] or {}).get("depths", {}))


def _predict_code(model: Any) -> str:
    """ "ok" when ``model_predict`` answers, else the ApplicationError's code."""
    from governance.errors import ApplicationError
    from governance.services.serving import model_predict

    try:
        model_predict(model=model, inputs=["I was charged twice for my order."])
    except ApplicationError as exc:
        return str(getattr(exc, "code", "error"))
    return "ok"


def _live_trial(officer: Any, model: Any, shards: int, order: list[str]) -> dict[str, Any]:
    """Erase subjects in ``order`` until no shard serves; the serving count after each."""
    serving: list[int] = []
    first_death = None
    predict_at_first = predict_at_last = ""
    for ref in order:
        now = _erase(officer, ref)
        serving.append(now)
        if first_death is None and now < shards:
            first_death = len(serving)
            if now > 0:
                predict_at_first = _predict_code(model)
        if now == 0:
            predict_at_last = _predict_code(model)
            break
    else:
        sys.exit(f"ran out of subjects after {len(order)} erasures; raise --live-subjects")
    return {
        "capacity": len(serving),
        "first_shard_death": first_death,
        "serving_after": serving,
        "predict_at_first_death": predict_at_first or "not checked (last shard went too)",
        "predict_at_last": predict_at_last,
    }


def _shard_deaths(draws: np.ndarray, guards: list[list[list[int]]]) -> np.ndarray:
    """1-based count at which each shard dies, per row of ``draws`` (cells hit in order).

    ``guards[shard][sequence]`` lists the global cells whose hit cuts that sequence below
    the threshold; a shard dies when every one of its sequences is cut.
    """
    never = np.iinfo(np.int64).max // 2
    first_hit: dict[int, np.ndarray] = {}
    for c in {c for shard_guards in guards for seq in shard_guards for c in seq}:
        hits = draws == c
        first_hit[c] = np.where(hits.any(axis=1), hits.argmax(axis=1), never)
    shard_death = np.stack(
        [
            np.max([np.min([first_hit[c] for c in seq], axis=0) for seq in shard_guards], axis=0)
            for shard_guards in guards
        ],
        axis=1,
    )
    if np.any(shard_death >= never):
        sys.exit("deletion stream too short: some shard never died")
    return shard_death + 1


def _mc_live(
    cells: np.ndarray,
    guards: list[list[list[int]]],
    trials: int,
    seed: int,
    *,
    replace: bool,
    horizon: int,
) -> np.ndarray:
    """Per-shard death counts for random subject streams, with or without replacement."""
    rng = np.random.default_rng(seed)
    if replace:
        draws = cells[rng.integers(0, cells.size, size=(trials, horizon))]
    else:
        draws = rng.permuted(np.tile(cells, (trials, 1)), axis=1)[:, :horizon]
    return _shard_deaths(draws, guards)


def _serving_curve(shard_counts: np.ndarray, upto: int) -> list[float]:
    """Mean number of serving shards after k = 0..upto deletions."""
    return [round(float((shard_counts > k).sum(axis=1).mean()), 4) for k in range(upto + 1)]


def part_c(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from governance import engine
    from governance.models import Sequence as SequenceRow
    from governance.models import SliceAssignment
    from governance.permissions import Role
    from governance.services.accounts import user_create_with_role
    from unlearning.sample_data import generate

    shards, slices, budget = args.live
    capture_enqueues()
    officer, _ = user_create_with_role(username="olivia", role=Role.PRIVACY_OFFICER)
    engineer, _ = user_create_with_role(username="emil", role=Role.ML_ENGINEER)
    integration, _ = user_create_with_role(username="ingo", role=Role.INTEGRATION)

    records = generate(num_subjects=args.live_subjects, seed=SEED).train
    texts = {r.external_id: (r.text, r.label) for r in records}
    start = time.perf_counter()
    rows = [
        {"external_id": r.external_id, "subject_id": r.subject_id, "text": r.text, "label": r.label}
        for r in records
    ]
    dataset = ingest(rows, integration, "bench-capacity")
    ingest_s = time.perf_counter() - start
    print(f"C: {len(records):,} records, training m={shards} L={slices} B={budget} ...", flush=True)
    start = time.perf_counter()
    model = _train(engineer, dataset, shards, slices, budget)
    train_s = time.perf_counter() - start
    print(f"   trained in {train_s:.1f} s", flush=True)
    store = engine.artifact_store(model, 1)
    files = tmp / "snapshot"
    shutil.copytree(stage_folder(store), files)

    # The model's own plans and each subject's cell, read back from the database.
    plans = [
        [tuple(int(s) for s in o) for o in engine.sequence_plan(model, i)] for i in range(shards)
    ]
    stored = {
        (sh, ix): tuple(order)
        for sh, ix, order in SequenceRow.objects.filter(shard__model=model).values_list(
            "shard__index", "index", "order"
        )
    }
    if any(stored[(i, n)] != tuple(o) for i, plan in enumerate(plans) for n, o in enumerate(plan)):
        sys.exit("stored sequences differ from the engine's plan")
    subject_cells: dict[str, set[int]] = {}
    for ref, shard, slice_ in SliceAssignment.objects.filter(model=model).values_list(
        "record__subject__external_ref", "slice__shard__index", "slice__index"
    ):
        subject_cells.setdefault(ref, set()).add(shard * slices + slice_)
    if any(len(c) != 1 for c in subject_cells.values()):
        sys.exit("a subject's records lie in more than one cell")
    subjects = sorted(subject_cells)
    cells = np.array([next(iter(subject_cells[s])) for s in subjects], dtype=np.int16)
    per_cell = np.bincount(cells, minlength=shards * slices)
    priors = (per_cell / per_cell.sum()).tolist()

    # Threshold 1: a sequence is cut by a hit on its head slice.
    guards = [[[i * slices + s for s in o[:1]] for o in plan] for i, plan in enumerate(plans)]
    cell_of = dict(zip(subjects, cells.tolist(), strict=True))

    # Live trials.
    trials_out = []
    start = time.perf_counter()
    for trial in range(args.live_trials):
        restore_as_trained(model, texts, files)
        order = random.Random(1000 + trial).sample(subjects, len(subjects))
        result = _live_trial(officer, model, shards, order)
        # The same order replayed on the subject -> cell map: must agree with the system.
        replay = _shard_deaths(np.array([[cell_of[r] for r in order]]), guards)[0]
        result["replay_first_shard_death"] = int(replay.min())
        result["replay_capacity"] = int(replay.max())
        trials_out.append(result)
        print(
            f"   trial {trial + 1}/{args.live_trials}: first shard down after "
            f"{result['first_shard_death']}, none serving after {result['capacity']} "
            f"(replay on the map: {result['replay_first_shard_death']}, "
            f"{result['replay_capacity']})",
            flush=True,
        )
    live_s = time.perf_counter() - start
    erasures = sum(t["capacity"] for t in trials_out)

    # Simulations of the same model.
    expected = closed_form_capacity(shards, slices, budget)
    horizon = min(len(subjects), int(20 * expected))
    sim = simulate_capacity(shards, plans, slices, trials=args.trials * 5, seed=SEED, priors=priors)
    mc: dict[str, Any] = {}
    for name, replace in (("without_replacement", False), ("with_replacement", True)):
        per_shard = _mc_live(cells, guards, LIVE_MC_TRIALS, SEED, replace=replace, horizon=horizon)
        first, system = per_shard.min(axis=1), per_shard.max(axis=1)
        mc[name] = {
            "capacity": _summary(system),
            "first_shard_death": _summary(first),
            "capacity_histogram": np.bincount(system).tolist(),
            "first_death_histogram": np.bincount(first).tolist(),
            "serving_curve": _serving_curve(per_shard, int(system.max())),
        }
    live_capacity = np.array([t["capacity"] for t in trials_out])
    live_first = np.array([t["first_shard_death"] for t in trials_out])
    longest = int(live_capacity.max())
    live_curve = [
        round(
            float(
                np.mean(
                    [
                        (t["serving_after"][k - 1] if k - 1 < len(t["serving_after"]) else 0)
                        if k
                        else shards
                        for t in trials_out
                    ]
                )
            ),
            4,
        )
        for k in range(longest + 1)
    ]
    return {
        "shards": shards,
        "slices": slices,
        "budget": budget,
        "policy": "cyclic",
        "plans": [[list(o) for o in plan] for plan in plans],
        "backbone": BACKBONE,
        "epochs": EPOCHS,
        "records": len(records),
        "subjects": len(subjects),
        "subjects_per_cell": per_cell.reshape(shards, slices).tolist(),
        "empirical_priors": [round(p, 5) for p in priors],
        "ingest_s": round(ingest_s, 1),
        "train_s": round(train_s, 1),
        "live_s": round(live_s, 1),
        "erasures_total": erasures,
        "live_ms_per_erasure_incl_restore": round(live_s / erasures * 1000, 1),
        "live": {
            "capacity": _summary(live_capacity),
            "first_shard_death": _summary(live_first),
            "serving_curve": live_curve,
            "replay_agrees": all(
                t["capacity"] == t["replay_capacity"]
                and t["first_shard_death"] == t["replay_first_shard_death"]
                for t in trials_out
            ),
            "predict_at_first_death": sorted({t["predict_at_first_death"] for t in trials_out}),
            "predict_at_last": sorted({t["predict_at_last"] for t in trials_out}),
            "trials": [
                {
                    k: t[k]
                    for k in (
                        "capacity",
                        "first_shard_death",
                        "replay_capacity",
                        "replay_first_shard_death",
                        "serving_after",
                    )
                }
                for t in trials_out
            ],
        },
        "simulator": {
            "capacity": _result(sim),
            "note": "simulate_capacity, the model's plans, empirical priors (with replacement)",
        },
        "closed_form_uniform": round(expected, 3),
        "monte_carlo": mc,
    }


# --- main ----------------------------------------------------------------------------------


def _drop(url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from django.db import connections

    connections.close_all()
    parts = urlsplit(url)
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="Monte Carlo streams per cell")
    parser.add_argument("--seeds", type=int, default=32, help="plan seeds for random/relabelled")
    parser.add_argument("--live", default="3,4,2", help="live model m,L,B")
    parser.add_argument("--live-subjects", type=int, default=600)
    parser.add_argument("--live-trials", type=int, default=40)
    parser.add_argument("--parts", default="abc", help="parts to run; the JSON needs all three")
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 trials, 3 live")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds, args.live_trials, args.live_subjects = 300, 3, 3, 300
    args.live = tuple(int(x) for x in args.live.split(","))
    command = " ".join(["python", "bench/bench_capacity.py", *sys.argv[1:]])
    started = time.perf_counter()
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    wall: dict[str, float] = {}

    if "a" in args.parts:
        print(f"A: m={SHARDS} L={SLICES} B=1..{SLICES}, {args.trials} trials ...", flush=True)
        t0 = time.perf_counter()
        results["paper_setting"] = part_a(args.trials)
        wall["a_paper_setting_s"] = round(time.perf_counter() - t0, 1)
    if "b" in args.parts:
        print("B: policies x priors x thresholds ...", flush=True)
        t0 = time.perf_counter()
        results["policies"] = part_b(args.trials, args.seeds)
        wall["b_policies_s"] = round(time.perf_counter() - t0, 1)
    machine: dict[str, Any] | None = None
    if "c" in args.parts:
        url = postgres_url()
        recreate_postgres(url)
        tmp = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
        try:
            t0 = time.perf_counter()
            django_setup(
                url,
                ARTIFACT_ROOT=str(tmp / "artifacts"),
                LETHE_SIGNING_KEY_PATH=str(tmp / "keys" / "signing-ed25519.pem"),
                LETHE_BROKER_DIR=str(tmp / "broker"),
                LETHE_MODEL_ROOT=str(tmp / "models"),
                LETHE_TORCH_THREADS="1",
            )
            results["live"] = part_c(args, tmp)
            wall["c_live_s"] = round(time.perf_counter() - t0, 1)
            machine = machine_info(postgres=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            _drop(url)
    else:
        machine = machine_info(postgres=False)
    machine["loadavg_start"] = [round(x, 2) for x in load_start]
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    wall["total_s"] = round(time.perf_counter() - started, 1)
    out = {
        "machine": machine,
        "command": command,
        "settings": {
            "trials": args.trials,
            "plan_seeds": args.seeds,
            "thresholds": list(THRESHOLDS),
            "bms_t": BMS_T,
            "priors": {k: {"label": v[0], "shape": v[1]} for k, v in PRIORS.items()},
            "live_model": {
                "shards": args.live[0],
                "slices": args.live[1],
                "budget": args.live[2],
                "policy": "cyclic",
                "backbone": BACKBONE,
                "epochs": EPOCHS,
                "batch_size": BATCH,
                "learning_rate": LR,
                "lora_rank": LORA_RANK,
                "seed": SEED,
            },
            "live_subjects": args.live_subjects,
            "live_trials": args.live_trials,
            "live_monte_carlo_trials": LIVE_MC_TRIALS,
            "torch_threads": 1,
            "quick": args.quick,
            "database": "postgresql" if "c" in args.parts else None,
            "capacity": (
                "deletions until no shard has a clean prefix of depth >= threshold; the "
                "deletion that kills the last shard is counted"
            ),
        },
        "wall_s": wall,
        **results,
    }
    _print(out)
    if all(p in args.parts for p in "abc"):
        path = write_results("capacity", out)
        print(f"\nran {wall['total_s']} s; wrote {path.relative_to(REPO)}")
    else:
        print(f"\nran {wall['total_s']} s; parts {args.parts} only, nothing written")


def _pm(cell: dict[str, Any]) -> str:
    return f"{cell['mean']:.1f} ± {cell['stderr']:.1f}"


def _print(results: dict[str, Any]) -> None:
    a = results.get("paper_setting")
    if a:
        print_table(
            f"A. Capacity, m={a['shards']} L={a['slices']} cyclic (SISA sim "
            f"{_pm(a['sisa']['simulated'])}, closed {a['sisa']['closed_form']:.2f})",
            ["B", "simulated", "closed form", "rel diff", "/ SISA"],
            [
                [
                    r["budget"],
                    _pm(r["simulated"]),
                    r["closed_form"],
                    f"{100 * r['relative_difference']:+.1f} %",
                    r["over_sisa_simulated"],
                ]
                for r in a["rows"]
            ],
        )
    b = results.get("policies")
    if b:
        for prior in b["priors"].values():
            for threshold, rows in prior["thresholds"].items():
                print_table(
                    f"B. {prior['label']}, threshold {threshold}",
                    ["B", *POLICIES, "BMS/cyclic", "BMS/relab."],
                    [
                        [
                            r["budget"],
                            *[_pm(r[p]) for p in POLICIES],
                            r["bms_over_cyclic"],
                            r["bms_over_cyclic_relabelled"],
                        ]
                        for r in rows
                    ],
                )
    c = results.get("live")
    if c:
        mc = c["monte_carlo"]
        print_table(
            f"C. Live m={c['shards']} L={c['slices']} B={c['budget']}, {c['subjects']} subjects",
            ["measure", "live", "MC w/o repl.", "MC with repl.", "simulator", "closed form"],
            [
                [
                    "capacity",
                    _pm(c["live"]["capacity"]),
                    _pm(mc["without_replacement"]["capacity"]),
                    _pm(mc["with_replacement"]["capacity"]),
                    _pm(c["simulator"]["capacity"]),
                    c["closed_form_uniform"],
                ],
                [
                    "first shard down",
                    _pm(c["live"]["first_shard_death"]),
                    _pm(mc["without_replacement"]["first_shard_death"]),
                    _pm(mc["with_replacement"]["first_shard_death"]),
                    None,
                    None,
                ],
            ],
        )
        print(
            f"predict at first death: {c['live']['predict_at_first_death']}, "
            f"at the last: {c['live']['predict_at_last']}"
        )
    print(f"wall: {results['wall_s']}")


if __name__ == "__main__":
    main()
