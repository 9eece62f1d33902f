from django import forms

from .models import Role


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3}))


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="The person needs an account on this studio.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.READER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
