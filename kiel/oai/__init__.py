"""OAI-PMH 2.0 data provider over the Kiel store (docs/oai.md).

``create_app(home_root)`` is the WSGI application; ``build(home_root)``
rebuilds the index it answers lists from (``kiel oai index``, and the
renewal at the end of each run).
"""

from kiel.oai.app import App, create_app
from kiel.oai.index import IndexStats, build

__all__ = ["App", "IndexStats", "build", "create_app"]
