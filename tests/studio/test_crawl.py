"""Every link on every page of a populated workspace answers: a breadth-first crawl from `/` with
Django's test client, signed in as the Owner and again as the Reader.

The workspace is populated once, the way a user ends up with it: members of each role, a data
asset with two versions made by ingest jobs, a compute cluster and an inference cluster, a
completed Train job, a completed Automated ML run with its trials and ensemble, a registered model
with two versions, an endpoint with a deployment and scored traffic, a batch scoring job, a
failed job and a canceled job. Real node processes run the jobs (the local agent starts them).

It also holds a job waiting for a machine to join, a failed upload, an invitation and API tokens.

The crawl follows every same-site `<a href>` and `hx-get` target (with the values its
`hx-include` names), and submits each GET form (every option of its selects). Each answers 2xx
or 3xx (an htmx fragment may answer 286, "stop polling"); a file answers 200; no GET changes what
the studio holds; a Reader is never shown a link that answers 403, nor a form that does (each
form a Reader sees is submitted once, in a transaction rolled back).
"""

import io
import json
import time
from collections import Counter, deque
from html.parser import HTMLParser
from urllib.parse import urldefrag, urlencode, urljoin, urlsplit

import palmerpenguins
import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from compute.jobs.diagnostic import DIAGNOSTIC
from compute.jobs.models import Job, JobStatus
from compute.jobs.services import job_cancel, job_submit
from compute.models import TargetKind
from compute.services import target_create
from data.models import Ingest, IngestStatus
from endpoints import serving
from endpoints.jobs import BATCH_SCORE
from endpoints.models import Endpoint
from endpoints.services import deployment_create, endpoint_create
from studio.services import token_create
from tests.conftest import wait_for
from training.automl_services import automl_submit
from training.models import TrainingJobKind
from training.registry_services import model_alias_set, model_register, registration_source
from workspaces.models import Membership, Role
from workspaces.services import member_invite

# Never followed: the admin console is another site, signing out ends the crawl, static files are
# served by the web server rather than Django.
SKIPPED_PREFIXES = ("/admin/", "/logout/", "/static/")
HTMX_STOP_POLLING = 286


# --- Populating the workspace -----------------------------------------------------------------------
def _finished(job_id: int, timeout: float = 150) -> Job:
    return wait_for(
        lambda: Job.objects.filter(pk=job_id, status__in=JobStatus.finished()).first(),
        timeout=timeout,
        message=f"job {job_id} to finish",
    )


def _upload(api_client, workspace, content: bytes, filename: str, name: str) -> Ingest:
    """Upload a file as a user does (the API's upload; the page posts the same request) and wait
    for its ingest job."""
    body = io.BytesIO(content)
    body.name = filename
    response = api_client.post(
        f"/api/v1/workspaces/{workspace.pk}/data-assets/", {"file": body, "name": name}, format="multipart"
    )
    assert response.status_code == 202, response.content
    return wait_for(
        lambda: Ingest.objects.filter(pk=response.json()["id"], status__in=["ready", "failed"]).first(),
        timeout=150,
        message="the ingest job",
    )


