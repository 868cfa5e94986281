"""The reading half of npucheck: everything that turns stored result profiles into verdicts, tables, plots and
reports. Nothing here imports torch or :mod:`npucheck.measure` (a test checks the imports), so ``check``,
``show``, ``results``, ``compare``, ``plot`` and ``report`` start fast and run on a machine without torch's
accelerator stack.

* ``judge``: a result profile and a target profile give a verdict per criterion;
* ``compare``: several profiles side by side (pandas frames); ``plot``: efficiency and throughput curves
  (matplotlib); ``report``: one HTML or Markdown file with the verdict, tables and plots;
* ``text``: the words and tables every command prints (terminal, Markdown), written once.
"""
