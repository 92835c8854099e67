"""The task registry: every task sarvlm can build, parse, score and generate answers for.

One :class:`~sarvlm.tasks.spec.TaskSpec` per task, declared in the family module it belongs to
(``SPECS``) and collected here from :data:`FAMILIES`. The data builder takes generators from it,
inference takes answer budgets and parsers, evaluation takes parsers and scorers, statistics and
quality control take the free-text flag, the demo takes parsers and answer matching. Adding a task
is one family file (or one ``TaskSpec`` in an existing one) plus one line in :data:`FAMILIES`
(see docs/tasks.md).

=================  ==============================================  =========================
task               answer (structured)                             family
=================  ==============================================  =========================
count              int                                             FUSAR-GPT / SARLANG-1M
grid               sorted list[int] of cells 1..9                  FUSAR-GPT
classify_box       str (coarse category or fine type)              FUSAR-GPT
detect             list of [x1, y1, x2, y2] original pixels         FUSAR-GPT
identify           "yes" | "no"                                    SARLANG-1M
classify           str (main) | sorted list[str] (all)              SARLANG-1M
position           left | right | top | bottom | center            SARLANG-1M
refer              str category                                    SARLANG-1M
landform_main      str                                             FUSAR-KLIP
landform_all       sorted list[str]                                FUSAR-KLIP
landform_region    str                                             FUSAR-KLIP
landcover_point    str (land cover around one prior anchor node)   FUSAR-GPT anchors
caption            str                                             SARLANG-1M / FUSAR-KLIP / GEOVL
dialogue           list[str] (assistant turns)                     LunarOS-Mini
vqa                str (imported answer)                           imported QA
retrieval          ranked list[str] of candidate ids               FUSAR-KLIP (foundation)
zeroshot           str class name (or a ranking)                   FUSAR-KLIP (foundation)
=================  ==============================================  =========================

Examples whose task is not registered (rows re-imported from other tools carry ``"imported"``) are
open answers: read as text, scored as open VQA, free text (:func:`task_spec`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sarvlm.core.errors import InputError
from sarvlm.tasks import caption, dialogue, foundation, fusar_gpt, imported_vqa, landcover_point, landform, sarlang_vqa
from sarvlm.tasks.base import Generator
from sarvlm.tasks.spec import AnswerContext, TaskSpec

# One line per task family; a family module declares its tasks in ``SPECS``.
FAMILIES = (fusar_gpt, sarlang_vqa, landform, landcover_point, caption, dialogue, imported_vqa, foundation)


def task_problems(spec: TaskSpec) -> list[str]:
    """What is wrong with a task declaration (empty when nothing): every task needs a name, a paper,
    an answer kind, a parser, a scorer with at least one metric name and a positive answer budget."""
    problems = []
    for attr in ("name", "paper", "answer"):
        if not isinstance(getattr(spec, attr), str) or not getattr(spec, attr).strip():
            problems.append(f"no {attr}")
    for attr in ("parser", "scorer", "matches"):
        if not callable(getattr(spec, attr)):
            problems.append(f"no {attr}")
    if spec.generator is not None and not callable(spec.generator):
        problems.append("generator is not callable")
    if not spec.metrics or not all(isinstance(m, str) and m for m in spec.metrics):
        problems.append("no metric names")
    if not isinstance(spec.max_new_tokens, int) or spec.max_new_tokens < 1:
        problems.append(f"max_new_tokens must be a positive int, got {spec.max_new_tokens!r}")
    return problems


TASKS: dict[str, TaskSpec] = {}
for _family in FAMILIES:
    for _spec in _family.SPECS:
        if _spec.name in TASKS:
            raise RuntimeError(f"task {_spec.name!r} registered twice ({_family.__name__})")
        if _problems := task_problems(_spec):
            raise RuntimeError(f"task {_spec.name!r} ({_family.__name__}): {'; '.join(_problems)}")
        TASKS[_spec.name] = _spec

TASK_NAMES: tuple[str, ...] = tuple(TASKS)
# Tasks a builder can generate (all but import-only ones).
GENERATORS: dict[str, Generator] = {n: s.generator for n, s in TASKS.items() if s.generator is not None}
# Named groups accepted by `--tasks`, in registry order.
TASK_GROUPS: dict[str, tuple[str, ...]] = {}
for _spec in TASKS.values():
    for _group in _spec.groups:
        TASK_GROUPS.setdefault(_group, ())
        TASK_GROUPS[_group] += (_spec.name,)
TASK_GROUPS["all"] = tuple(GENERATORS)

# Answer budget of tasks that are not registered.
DEFAULT_MAX_NEW_TOKENS = 128

_OPEN_ANSWER = dataclasses.replace(
    imported_vqa.SPECS[0],
    name="",
    paper="any task without a registry entry: an open answer",
    generator=None,
    max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
)


def task_spec(name: str) -> TaskSpec:
    """The spec of task ``name``; an unregistered name gets the open-answer spec (text parser,
    open-VQA scorer, free text) under that name."""
    spec = TASKS.get(name)
    return spec if spec is not None else dataclasses.replace(_OPEN_ANSWER, name=name)


def is_free_text(name: str) -> bool:
    """Whether task ``name``'s answers are free text (captions, dialogue, open VQA, unknown tasks)."""
    return task_spec(name).free_text


def max_new_tokens(name: str | None) -> int:
    """Default generation budget of a task (:data:`DEFAULT_MAX_NEW_TOKENS` for unknown or no task)."""
    spec = TASKS.get(name or "")
    return spec.max_new_tokens if spec is not None else DEFAULT_MAX_NEW_TOKENS


def resolve_tasks(spec: str | list[str]) -> list[str]:
    """``"count,grid"`` or group names (``fusar-gpt``, ``sarlang``, ``landform``, ``all``) -> task names."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        for name in TASK_GROUPS.get(item, (item,)):
            if name not in GENERATORS:
                raise InputError(
                    f"--tasks: unknown task {name!r} (known: {', '.join(GENERATORS)}; groups: {', '.join(TASK_GROUPS)})"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise InputError("--tasks: no task given")
    return out


def parse_prediction(
    task: str,
    text: str,
    *,
    params: dict | None = None,
    coords: str | None = None,
    width: int | None = None,
    height: int | None = None,
    categories: Iterable[str] | None = None,
) -> Any | None:
    """Parse one model answer for ``task`` into the structured answer type; ``None`` = no answer.

    Never raises (any internal failure is treated as "no answer"). ``categories`` are the names the
    parser looks for besides the vocabulary's (evaluation passes the test file's answers).
    """
    ctx = AnswerContext(
        params=params or {},
        coords=coords,
        width=width,
        height=height,
        categories=tuple(categories) if categories is not None else None,
    )
    try:
        return task_spec(task).parser(text if isinstance(text, str) else str(text), ctx)
    except Exception:  # noqa: BLE001 - a parser must never take the evaluation down
        return None


def answer_is_correct(task: str, parsed: Any, answer: Any) -> bool:
    """Whether a parsed answer matches the reference the way the task's scorer counts it."""
    return parsed is not None and bool(task_spec(task).matches(parsed, answer))