def populate(*, api, owner, reader, workspace) -> None:
    """Build the workspace through the services and real nodes."""
    penguins = palmerpenguins.load_penguins().iloc[::2]  # every other row: fewer preview pages to crawl
    # Named as the studio names its default cluster, so ingest jobs run here too (two nodes at most).
    cluster = target_create(
        actor=owner, workspace=workspace, kind=TargetKind.CLUSTER, name="cpu-cluster", max_nodes=2
    ).target
    inference = target_create(actor=owner, workspace=workspace, kind=TargetKind.INFERENCE, name="serving").target
    owner_api = api(owner)
    for frame, filename in ((penguins, "penguins.csv"), (penguins.dropna(), "penguins-clean.csv")):
        ingest = _upload(owner_api, workspace, frame.to_csv(index=False).encode(), filename, "penguins")
        assert ingest.status == IngestStatus.READY, ingest.error
    data = ingest.version
    assert data.version == 2
    ragged = _upload(owner_api, workspace, b"a,b,c\n1,2,3\n4,5\n6,7,8\n", "sensors.csv", "sensors")
    assert ragged.status == IngestStatus.FAILED

    automl = automl_submit(
        actor=owner,
        workspace=workspace,
        target=cluster,
        data_version=data,
        target_column="species",
        settings={
            "timeout_s": 40,
            "max_trials": 4,
            "max_concurrent_trials": 2,
            "trial_timeout_s": 20,
            "early_stop_trials": None,
        },
        test_fraction=0.25,
    )
    train = job_submit(
        actor=owner,
        workspace=workspace,
        kind=TrainingJobKind.TRAIN,
        target=cluster,
        spec={
            "data_version_id": data.pk,
            "target_column": "species",
            "algorithm": "logistic_regression",
            "hyperparameters": {},
            "validation": {"method": "holdout", "holdout_fraction": 0.25},
        },
        display_name="Penguins, logistic regression",
    )
    # A job that runs past its time limit fails; one canceled on its node ends canceled.
    failing = job_submit(
        actor=owner,
        workspace=workspace,
        kind=DIAGNOSTIC,
        target=cluster,
        spec={"sleep_seconds": 30},
        time_limit_seconds=1,
    )
    canceled = job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=cluster, spec={"sleep_seconds": 60})
    job_cancel(actor=owner, job=canceled)

    train = _finished(train.pk)
    assert train.status == JobStatus.COMPLETED, train.error
    first = model_register(actor=owner, job=train, name="penguin-model")
    automl = _finished(automl.pk, timeout=240)
    assert automl.status == JobStatus.COMPLETED, (automl.status_reason, automl.error)
    assert automl.children.filter(kind=TrainingJobKind.AUTOML_FINAL, status=JobStatus.COMPLETED).exists()
    second = model_register(actor=owner, job=registration_source(automl), name="penguin-model")
    model_alias_set(actor=owner, version=second, alias="production")
    assert (first.version, second.version) == (1, 2)
    assert _finished(failing.pk).status == JobStatus.FAILED
    assert _finished(canceled.pk).status == JobStatus.CANCELED

    created = endpoint_create(actor=owner, workspace=workspace, name="penguins-api")
    deployment_create(actor=owner, endpoint=created.endpoint, name="blue", model_version=second, target=inference)
    rows = penguins.dropna().drop(columns="species").head(20).to_dict(orient="records")
    for start in range(0, 20, 5):
        scored = api().post(
            "/score/penguins-api/",
            json.dumps(rows[start : start + 5]),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {created.primary}",
        )
        assert scored.status_code == 200, scored.content
    serving.monitor.flush()

    batch = job_submit(
        actor=owner,
        workspace=workspace,
        kind=BATCH_SCORE,
        target=cluster,
        spec={"model_version_id": first.pk, "data_version_id": data.pk},
    )
    batch = _finished(batch.pk)
    assert batch.status == JobStatus.COMPLETED, batch.error

    # A job that waits: attached compute that no machine has joined yet.
    lab = target_create(actor=owner, workspace=workspace, kind=TargetKind.ATTACHED, name="lab-machine").target
    job_submit(actor=owner, workspace=workspace, kind=DIAGNOSTIC, target=lab, spec={})
    member_invite(actor=owner, workspace=workspace, username="dave", role=Role.CONTRIBUTOR)
    for person in (owner, reader):
        token_create(user=person, name="notebook")


