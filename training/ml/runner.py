"""Run a whole Automated ML search on this machine: the reference driver of the ask/tell engine.

The studio drives the engine with Celery jobs on compute nodes; this module does the same with
local worker processes, for the benchmark (``bench/automl.py``), for tests, and as an executable
description of the protocol:

1. ``automl_setup`` profiles the data; ``AutoMLSearch`` proposes trials.
2. Trials run in ``n_workers`` processes (or in this process when ``n_workers == 0``), each with a
   hard time limit: a worker past ``trial_timeout_s`` (plus grace) is killed and replaced.
3. Time is reserved for the end. The final model (best trial, voting or stacking ensemble) is
   chosen from validation predictions. Its members are refit on all training rows in the
   workers (the best trials start while the ensembles are being selected, longest refits first,
   and only if they fit in the budget). With a holdout, a member whose refit does not fit keeps
   its trial model (fit on the training part); with a separate validation set the trial models
   are already fit on all training rows. Models travel between processes as skops files through
   ``modelio`` (checked by SHA-256 and the type allow-list), never as pickles.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait

import numpy as np
import pandas as pd

from . import modelio
from .ensemble import MAX_MEMBERS, assemble_final_model, member_ids, plan_final_model, selection_seconds_estimate
from .metrics import classification_charts, classification_metrics
from .search import AutoMLSearch, AutoMLSpec, automl_setup, estimate_refit_seconds
from .trial import TrialResult, TrialSpec, fit_final_pipeline, predict_proba_aligned, run_trial
from .validation import split_test, validation_rows

TIMEOUT_GRACE_S = 2.0
ASSEMBLY_RESERVE_S = 1.0
REFIT_SAFETY = 1.3  # a refit is only started if 1.3x its estimated time fits in the budget
MODEL_TRANSFER_S = 0.6  # saving and loading one member's skops file (a 200-tree forest: ~0.5 s)


@dataclass
class AutoMLRun:
    """What ``run_automl`` returns: the final model plus everything the studio would store."""

    model: object  # the final estimator: raw columns in, probabilities out
    final: dict  # ensemble.plan_final_model (with "fallback": true if members were dropped)
    setup: dict
    search: AutoMLSearch
    timings: dict = field(default_factory=dict)
    test: dict | None = None  # {"metrics", "charts"} of the final model on the test split, if any


# --- worker side ---------------------------------------------------------------------------------
def _worker_main(conn, X, y, validation, scratch: str, keep_models: bool) -> None:
    while True:
        message = conn.recv()
        if message is None:
            return
        kind, payload = message
        if kind == "trial":
            spec = TrialSpec.from_dict(payload)
            result, model, proba = run_trial(spec, X, y, validation, refit=keep_models)
            saved = None
            if model is not None and result.status == "succeeded":
                path = os.path.join(scratch, f"trial-{spec.trial_id}.skops")
                saved = (path, modelio.save_model(model, path))
            conn.send(("trial", result.to_dict(), proba, saved))
        elif kind == "refit":
            spec, result = TrialSpec.from_dict(payload[0]), TrialResult.from_dict(payload[1])
            try:
                model = fit_final_pipeline(spec, result, X, y)
                path = os.path.join(scratch, f"refit-{spec.trial_id}.skops")
                conn.send(("refit", spec.trial_id, (path, modelio.save_model(model, path)), None))
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which drops the member
                conn.send(("refit", spec.trial_id, None, f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, ctx, args):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, *args), daemon=True)
        self.process.start()
        child.close()
        self.task = None  # (kind, task id, started, time limit)

    def send(self, kind, task_id, payload, limit):
        self.conn.send((kind, payload))
        self.task = (kind, task_id, time.monotonic(), limit)

    def kill(self):
        self.process.kill()
        self.process.join()
        self.conn.close()

    def close(self):
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=0.5)
        if self.process.is_alive():  # busy or still starting: nothing it does is needed any more
            self.kill()


class _Pool:
    """n worker processes with per-task hard time limits (a late worker is killed and replaced)."""

    def __init__(self, n, args):
        # forkserver: workers start from a clean, single-threaded process (forking a process that
        # has run OpenMP code can deadlock), with the training modules already imported.
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(["training.ml.trial", "training.ml.modelio"])
        self.args = args
        self.workers = [_Worker(self.ctx, args) for _ in range(n)]

    def free(self):
        return [w for w in self.workers if w.task is None]

    def busy(self):
        return [w for w in self.workers if w.task is not None]

    def collect(self, timeout: float):
        """Finished tasks' messages; a killed or crashed task comes back as ("killed", kind, id)."""
        out = []
        busy = self.busy()
        if not busy:
            return out
        ready = wait([w.conn for w in busy], timeout=timeout)
        for w in busy:
            if w.conn in ready:
                try:
                    out.append(w.conn.recv())
                    w.task = None
                except (EOFError, OSError):
                    out.append(("killed", w.task[0], w.task[1]))
                    self._replace(w)
        now = time.monotonic()
        for w in self.busy():
            kind, task_id, started, limit = w.task
            if limit is not None and now - started > limit:
                out.append(("killed", kind, task_id))
                self._replace(w)
        return out

    def _replace(self, w):
        w.kill()
        self.workers[self.workers.index(w)] = _Worker(self.ctx, self.args)

    def cancel_all(self):
        for w in self.busy():
            self._replace(w)

    def close(self):
        for w in self.workers:
            w.close()


