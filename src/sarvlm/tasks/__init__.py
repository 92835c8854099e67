"""Tasks: what an instruction example asks and how its answer is read and scored.

- :mod:`~sarvlm.tasks.registry`: every task as one :class:`~sarvlm.tasks.spec.TaskSpec`
  (``TASKS``, ``task_spec``, ``resolve_tasks``, ``parse_prediction``, ``max_new_tokens``);
- one module per task family (``fusar_gpt``, ``sarlang_vqa``, ``landform``, ``caption``,
  ``dialogue``, ``imported_vqa``): the generator and the family's ``SPECS``;
- :mod:`~sarvlm.tasks.base` (what generators see), :mod:`~sarvlm.tasks.parsing` (answer readers),
  :mod:`~sarvlm.tasks.scoring` (scorers over :mod:`sarvlm.metrics`).

The layer sits above ``core``/``metrics`` and below ``data``: the builder, statistics, evaluation,
inference and the demo all import it, and it imports none of them. See docs/tasks.md.
"""
