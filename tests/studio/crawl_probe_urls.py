"""A URLconf of deliberately faulty pages, so the crawl test can show that its crawler catches
each kind of fault it claims to (a broken link, a forbidden one, a GET that acts, a download that
redirects, a redirect to the sign-in page, a 286 outside htmx, a bad GET-form option, a form that
refuses its viewer)."""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import path

from portal.urls import urlpatterns as studio_urlpatterns
from workspaces.models import Workspace
from workspaces.services import activity_record

PROBE_PAGE = """<!doctype html><title>Probe</title>
<a href="/probe/ok/">fine</a> <a href="#top">anchor</a> <a href="mailto:a@example.com">mail</a>
<a href="https://example.com/">elsewhere</a> <a href="/admin/">console</a> <a href="/logout/">sign out</a>
<a href="/probe/missing/">missing</a> <a href="/probe/forbidden/">forbidden</a> <a href="/probe/acts/">acts</a>
<a href="/probe/moved/" download>a download that redirects</a> <a href="/probe/file.csv" download>a file</a>
<a href="/probe/sign-in-again/">to the sign-in page</a>
<a href="/probe/done/">286 as a page</a> <span hx-get="/probe/done/" hx-trigger="load"></span>
<select id="probe-choice" name="choice"><option value="x">x</option><option value="y" selected>y</option></select>
<span hx-get="/probe/included/" hx-include="#probe-choice"></span>
<form method="get" action="/probe/filter/"><select name="s"><option value="a">a</option>
<option value="b">b</option></select><button>Filter</button></form>
<form method="post" action="/probe/forbidden/"><input type="hidden" name="id" value="1"><button>Do</button></form>
<form method="post" action="/probe/ok/"><button disabled>Not offered</button></form>
"""


def page(request):
    return HttpResponse(PROBE_PAGE)


def ok(request):
    return HttpResponse("<p>fine</p>")


def forbidden(request):
    raise PermissionDenied("not for you")


def acts(request):
    activity_record(workspace=Workspace.objects.first(), actor=request.user, verb="probe", summary="a GET that acts")
    return HttpResponse("<p>done something</p>")


def moved(request):
    return redirect("/probe/ok/")


def sign_in_again(request):
    return redirect("/login/?next=/probe/")


def csv_file(request):
    return HttpResponse("a,b\n1,2\n", content_type="text/csv")


def done(request):
    return HttpResponse("", status=286)


def included(request):
    if request.GET.get("choice") != "y":  # htmx sends the included control's current value
        raise Http404("no choice")
    return HttpResponse("<p>y</p>")


def filtered(request):
    if request.GET.get("s") == "b":
        raise Http404("no b")
    return HttpResponse("<p>a</p>")


urlpatterns = [
    path("probe/", page),
    path("probe/ok/", ok),
    path("probe/forbidden/", forbidden),
    path("probe/acts/", acts),
    path("probe/moved/", moved),
    path("probe/sign-in-again/", sign_in_again),
    path("probe/file.csv", csv_file),
    path("probe/done/", done),
    path("probe/included/", included),
    path("probe/filter/", filtered),
    *studio_urlpatterns,  # the error pages link to them
]
