"""One renewal run (``kiel renew``): the heart of the Kiel protocol.

The package has one concept per module (docs/architecture.md):
:mod:`~kiel.renewal.scan` (inputs to a spool), :mod:`~kiel.renewal.plan`
(records oldest first), :mod:`~kiel.renewal.record` (a record's version
and countdown), :mod:`~kiel.renewal.worker` (one object at a time),
:mod:`~kiel.renewal.policy` (retry and give-up decisions, pure),
:mod:`~kiel.renewal.shared` (one future per shared URL),
:mod:`~kiel.renewal.scheduler` (politeness and retries on one heap),
:mod:`~kiel.renewal.gone`, :mod:`~kiel.renewal.journal` (repair after a
crash), :mod:`~kiel.renewal.stats`, and :mod:`~kiel.renewal.run`, the
orchestrator.
"""

from kiel.renewal.options import Options, Progress, Stop
from kiel.renewal.run import renew
from kiel.renewal.scan import matches_only, shard_of
from kiel.renewal.stats import Summary

__all__ = ["Options", "Progress", "Stop", "Summary", "matches_only", "renew", "shard_of"]