# --- driver --------------------------------------------------------------------------------------
def run_automl(
    spec: AutoMLSpec,
    X: pd.DataFrame,
    y,
    *,
    seed: int = 0,
    n_workers: int = 1,
    X_valid: pd.DataFrame | None = None,
    y_valid=None,
    log=None,
) -> AutoMLRun:
    """Search, ensemble and build the final model within ``spec.timeout_s`` of wall clock."""
    started = time.monotonic()
    deadline = started + spec.timeout_s
    say = log or (lambda msg: None)
    X = X.reset_index(drop=True)
    y = np.asarray(y, dtype=object)
    X_test = y_test = None
    if spec.test_fraction:
        X, X_test, y, y_test = split_test(X, y, spec.test_fraction, seed)
        X = X.reset_index(drop=True)
    has_valid = X_valid is not None
    setup = automl_setup(spec, X, y, seed=seed, has_validation_set=has_valid)
    search = AutoMLSearch(spec, setup, seed=seed)
    validation = (X_valid.reset_index(drop=True), np.asarray(y_valid, dtype=object)) if has_valid else None
    y_eval = validation[1] if has_valid else y[validation_rows(setup["validation"], len(X), y)]
    method = setup["validation"]["method"]
    refit_members = method in ("cv", "holdout")  # a separate validation set: trial models are final
    keep_trial_models = method != "cv"  # holdout trial models are the fallback when a refit is late
    predictions: dict[int, np.ndarray] = {}
    models: dict[int, object] = {}  # holdout / validation set: trial models, path+sha or in memory
    run = AutoMLRun(model=None, final={}, setup=setup, search=search)
    run.timings["setup_s"] = round(time.monotonic() - started, 3)
    scratch = tempfile.mkdtemp(prefix="automl-")

    def remember(result: TrialResult, proba, model=None):
        search.tell(result.trial_id, result)
        if proba is not None and result.status == "succeeded":
            predictions[result.trial_id] = proba.astype(np.float32)
            if model is not None:
                models[result.trial_id] = model
            keep = set(search.ensemble_library())
            for i in [i for i in predictions if i not in keep]:
                del predictions[i]  # memory stays bounded by the ensemble library size
                dropped = models.pop(i, None)
                if isinstance(dropped, tuple):
                    os.unlink(dropped[0])
        run.timings.setdefault("first_trial_s", round(time.monotonic() - started, 3))
        say(
            f"trial {result.trial_id} {search.trial(result.trial_id).algorithm} {result.status} "
            f"{result.score} ({result.duration_seconds:.2f}s){' ' + result.error if result.error else ''}"
        )

    def reserve_s() -> float:
        """Time kept for the end: ensemble selection, then refitting the likely members."""
        library = search.ensemble_library()
        refit = 0.0
        if method == "cv":
            likely = library[:MAX_MEMBERS]
            refit = _refit_seconds(search, likely) / max(n_workers, 1)
        elif method == "holdout":  # reserve for the best member; the others refit if time allows
            refit = _refit_seconds(search, library[:1])
        selection = selection_seconds_estimate(len(y_eval), len(setup["classes"]), len(library))
        return refit + selection + ASSEMBLY_RESERVE_S

    pool = None
    try:
        if n_workers > 0:
            pool = _Pool(n_workers, (X, y, validation, scratch, keep_trial_models))
        # --- search
        while True:
            elapsed = time.monotonic() - started
            if search.is_done(elapsed_s=elapsed) or elapsed + reserve_s() >= spec.timeout_s:
                search.stop_reason = search.stop_reason or "time_budget"
                break
            if pool is None:
                for trial in search.ask(1):
                    result, model, proba = run_trial(trial, X, y, validation, refit=keep_trial_models)
                    remember(result, proba, model)
                continue
            for w, trial in zip(pool.free(), search.ask(len(pool.free())), strict=False):
                w.send("trial", trial.trial_id, trial.to_dict(), spec.trial_timeout_s + TIMEOUT_GRACE_S)
            for message in pool.collect(timeout=0.05):
                if message[0] == "trial":
                    remember(TrialResult.from_dict(message[1]), message[2], message[3])
                elif message[0] == "killed":
                    error = f"killed after the trial time limit of {spec.trial_timeout_s:g}s"
                    remember(TrialResult(trial_id=message[2], status="timed_out", error=error), None)
        if pool is not None:
            pool.cancel_all()  # trials still running at the end of the budget are abandoned
        run.timings["search_s"] = round(time.monotonic() - started, 3)
        if not predictions:
            raise RuntimeError(f"no trial succeeded ({search.stop_reason}); see the leaderboard errors")

        # --- final model
        refits = _Refits(search, X, y, pool, deadline=deadline, say=say)
        if refit_members:
            refits.submit(search.best_trials(max(n_workers, 1)))  # likely members, while selecting
        final = plan_final_model(search, predictions, y_eval)
        run.timings["selection_s"] = round(time.monotonic() - started - run.timings["search_s"], 3)
        members = refits.fit(member_ids(final)) if refit_members else {}
        for i in member_ids(final):
            if i not in members and i in models:
                members[i] = _materialise(models[i])  # holdout: the trial model, fit on the training part
        missing = [i for i in member_ids(final) if i not in members]
        if missing:
            say(f"members {missing} could not be refit within the budget; dropping them")
            final = _without(final, members, search)
            if not final["members"]:  # nothing refit in time: the best trial, whatever it costs
                best = search.best_trials(1)[0]
                members = {best: fit_final_pipeline(search.trial(best), search.results[best], X, y)}
                final = {
                    **final,
                    "kind": "single",
                    "members": [{"trial_id": best, "weight": 1.0}],
                    "score": search.results[best].score,
                }
        run.final = final
        run.model = assemble_final_model(final, members, predictions, y_eval, X, y, seed=seed)
        run.timings["total_s"] = round(time.monotonic() - started, 3)
        if X_test is not None:  # the only place the test rows are ever used
            proba = predict_proba_aligned(run.model, X_test, setup["classes"])
            run.test = {
                "metrics": classification_metrics(y_test, proba, setup["classes"]),
                "charts": classification_charts(y_test, proba, setup["classes"]),
            }
        for c in final.get("candidates", []):
            say(
                f"candidate {c['kind']} score={c['score']} "
                f"members={[(m['trial_id'], m['weight']) for m in c['members']]}"
            )
        say(f"final {final['kind']} members={member_ids(final)} score={final['score']} timings={run.timings}")
        return run
    finally:
        if pool is not None:
            pool.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _refit_seconds(search, ids) -> float:
    """Pessimistic wall time to refit trials and ship them back as skops files."""
    return estimate_refit_seconds(search, ids) * REFIT_SAFETY + MODEL_TRANSFER_S * len(ids)


