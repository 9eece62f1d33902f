"""A command line's placeholders, in Azure ML's convention: `${{inputs.train}}`, `${{outputs.model}}`.

Pure: no Django. Values are shell-quoted when substituted, so a string input cannot add a command.
"""

import re
import shlex

# Anything that looks like a placeholder, well formed or not, so a typo is named, never run as is.
_CANDIDATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_PLACEHOLDER = re.compile(r"^\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]{0,63})\s*$")


class PlaceholderError(ValueError):
    pass


def placeholders(command: str) -> list[tuple[str, str]]:
    """The (section, name) pairs a command refers to, in order, without repeats."""
    found: list[tuple[str, str]] = []
    for match in _CANDIDATE.finditer(command):
        parsed = _PLACEHOLDER.match(match.group(1))
        if parsed is None:
            raise PlaceholderError(
                f"{match.group(0)!r} is not a placeholder: write ${{{{inputs.<name>}}}} or ${{{{outputs.<name>}}}}."
            )
        pair = (parsed.group(1), parsed.group(2))
        if pair not in found:
            found.append(pair)
    if "${{" in _CANDIDATE.sub("", command):
        raise PlaceholderError("A placeholder opened with ${{ is not closed with }}.")
    return found


def check(command: str, *, inputs: set[str], outputs: set[str]) -> None:
    """Raise PlaceholderError naming every placeholder that refers to no declared input or output."""
    declared = {"inputs": inputs, "outputs": outputs}
    unknown = [f"${{{{{section}.{name}}}}}" for section, name in placeholders(command) if name not in declared[section]]
    if unknown:
        raise PlaceholderError(f"Unknown placeholder(s): {', '.join(unknown)}: declare them as inputs or outputs.")


def resolve(command: str, values: dict[tuple[str, str], str], *, quote: bool = True) -> str:
    """The command with every placeholder replaced by its value, shell-quoted (a command line) or
    as is (an environment variable's value)."""

    def substitute(match: re.Match) -> str:
        parsed = _PLACEHOLDER.match(match.group(1))
        if parsed is None:
            raise PlaceholderError(f"{match.group(0)!r} is not a placeholder.")
        key = (parsed.group(1), parsed.group(2))
        if key not in values:
            raise PlaceholderError(f"No value for ${{{{{key[0]}.{key[1]}}}}}.")
        return shlex.quote(values[key]) if quote else values[key]

    return _CANDIDATE.sub(substitute, command)
