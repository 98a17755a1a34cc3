"""``eventstore compare``: choose an event store from measurements on your own machine.

The modules, one job each:

- :mod:`~eventstore_core.compare.workloads`: the seeded, time-boxed workloads and their
  correctness checks, through the public API only;
- :mod:`~eventstore_core.compare.targets`: what runs (``memory://``, SQLite, local servers
  from :mod:`eventstore_core.local`, user URLs);
- :mod:`~eventstore_core.compare.runner`: runs them and builds ``results.json``;
- :mod:`~eventstore_core.compare.environment`: the machine's fingerprint;
- :mod:`~eventstore_core.compare.capacity`: DynamoDB capacity units from the driver;
- :mod:`~eventstore_core.compare.facts`: the shipped data files (backend facts, dated
  prices, rules) and the cost figures;
- :mod:`~eventstore_core.compare.rules`: the recommendation engine;
- :mod:`~eventstore_core.compare.report`, :mod:`~eventstore_core.compare.plots`,
  :mod:`~eventstore_core.compare.outputs`: ``report.md``, ``report.html`` (plots with the
  ``compare`` extra) and the files;
- :mod:`~eventstore_core.compare.diff`, :mod:`~eventstore_core.compare.verify`,
  :mod:`~eventstore_core.compare.cli`: ``compare diff``, ``--verify`` and the command.

See ``docs/compare.md`` for the method and how to read a report.
"""

from eventstore_core.compare.runner import SCHEMA, SCHEMA_VERSION, RunOptions, run_comparison
from eventstore_core.compare.workloads import DEFAULT, QUICK, Sizes

__all__ = ["DEFAULT", "QUICK", "SCHEMA", "SCHEMA_VERSION", "RunOptions", "Sizes", "run_comparison"]
