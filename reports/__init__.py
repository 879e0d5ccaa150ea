"""The reports of a run folder: ``report.html``, ``summary.md`` and ``junit.xml``.

They read only the run folder (``docs/run-folder.md``), so a report can be made
again, or compared with other runs, long after the run: :mod:`.render` writes
them (``render_all``, ``render_comparison``); :mod:`.run_folder` loads what a
run left; :mod:`.html`, :mod:`.markdown` and :mod:`.junit` lay it out;
:mod:`.charts` decides what each chart shows; :mod:`.verdict_line` says what
happened to each variant in one line. This ``__init__`` imports nothing, so no
module here reads the package in a circle.
"""
