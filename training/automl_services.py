"""Automated ML on the cluster: a run is a detached parent job; its trials are child jobs that run
in parallel on the cluster's nodes; a final child job builds the ensemble and the model.

The search state (every proposed trial and every result) lives in the parent's `result` JSON.
`automl_advance` is called whenever a trial finishes: under a lock on the parent it tells the
search the new results, asks for more trials (never more than max concurrent outstanding) and,
when the search is done, submits the final job. The search is deterministic for a given seed
and max trials (training.ml.search), whatever order trials finish in.
"""

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from compute.jobs.models import Job, JobStatus
from compute.jobs.services import child_job_submit, child_jobs_stop, job_detached_finish, job_submit
from training.models import TrainingJobKind
from workspaces.policy import Action, require

from .ml.ensemble import MAX_MEMBERS
from .ml.search import AutoMLSearch, AutoMLSpec
from .ml.tasks import CLASSIFICATION
from .ml.trial import TrialResult
from .registry_services import model_register

log = logging.getLogger("studio.automl")

# Kept aside at the end of the budget for choosing and assembling the final model, plus
# FINAL_PACKAGING_FACTOR × the time its members took to save (load, save, ONNX conversion).
FINAL_RESERVE_SECONDS = 8.0
FINAL_PACKAGING_FACTOR = 2.5
TRIAL_GRACE_SECONDS = 3
MIN_TRIAL_SECONDS = 5.0  # no new trial starts with less time than this before the final model
# Until a trial has succeeded, trials get at least this long (within the run's trial_timeout_s)
# and the budget's end does not stop them: a short budget on a busy cluster still ends with a
# model, a little late, rather than with none (as FLAML always finishes its first trial).
FIRST_MODEL_SECONDS = 60.0
BUDGET_SPENT = "stopped: the run's time budget is spent"
# The final model is to be ready within the budget plus this (the goal is submit -> ready within
# budget + 5 s; the rest is for queueing the final job and registering the model).
READY_MARGIN_SECONDS = 3.0
FINAL_FIXED_SECONDS = 2.0  # the final job's work that does not grow with the members (plan, signature, profile)


def automl_spec(job: Job) -> AutoMLSpec:
    return AutoMLSpec.from_dict(job.spec["automl"])


def _search(parent: Job) -> AutoMLSearch:
    state = parent.result
    return AutoMLSearch.restore(automl_spec(parent), state["setup"], state["search"], seed=parent.spec["seed"])


def _elapsed(parent: Job) -> float:
    start = parent.running_at or parent.started_at or parent.created_at
    return (timezone.now() - start).total_seconds()


def _final_reserve(spec: AutoMLSpec, search: AutoMLSearch, trials: list[Job]) -> float:
    """Seconds kept at the end of the budget for the final job: choosing the ensemble, then
    loading, saving (skops) and converting its likely members, estimated from what saving each
    of them took in its trial. Never more than 40 % of the budget."""
    save_seconds = {c.spec["trial"]["trial_id"]: (c.result or {}).get("save_seconds", 0.0) for c in trials}
    likely = search.ensemble_library(max_latency_ms=spec.infer_limit_ms)[:MAX_MEMBERS]
    packaging = FINAL_PACKAGING_FACTOR * sum(save_seconds.get(trial_id, 0.0) for trial_id in likely)
    return min(0.4 * spec.timeout_s, FINAL_RESERVE_SECONDS + packaging)


def final_seconds_left(parent: Job) -> float:
    """Seconds until the run's final model should be ready (budget + a small margin)."""
    return automl_spec(parent).timeout_s + READY_MARGIN_SECONDS - _elapsed(parent)


def final_seconds_estimate(trial_ids, save_seconds: dict) -> float:
    """The final job's time for a model of these trials: loading, saving and converting its
    members, from what saving each of them took in its trial."""
    return FINAL_FIXED_SECONDS + FINAL_PACKAGING_FACTOR * sum(save_seconds.get(i, 0.0) for i in trial_ids)


def trials_within_time(ranked: list[int], *, save_seconds: dict, seconds_left: float) -> tuple[list[int], str]:
    """The trials, best first, whose packaging together still fits the seconds left (when none
    does, the one quickest to package), and a note naming what was left out for time."""
    kept: list[int] = []
    for trial_id in ranked:
        if final_seconds_estimate(kept + [trial_id], save_seconds) <= seconds_left:
            kept.append(trial_id)
    if not kept and ranked:  # nothing fits: the trial quickest to package
        kept = [min(ranked, key=lambda i: save_seconds.get(i, 0.0))]
    left_out = [i for i in ranked if i not in kept]
    if not left_out:
        return kept, ""
    return kept, (
        f"{seconds_left:.0f} s of the budget left: trials {left_out} are left out of the ensembles "
        "(packaging them would end after the budget)"
    )