# --- Crawling --------------------------------------------------------------------------------------------
class _Form:
    """A `<form>` as a browser submits it: each control's current value, and its submit buttons."""

    def __init__(self, method: str, action: str):
        self.method, self.action = method, action
        self.fields: list[tuple[str, str]] = []  # text, hidden, checked boxes and radios
        self.selects: list[tuple[str, list[str], str]] = []  # (name, option values, chosen)
        self.boxes: dict[str, list[str]] = {}  # checkbox name -> every value offered
        self.buttons: list[str] = []  # where each enabled submit button sends it (its formaction or the form's)

    def values(self) -> list[tuple[str, str]]:
        return self.fields + [(name, value) for name, _, value in self.selects]

    def identity(self, page_url: str) -> tuple:
        """Where it goes and what it asks: the same form on another page is the same form."""
        names = {n for n, _ in self.fields} | {n for n, _, _ in self.selects} | set(self.boxes)
        return urlsplit(urljoin(page_url, self.action)).path, tuple(sorted(names))

    def submissions(self, page_url: str) -> list[str]:
        """A GET form as it stands, with each other option of each select, and with every box ticked."""
        base = urlsplit(urljoin(page_url, self.action)).path  # a GET form replaces the query

        def url(fields):
            return f"{base}?{urlencode(fields)}"

        chosen = [(name, value) for name, _, value in self.selects]
        found = [url(self.fields + chosen)]
        for i, (name, options, value) in enumerate(self.selects):
            for option in options:
                if option != value:
                    found.append(url(self.fields + chosen[:i] + [(name, option)] + chosen[i + 1 :]))
        if self.boxes:
            ticked = [(name, value) for name, values in self.boxes.items() for value in values]
            found.append(url([f for f in self.fields if f[0] not in self.boxes] + ticked + chosen))
        return found


class _Links(HTMLParser):
    """What a person (or htmx) can request from a page: `<a href>`, forms, and `hx-get` with the
    values of the form controls its `hx-include` names (as htmx sends them)."""

    def __init__(self, page_controls: dict[str, tuple[str, str]]):
        super().__init__()
        self.anchors: list[tuple[str, bool]] = []  # (url, a download)
        self.htmx: list[tuple[str, list[str]]] = []  # (url, ids of the controls it includes)
        self.forms: list[_Form] = []
        # id -> (name, current value); a fragment is swapped into its page, so it sees the page's too
        self.controls: dict[str, tuple[str, str]] = dict(page_controls)
        self._form: _Form | None = None
        self._select: tuple[str, str, list[str]] | None = None  # id, name and options of an open <select>
        self._selected: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        control_id, name = attributes.get("id", ""), attributes.get("name", "")
        if tag == "a" and "href" in attributes:
            self.anchors.append((attributes["href"], "download" in attributes))
        if "hx-get" in attributes:
            included = [part.strip() for part in attributes.get("hx-include", "").split(",") if part.strip()]
            assert all(part.startswith("#") for part in included), f"hx-include not by id: {included}"
            own = [control_id] if tag in ("input", "select") and control_id else []
            self.htmx.append((attributes["hx-get"], own + [part[1:] for part in included]))
        if tag == "form":
            self._form = _Form(attributes.get("method", "get").lower(), attributes.get("action", ""))
            self.forms.append(self._form)
        submits = (tag == "button" and attributes.get("type", "submit") == "submit") or (
            tag == "input" and attributes.get("type") == "submit"
        )
        if submits and self._form is not None and "disabled" not in attributes:
            self._form.buttons.append(attributes.get("formaction", self._form.action))
        if tag == "input" and name:
            kind, value = attributes.get("type", "text").lower(), attributes.get("value", "")
            if control_id:
                self.controls[control_id] = (name, value)
            if self._form is not None and kind not in ("submit", "button", "reset", "file", "image"):
                if kind == "checkbox":
                    self._form.boxes.setdefault(name, []).append(value or "on")
                if kind not in ("checkbox", "radio") or "checked" in attributes:
                    self._form.fields.append((name, value or "on" if kind in ("checkbox", "radio") else value))
        if tag == "select" and name:
            self._select, self._selected = (control_id, name, []), None
        if tag == "option" and self._select:
            value = attributes.get("value", "")
            self._select[2].append(value)
            if self._selected is None or "selected" in attributes:  # the first, unless one is selected
                self._selected = value

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            control_id, name, options = self._select
            chosen = self._selected if self._selected is not None else ""
            if control_id:
                self.controls[control_id] = (name, chosen)
            if self._form is not None:
                self._form.selects.append((name, options, chosen))
            self._select = None
        if tag == "form":
            self._form = None

    def targets(self) -> list[tuple[str, bool, bool]]:
        """(url, fetched by htmx, a download) for every link and htmx target found."""
        found = [(href, False, download) for href, download in self.anchors]
        for url, ids in self.htmx:
            values = {self.controls[i][0]: self.controls[i][1] for i in ids if i in self.controls}
            if values:
                url += ("&" if "?" in url else "?") + urlencode(values)
            found.append((url, True, False))
        return found


