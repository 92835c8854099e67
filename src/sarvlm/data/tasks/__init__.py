"""Task generators: one module per template family, one registry of stable task names.

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
caption            str                                             SARLANG-1M / FUSAR-KLIP / GEOVL
dialogue           list[str] (assistant turns)                     LunarOS-Mini
vqa                str (imported answer)                           imported QA
=================  ==============================================  =========================
"""

from __future__ import annotations

from sarvlm.core.errors import SarvlmError
from sarvlm.data.tasks import caption, dialogue, fusar_gpt, imported_vqa, landform, sarlang_vqa
from sarvlm.data.tasks.base import Draft, Generator, SampleView, Target, TaskContext

GENERATORS: dict[str, Generator] = {}
for _family in (fusar_gpt, sarlang_vqa, landform, caption, dialogue, imported_vqa):
    for _name in _family.TASKS:
        GENERATORS[_name] = _family.generate

TASK_NAMES: tuple[str, ...] = tuple(GENERATORS)
# Named groups accepted by `--tasks`.
TASK_GROUPS: dict[str, tuple[str, ...]] = {
    "fusar-gpt": fusar_gpt.TASKS,
    "sarlang": ("identify", "classify", "count", "position", "refer"),
    "landform": landform.TASKS,
    "all": TASK_NAMES,
}


# What the samples need for a task to produce examples (reported when a requested task yields none).
TASK_NEEDS: dict[str, str] = {
    **{t: "annotated objects (boxes)" for t in fusar_gpt.TASKS},
    **{t: "annotated objects (boxes)" for t in ("identify", "classify", "position", "refer")},
    **{t: "land-cover masks (record.landcover)" for t in landform.TASKS},
    "caption": "captions or annotated objects",
    "dialogue": "captions (expanded to 3-turn dialogues) or imported dialogues",
    "vqa": "imported question-answer pairs (record.qa)",
}


def resolve_tasks(spec: str | list[str]) -> list[str]:
    """``"count,grid"`` or group names (``fusar-gpt``, ``sarlang``, ``landform``, ``all``) -> task names."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        names = TASK_GROUPS.get(item, (item,))
        for name in names:
            if name not in GENERATORS:
                raise SarvlmError(
                    f"--tasks: unknown task {name!r} (known: {', '.join(TASK_NAMES)}; groups: {', '.join(TASK_GROUPS)})"
                )
            if name not in out:
                out.append(name)
    if not out:
        raise SarvlmError("--tasks: no task given")
    return out


__all__ = [
    "GENERATORS",
    "TASK_NAMES",
    "TASK_GROUPS",
    "TASK_NEEDS",
    "resolve_tasks",
    "Draft",
    "SampleView",
    "TaskContext",
    "Target",
]