def _submit_trials(parent: Job, trials, spec: AutoMLSpec, reserve: float, *, have_model: bool) -> None:
    # A trial must end before the time kept for the final model (plus a little start-up grace).
    remaining = max(MIN_TRIAL_SECONDS, spec.timeout_s - reserve - _elapsed(parent))
    if not have_model:
        remaining = max(remaining, FIRST_MODEL_SECONDS)
    for trial in trials:
        limit = int(min(spec.trial_timeout_s, remaining) + TRIAL_GRACE_SECONDS)
        child_job_submit(
            parent=parent,
            kind=TrainingJobKind.AUTOML_TRIAL,
            spec={"trial": trial.to_dict()},
            display_name=f"Trial {trial.trial_id}: {trial.algorithm}",
            time_limit_seconds=limit,
        )


def _trial_result(child: Job) -> TrialResult:
    trial_id = child.spec["trial"]["trial_id"]
    if child.status == JobStatus.COMPLETED and "trial_result" in child.result:
        return TrialResult.from_dict(child.result["trial_result"])
    reason = child.error or child.status_reason or child.get_status_display()
    status = "timed_out" if "time limit" in reason or child.status == JobStatus.CANCELED else "failed"
    return TrialResult(trial_id=trial_id, status=status, error=reason[:2000])


def _tell_finished(search: AutoMLSearch, trials: list[Job]) -> None:
    for child in trials:
        trial_id = child.spec["trial"]["trial_id"]
        if child.status in JobStatus.finished() and trial_id not in search.results:
            search.tell(trial_id, _trial_result(child))


def automl_start(*, parent_id: int) -> None:
    """After the parent's set-up detached it from its node: queue the first trials."""
    automl_advance(parent_id=parent_id)


def automl_advance(*, parent_id: int) -> None:
    """Tell the search every finished trial, ask for more, or finish with the final job."""
    with transaction.atomic():
        parent = (
            Job.objects.select_for_update(of=("self",))
            .select_related("target", "workspace")
            .filter(pk=parent_id)
            .first()
        )
        if parent is None or parent.status != JobStatus.RUNNING or not parent.detached:
            return
        spec = automl_spec(parent)
        search = _search(parent)
        children = list(parent.children.all())
        trials = [c for c in children if c.kind == TrainingJobKind.AUTOML_TRIAL]
        submitted = {c.spec["trial"]["trial_id"] for c in trials}
        _tell_finished(search, trials)
        have_model = any(result.status == "succeeded" for result in search.results.values())
        # Trials the search proposed but that have no job yet (the first batch, after set-up).
        unsent = [t for t in search.trials if t.trial_id not in submitted]
        running = [c for c in trials if c.status in JobStatus.active()]
        elapsed = _elapsed(parent)
        reserve = _final_reserve(spec, search, trials)
        trial_time_left = spec.timeout_s - reserve - elapsed
        out_of_time = trial_time_left <= 0
        # Too little time for another trial: wait for the running ones (their limits end by then).
        done = search.is_done(elapsed_s=elapsed) or trial_time_left < MIN_TRIAL_SECONDS
        if done:
            search.stop_reason = search.stop_reason or "time_budget"
        if out_of_time and have_model:
            if running and child_jobs_stop(parent=parent, kind=TrainingJobKind.AUTOML_TRIAL, reason=BUDGET_SPENT):
                # Queued trials are now canceled; running ones end within a second and call back.
                trials = list(parent.children.filter(kind=TrainingJobKind.AUTOML_TRIAL))
                _tell_finished(search, trials)
                running = [c for c in trials if c.status in JobStatus.active()]
        if unsent and (not done or not trials):  # the first batch runs however short the budget
            _submit_trials(parent, unsent, spec, reserve, have_model=have_model)
            running += unsent
        elif not done:
            free = spec.max_concurrent_trials - len(running)
            new = search.ask(free) if free > 0 else []
            _submit_trials(parent, new, spec, reserve, have_model=have_model)
            running += new
        final = next((c for c in children if c.kind == TrainingJobKind.AUTOML_FINAL), None)
        leaderboard = search.leaderboard()
        succeeded = [row for row in leaderboard if row["status"] == "succeeded"]
        best = succeeded[0] if succeeded else None
        reason = f"searching: {len(search.results)} trials finished, {len(running)} running" + (
            f"; best {spec.primary_metric} {best['score']:.4f} ({best['algorithm']})" if best else ""
        )
        if (done or not running) and not running and final is None:
            if succeeded:
                child_job_submit(
                    parent=parent,
                    kind=TrainingJobKind.AUTOML_FINAL,
                    spec={"task": spec.task},  # job lists show it without reading the run
                    display_name="Ensemble and final model",
                    time_limit_seconds=int(max(600, spec.timeout_s)),
                )
                reason = f"building the final model from {len(succeeded)} trials ({search.stop_reason or 'done'})"
            else:
                Job.objects.filter(pk=parent.pk).update(
                    result={**parent.result, "search": search.state(), "leaderboard": leaderboard}
                )
                job_detached_finish(
                    job_id=parent.pk,
                    status=JobStatus.FAILED,
                    reason="no trial succeeded",
                    error="No trial succeeded; see the trials' errors.",
                )
                return
        Job.objects.filter(pk=parent.pk).update(
            result={
                **parent.result,
                "search": search.state(),
                "leaderboard": leaderboard,
                "stop_reason": search.stop_reason,
            },
            status_reason=reason[:500],
        )