def _same_site(url: str) -> str | None:
    """The path and query of a link the crawl follows, or None for one it leaves alone."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "http", "https") or parts.netloc not in ("", "testserver"):
        return None
    if not parts.path.startswith("/") or parts.path.startswith(SKIPPED_PREFIXES):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


# Rows that change with no request at all: nodes and their metering (the agent scales them),
# upload slots (swept) and monitoring buckets (flushed by the serving processes).
BACKGROUND_MODELS = {"Node", "NodeSession", "UploadSlot", "MonitoringBucket"}


def _held_models() -> list:
    studio_apps = {"workspaces", "compute", "training", "endpoints", "studio"}
    models = [m for m in apps.get_models() if m._meta.app_label in studio_apps and m.__name__ not in BACKGROUND_MODELS]
    return [*models, get_user_model()]


def _holdings() -> Counter:
    """What the studio holds (rows of every model, job statuses, roles, traffic), in four queries:
    a GET that changes any of it performs an action."""
    models = _held_models()
    tables = (connection.ops.quote_name(m._meta.db_table) for m in models)
    counts_sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {table})" for table in tables)  # noqa: S608 - model tables only
    with connection.cursor() as cursor:
        cursor.execute(counts_sql)
        counts = Counter(dict(zip((m.__name__ for m in models), cursor.fetchone(), strict=True)))
    counts.update(f"job {status}" for status in Job.objects.values_list("status", flat=True))
    counts.update(f"role {role}" for role in Membership.objects.values_list("role", flat=True))
    counts.update(
        f"traffic {json.dumps(t, sort_keys=True)}" for t in Endpoint.objects.values_list("traffic", flat=True)
    )
    return counts


class CrawlReport:
    def __init__(self):
        self.pages = 0
        self.statuses: Counter = Counter()
        self.broken: list[str] = []  # links that do not answer as they should
        self.actions: list[str] = []  # GETs that changed what the studio holds
        self.post_forms: dict[str, tuple[list[tuple[str, str]], str]] = {}  # action -> (values, a page showing it)


def crawl(client, start: str = "/", limit: int = 2000) -> CrawlReport:
    """Breadth-first over every same-site link, each URL fetched once (once as a page, once as an
    htmx fragment if some page asks htmx for it); GET forms are submitted, POST forms only noted."""
    report = CrawlReport()
    queue = deque([(start, False, False, "(start)", {})])
    seen, seen_forms = {(start, False)}, set()
    before = _holdings()
    while queue:
        url, htmx, download, referrer, page_controls = queue.popleft()
        assert report.pages < limit, f"more than {limit} URLs: is a link generating new ones?"
        response = client.get(url, HTTP_HX_REQUEST="true") if htmx else client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        after = _holdings()
        if after != before:
            changed = {key: (before[key], after[key]) for key in before | after if before[key] != after[key]}
            report.actions.append(f"GET {url} (linked from {referrer}) changed {changed}")
        before = after
        report.pages += 1
        status = response.status_code
        report.statuses[status] += 1
        is_page = response.get("Content-Type", "").startswith("text/html")
        redirect = 300 <= status < 400
        if download:
            allowed = status == 200  # a file answers 200
        elif redirect:  # where it leads is crawled; sending a signed-in person to sign in is a dead end
            allowed = urlsplit(response["Location"]).path != "/login/"
        elif not is_page:
            allowed = status == 200
        else:
            allowed = htmx if status == HTMX_STOP_POLLING else 200 <= status < 300  # 286 means "stop polling"
        if not allowed:
            kind = "htmx fragment" if htmx else ("file" if download or not is_page else "page")
            report.broken.append(f"{status} {kind} {url} (linked from {referrer})")
            continue
        follow: list[tuple[str, bool, bool]] = []
        parser = _Links({})
        if redirect:
            follow.append((response["Location"], False, download))
        elif is_page:
            parser = _Links(page_controls if htmx else {})
            parser.feed(body.decode())
            follow.extend(parser.targets())
            for form in parser.forms:
                if form.method == "post":
                    for action in form.buttons:
                        target = _same_site(urljoin(url, action))
                        if target is not None:
                            report.post_forms.setdefault(target, (form.values(), url))
                elif form.identity(url) not in seen_forms:  # each once: its options vary one field at a time
                    seen_forms.add(form.identity(url))
                    follow.extend((submission, False, False) for submission in form.submissions(url))
        for href, by_htmx, is_download in follow:
            target = _same_site(urldefrag(urljoin(url, href)).url)
            if target is None or (target, by_htmx) in seen:
                continue
            seen.add((target, by_htmx))
            queue.append((target, by_htmx, is_download, url, parser.controls if by_htmx else {}))
    return report


def forms_refused(client, report: CrawlReport) -> list[str]:
    """Submit each POST form the crawl saw, as shown, and undo whatever it did: the forms a page
    shows its viewer and then refuses them (403). Only for a Reader, whose pages should offer
    nothing that changes files (a rollback cannot undo those)."""
    refused = []
    for action, (values, page) in sorted(report.post_forms.items()):
        with transaction.atomic():
            response = client.post(action, urlencode(values), content_type="application/x-www-form-urlencoded")
            transaction.set_rollback(True)
        if response.status_code == 403:
            refused.append(f"403 on submitting the form to {action} shown on {page}")
    return refused


# --- The test ----------------------------------------------------------------------------------------
@pytest.mark.worker
@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_every_link_of_a_populated_workspace_answers_for_the_owner_and_the_reader(
    api, client, owner, contributor, reader, workspace, agent, broker
):
    serving.configs.clear()
    started = time.monotonic()
    populate(api=api, owner=owner, reader=reader, workspace=workspace)
    print(f"\npopulated the workspace in {time.monotonic() - started:.1f} s")

    problems = []
    for person in (owner, reader):
        client.force_login(person)
        started = time.monotonic()
        report = crawl(client)
        print(
            f"crawl as {person.username}: {report.pages} URLs in {time.monotonic() - started:.1f} s, "
            f"{len(report.post_forms)} forms that post; statuses {dict(report.statuses)}"
        )
        assert report.pages >= 150, f"the crawl as {person.username} found only {report.pages} URLs"
        problems += [f"{person.username}: {line}" for line in report.broken + report.actions]
        if person == reader:
            problems += [f"{person.username}: {line}" for line in forms_refused(client, report)]
        client.logout()
    serving.configs.clear()
    assert not problems, "\n".join(problems)


@pytest.mark.django_db
def test_the_crawler_reports_each_kind_of_fault(client, reader, workspace, settings):
    """The crawler itself, on pages made faulty on purpose (tests/studio/crawl_probe_urls.py)."""
    settings.ROOT_URLCONF = "tests.studio.crawl_probe_urls"
    client.force_login(reader)
    report = crawl(client, start="/probe/")
    assert sorted(report.broken) == [
        "286 page /probe/done/ (linked from /probe/)",
        "302 file /probe/moved/ (linked from /probe/)",
        "302 page /probe/sign-in-again/ (linked from /probe/)",
        "403 page /probe/forbidden/ (linked from /probe/)",
        "404 page /probe/filter/?s=b (linked from /probe/)",
        "404 page /probe/missing/ (linked from /probe/)",
    ]
    assert len(report.actions) == 1 and report.actions[0].startswith("GET /probe/acts/ (linked from /probe/) changed")
    assert report.statuses[HTMX_STOP_POLLING] == 2  # as an htmx fragment it is fine, as a page not
    assert forms_refused(client, report) == ["403 on submitting the form to /probe/forbidden/ shown on /probe/"]


@pytest.mark.django_db
def test_every_link_of_an_empty_workspace_answers(client, owner, contributor, reader, workspace):
    """What a new workspace shows before anything is in it (no data: the AutoML and Train forms'
    column loaders once answered 404)."""
    problems = []
    for person in (owner, contributor, reader):
        client.force_login(person)
        report = crawl(client)
        print(f"\ncrawl of an empty workspace as {person.username}: {report.pages} URLs")
        assert report.pages >= 20
        problems += [f"{person.username}: {line}" for line in report.broken + report.actions]
        if person == reader:
            problems += [f"{person.username}: {line}" for line in forms_refused(client, report)]
    assert not problems, "\n".join(problems)
