"""The ``kiel`` command run as an operator runs it, in a child process.

One runner for every test that needs a real process (signals, exit status,
stderr, the installed entry point). Tests of click's own layer may call
``CliRunner().invoke(main, ...)`` in process instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kiel.home import Home

#: ``python -m kiel``: this interpreter, whatever is on PATH.
MODULE = [sys.executable, "-m", "kiel"]
#: The console script setup.cfg installs next to this interpreter.
SCRIPT = str(Path(sys.executable).with_name("kiel"))


def argv(*args: str, home: object = None, script: bool = False) -> list[str]:
    """The command line: ``kiel ARGS... [--home HOME]``."""
    cmd = [SCRIPT] if script else list(MODULE)
    cmd += [str(a) for a in args]
    if home is not None:
        cmd += ["--home", home.root if isinstance(home, Home) else str(home)]
    return cmd


def environ(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment with ``env`` laid over it; a value None removes the name."""
    out = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def kiel(*args: str | os.PathLike[str], home: object = None,
         env: Mapping[str, str | None] | None = None, timeout: float = 120,
         prefix: Sequence[str] = (), script: bool = False,
         preexec: Callable[[], object] | None = None,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``kiel ARGS... [--home HOME]`` to its end; stdout, stderr and the exit
    status are in the result (``.stdout``, ``.stderr``, ``.returncode``).

    ``home`` is a path or a :class:`kiel.home.Home`; ``prefix`` goes before the
    interpreter (e.g. ``setpriv ...``); ``script`` runs the installed entry point.
    """
    return subprocess.run([*prefix, *argv(*map(str, args), home=home, script=script)],
                          capture_output=True, text=True, env=environ(env), timeout=timeout,
                          preexec_fn=preexec, input=input)


def renew(home: object, *args: str | os.PathLike[str],
          **kw: object) -> subprocess.CompletedProcess[str]:
    """``kiel renew --no-progress ARGS... --home HOME``."""
    return kiel("renew", "--no-progress", *args, home=home, **kw)  # type: ignore[arg-type]
