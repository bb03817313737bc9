"""OAI-PMH 2.0 data provider over the Kiel store (docs/oai.md).

``create_app(home_root)`` is the WSGI application. It answers lists from a
base index and the change log over it: the renewal appends each change
with :class:`ChangeLog` as it makes it and calls :func:`refresh` at its
end; :func:`rebuild` (``kiel oai index --rebuild``) is the repair.
"""

from kiel.oai.app import App, create_app
from kiel.oai.changes import Change, ChangeLog
from kiel.oai.index import IndexStats, build, fold, rebuild, refresh

__all__ = ["App", "Change", "ChangeLog", "IndexStats", "build", "create_app", "fold",
           "rebuild", "refresh"]
