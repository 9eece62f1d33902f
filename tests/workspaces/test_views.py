import pytest

from workspaces.models import Membership, Role, Workspace

pytestmark = pytest.mark.django_db


def signed_in(client, user):
    client.force_login(user)
    return client


def test_home_lists_my_workspaces_with_counts_and_activity(client, reader, workspace, other_workspace):
    html = signed_in(client, reader).get("/").content.decode()
    assert "Team" in html and "Elsewhere" not in html
    assert "Reader" in html
    assert "alice created the workspace Team" in html


def test_home_empty_state_says_what_to_do(client, outsider):
    html = signed_in(client, outsider).get("/").content.decode()
    assert "Elsewhere" not in html
    assert "not in any workspace yet" in html and "Create a workspace" in html


def test_create_from_the_form(client, contributor):
    response = signed_in(client, contributor).post("/w/new/", {"name": "Vision", "description": ""})
    ws = Workspace.objects.get(name="Vision")
    assert response.status_code == 302 and response["Location"] == f"/w/{ws.pk}/"
    assert Membership.objects.get(workspace=ws).role == Role.OWNER


def test_create_form_shows_field_errors(client, contributor):
    response = signed_in(client, contributor).post("/w/new/", {"name": ""})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()


def test_outsider_gets_404_on_every_page(client, outsider, workspace):
    signed_in(client, outsider)
    for path in ("", "settings/", "delete/", "members/"):
        assert client.get(f"/w/{workspace.pk}/{path}").status_code == 404


def test_reader_sees_no_controls_that_change_the_workspace(client, reader, workspace):
    signed_in(client, reader)
    settings_html = client.get(f"/w/{workspace.pk}/settings/").content.decode()
    assert "<form" not in settings_html.split("<main", 1)[1].replace('action="/logout/"', "")
    members_html = client.get(f"/w/{workspace.pk}/members/").content.decode()
    assert "invite a member" not in members_html and "Remove" not in members_html
    assert client.get(f"/w/{workspace.pk}/delete/").status_code == 403


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("settings/", {"name": "Hacked"}),
        ("delete/", {"confirm_name": "Team"}),
        ("members/", {"username": "carol", "role": "owner"}),
    ],
)
def test_reader_forged_posts_get_403(client, reader, workspace, path, data):
    response = signed_in(client, reader).post(f"/w/{workspace.pk}/{path}", data)
    assert response.status_code == 403
    workspace.refresh_from_db()
    assert workspace.name == "Team"
    assert Membership.objects.get(workspace=workspace, user=reader).role == Role.READER


def test_delete_needs_the_name_typed(client, owner, workspace):
    signed_in(client, owner)
    client.post(f"/w/{workspace.pk}/delete/", {"confirm_name": "wrong"})
    assert Workspace.objects.filter(pk=workspace.pk).exists()
    response = client.post(f"/w/{workspace.pk}/delete/", {"confirm_name": "Team"})
    assert response.status_code == 302
    assert not Workspace.objects.filter(pk=workspace.pk).exists()


def test_owner_manages_members_from_the_page(client, owner, outsider, workspace):
    signed_in(client, owner)
    client.post(f"/w/{workspace.pk}/members/", {"username": "mallory", "role": "contributor"})
    m = Membership.objects.get(workspace=workspace, user=outsider)
    assert m.role == Role.CONTRIBUTOR
    client.post(f"/w/{workspace.pk}/members/{m.pk}/role/", {"role": "reader"})
    m.refresh_from_db()
    assert m.role == Role.READER
    client.post(f"/w/{workspace.pk}/members/{m.pk}/remove/")
    assert not Membership.objects.filter(pk=m.pk).exists()


def test_adding_a_disabled_account_shows_the_error_on_the_form(client, owner, workspace, make_user):
    make_user("ghost", is_active=False)
    html = (
        signed_in(client, owner)
        .post(f"/w/{workspace.pk}/members/", {"username": "ghost", "role": "reader"})
        .content.decode()
    )
    assert "No active user is called" in html


def test_last_owner_leaving_is_refused_with_a_message(client, owner, workspace):
    signed_in(client, owner)
    mine = Membership.objects.get(workspace=workspace, user=owner)
    response = client.post(f"/w/{workspace.pk}/members/{mine.pk}/remove/", follow=True)
    assert "last Owner" in response.content.decode()
    assert Membership.objects.filter(pk=mine.pk).exists()


def test_pages_carry_a_csp_without_inline_scripts(client, owner, workspace):
    response = signed_in(client, owner).get(f"/w/{workspace.pk}/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    html = response.content.decode()
    assert "<script>" not in html and '<script type="text/javascript">' not in html


def test_user_text_is_escaped(client, owner):
    signed_in(client, owner)
    client.post("/w/new/", {"name": "<script>alert(1)</script>", "description": "<img src=x onerror=alert(1)>"})
    ws = Workspace.objects.get()
    html = client.get(f"/w/{ws.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html