def _materialise(model):
    """A trial model kept in memory, or loaded from the skops file a worker wrote."""
    if isinstance(model, tuple):
        path, digest = model
        return modelio.load_model(path, digest)
    return model


def _without(final: dict, fitted: dict, search) -> dict:
    """The final plan restricted to the members that are available (weights renormalised)."""
    kept = [m for m in final["members"] if m["trial_id"] in fitted]
    if final["kind"] == "voting" and len(kept) >= 2:
        total = sum(m["weight"] for m in kept)
        members = [{"trial_id": m["trial_id"], "weight": round(m["weight"] / total, 6)} for m in kept]
        return {**final, "members": members, "fallback": True}
    if fitted:
        best = next(i for i in search.best_trials(len(search.trials)) if i in fitted)
        return {
            **final,
            "kind": "single",
            "members": [{"trial_id": best, "weight": 1.0}],
            "score": search.results[best].score,
            "fallback": True,
        }
    return {**final, "members": [], "fallback": True}


class _Refits:
    """Refits of trials on all training rows: in the pool, heaviest members first, within the budget."""

    def __init__(self, search, X, y, pool, *, deadline: float, say):
        self.search, self.X, self.y, self.pool, self.deadline, self.say = search, X, y, pool, deadline, say
        self.queue: list[int] = []
        self.sent: set[int] = set()
        self.fitted: dict[int, object] = {}
        self.failed: set[int] = set()

    def submit(self, ids) -> None:
        self.queue.extend(i for i in ids if i not in self.sent and i not in self.queue)
        self._dispatch()

    def _dispatch(self) -> None:
        if self.pool is None:
            return
        for w in self.pool.free():
            while self.queue:
                i = self.queue.pop(0)
                self.sent.add(i)
                left = self.deadline - time.monotonic()
                if _refit_seconds(self.search, [i]) > left:
                    self.failed.add(i)  # would not finish in time: the member is dropped
                    continue
                payload = (self.search.trial(i).to_dict(), self.search.results[i].to_dict())
                w.send("refit", i, payload, max(left, 1.0) + TIMEOUT_GRACE_S)
                break

    def fit(self, needed) -> dict[int, object]:
        """Fitted pipelines for those of ``needed`` that could be refit before the deadline."""
        if self.pool is None:
            return {i: fit_final_pipeline(self.search.trial(i), self.search.results[i], self.X, self.y) for i in needed}
        # longest refits first: the last one to finish decides when the model is ready
        self.submit(sorted(needed, key=lambda i: -estimate_refit_seconds(self.search, [i])))
        needed = set(needed)
        while not needed <= set(self.fitted) | self.failed:
            self._dispatch()
            for message in self.pool.collect(timeout=0.05):
                if message[0] == "refit" and message[2] is not None:
                    self.fitted[message[1]] = modelio.load_model(*message[2])
                elif message[0] == "refit":
                    self.failed.add(message[1])
                    self.say(f"refit of trial {message[1]} failed: {message[3]}")
                elif message[0] == "killed":
                    self.failed.add(message[2])
                    self.say(f"refit of trial {message[2]} ran out of time")
            if not self.pool.busy() and not self.queue:
                break
        return {i: self.fitted[i] for i in needed if i in self.fitted}