def automl_finish(*, final_job_id: int, status: str) -> None:
    """The final job ended: the run completes with its model (or fails with its reason)."""
    final = Job.objects.select_related("parent").filter(pk=final_job_id).first()
    if final is None or final.parent is None:
        return
    parent = final.parent
    if status == JobStatus.COMPLETED:
        summary = {
            k: final.result.get(k)
            for k in (
                "final_kind",
                "members",
                "validation_score",
                "test_metrics",
                "metrics",
                "algorithm",
                "latency_ms",
                "infer_limit_ms",
                "infer_limit_met",
                "candidates",
            )
        }
        register_as = parent.spec.get("register_as")
        if register_as:  # registered before the run says "completed", so a completed run has its model
            try:
                version = model_register(
                    actor=parent.submitted_by,
                    job=final,
                    name=register_as,
                    description=f"Best model of Automated ML run #{parent.pk}",
                )
                summary["registered"] = str(version)
            except (ValidationError, PermissionDenied, Http404) as exc:
                log.warning("automatic registration of run %s failed: %s", parent.pk, exc)
                summary["registration_error"] = " ".join(getattr(exc, "messages", [str(exc)]))
        job_detached_finish(
            job_id=parent.pk,
            status=JobStatus.COMPLETED,
            reason=f"completed: best model is {final.result.get('algorithm', 'ready')}",
            result={**parent.result, **summary, "final_job": final.pk},
        )
    else:
        job_detached_finish(
            job_id=parent.pk,
            status=JobStatus.FAILED,
            reason=f"the final model could not be built: {final.status_reason}",
            error=final.error or final.status_reason,
        )


def automl_submit(
    *,
    actor,
    workspace,
    target,
    data_version,
    target_column: str,
    settings: dict,
    task: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    validation_data_version=None,
    experiment_name: str | None = None,
    display_name: str = "",
    register_as: str = "",
) -> Job:
    """Start an Automated ML run (validated here; the data is read on a node)."""
    require(actor, workspace, Action.WRITE)
    return job_submit(
        actor=actor,
        workspace=workspace,
        kind=TrainingJobKind.AUTOML,
        target=target,
        spec={
            "data_version_id": data_version.pk if data_version else None,
            "target_column": target_column,
            "task": task or settings.get("task", CLASSIFICATION),  # the API sends it apart, scripts in settings
            "automl": settings,
            "test_fraction": test_fraction,
            "seed": seed,
            "register_as": register_as,
            "validation_data_version_id": validation_data_version.pk if validation_data_version else None,
        },
        experiment_name=experiment_name or "Automated ML",
        display_name=display_name,
        time_limit_seconds=_budget_seconds(settings) + 600,
    )


def _budget_seconds(settings: dict) -> int:
    """The run's budget, for its job's time limit (a wrong value is refused by the kind's checks)."""
    budget = settings.get("timeout_s", 3600)
    return int(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else 3600


def trials_of(parent: Job):
    return parent.children.filter(kind=TrainingJobKind.AUTOML_TRIAL).order_by("id")


def first_trial_seconds(parent: Job) -> float | None:
    first = trials_of(parent).filter(status=JobStatus.COMPLETED).order_by("finished_at").first()
    if first is None:
        return None
    return (first.finished_at - parent.created_at).total_seconds()
