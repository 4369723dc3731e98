"""Which template forks a kernel, and in which order: kernels steps wait for before spares.

The ordering lives in the template's serving loop (`runner/forkserver.py`), the routing between the
two lanes of templates in `runner/templates.py`; both are checked here on their own, without
processes. The real templates and kernels are exercised by tests/test_warm_kernels.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runner.forkserver import Template as Serving
from runner.templates import Lane, Template, Templates, startup_env


def serving() -> Serving:
    """The serving loop's queue alone (no socket, no signal handlers)."""
    loop = Serving.__new__(Serving)
    loop.forks = []
    return loop


def fork(number: int, spare: bool) -> dict:
    return {"op": "fork", "id": number, "spare": spare, "modules": []}


def order(loop: Serving) -> list[int]:
    return [request["id"] for request, _ in loop.forks]


def test_a_kernel_a_step_waits_for_goes_ahead_of_spares_in_arrival_order_otherwise():
    loop = serving()
    for number, spare in ((1, True), (2, True), (3, False), (4, True), (5, False)):
        loop.enqueue(fork(number, spare), [])
    assert order(loop) == [3, 5, 1, 2, 4]


def test_a_spare_a_step_takes_is_hurried_ahead_of_the_other_spares_only():
    loop = serving()
    for number, spare in ((1, False), (2, True), (3, True)):
        loop.enqueue(fork(number, spare), [])
    loop.hurry(3)
    assert order(loop) == [1, 3, 2]
    assert [request["spare"] for request, _ in loop.forks] == [False, False, True]
    loop.hurry(99)  # already forked: nothing to move
    assert order(loop) == [1, 3, 2]


class FakeTemplate(SimpleNamespace):
    """A template's state as the routing reads it, judged by the real rule (the standard library counts)."""

    has_imported = Template.has_imported


@pytest.fixture
def templates(tmp_path, monkeypatch):
    """Templates whose `get` records the lane it was asked to start instead of starting a process."""
    found = Templates(tmp_path)
    found.started = []

    def get(prefix, env, preload=(), lane=Lane.NOW):
        found.started.append((lane, tuple(preload)))
        return found.templates.setdefault((prefix, startup_env(env), lane), FakeTemplate(alive=True, imported=set()))

    monkeypatch.setattr(found, "get", get)
    return found


PREFIX, ENV = ("python", "-Xfrozen_modules=off"), {"OMP_NUM_THREADS": "1"}


def place(templates: Templates, lane: Lane, imported: set[str]) -> FakeTemplate:
    template = FakeTemplate(alive=True, imported=imported)
    templates.templates[(PREFIX, startup_env(ENV), lane)] = template
    return template


def test_a_kernel_forks_from_a_template_that_has_its_imports_its_lanes_own_first(templates):
    ahead = place(templates, Lane.AHEAD, {"scrapbook", "sklearn", "torch"})
    assert templates.for_fork(PREFIX, ENV, ["scrapbook", "torch", "os.path"], Lane.NOW) is ahead
    now = place(templates, Lane.NOW, {"scrapbook", "torch"})
    assert templates.for_fork(PREFIX, ENV, ["scrapbook", "torch"], Lane.NOW) is now
    assert templates.for_fork(PREFIX, ENV, ["scrapbook", "torch"], Lane.AHEAD) is ahead
    assert templates.started == []


def test_without_a_ready_template_a_kernel_waits_on_its_lanes_own_and_only_ahead_preloads(templates):
    place(templates, Lane.AHEAD, {"scrapbook"})
    place(templates, Lane.NOW, set()).alive = False  # a template that died is never chosen
    templates.for_fork(PREFIX, ENV, ["scrapbook", "torch"], Lane.NOW, preload=["sklearn"])
    templates.for_fork(PREFIX, ENV, ["scrapbook", "torch"], Lane.AHEAD, preload=["sklearn"])
    assert templates.started == [(Lane.NOW, ()), (Lane.AHEAD, ("sklearn",))]


def test_another_interpreter_or_start_up_environment_never_shares_a_template(templates):
    place(templates, Lane.AHEAD, {"torch"})
    templates.for_fork(("python3.12",), ENV, ["torch"], Lane.NOW)
    templates.for_fork(PREFIX, {"OMP_NUM_THREADS": "2"}, ["torch"], Lane.NOW)
    assert [lane for lane, _ in templates.started] == [Lane.NOW, Lane.NOW]
