from django import forms

from .models import Role


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3}))


class MemberAddForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        help_text="An existing account is added at once. A new username makes an account, with a one-time "
        "link for the person to set a password.",
    )
    email = forms.EmailField(required=False, label="Email", help_text="Kept on a new account.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.READER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
