"""What refers to a row, asked of the apps above its own: the lower app keeps a `References` for its
rows and each app that refers to them adds a check when Django starts (its `AppConfig.ready`), so
the lower app never imports the ones above it."""

from collections.abc import Callable, Iterable


class References:
    def __init__(self) -> None:
        self._checks: list[Callable[[list], Iterable[str]]] = []

    def register(self, check: Callable[[list], Iterable[str]]) -> None:
        """`check(objects)` says, in words, what refers to any of the objects (empty: nothing)."""
        if check not in self._checks:
            self._checks.append(check)

    def of(self, objects) -> list[str]:
        objects = list(objects)
        return [text for check in self._checks for text in check(objects)]
