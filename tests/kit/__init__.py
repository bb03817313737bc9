"""The tests' shared kit: local servers, homes and stores, and one way to run kiel.

Test modules import from here and never from one another; conftest.py holds
fixtures only. Modules:

- :mod:`kit.homes`: AMF inputs, a test home, a controllable clock, store paths.
- :mod:`kit.stores`: stores written by hand, file by file, as docs/contract.md
  lays them out.
- :mod:`kit.oai`: OAI-PMH stores, schema validation and a WSGI client.
- :mod:`kit.servers`: local servers on 127.0.0.1 (hostile raw TCP, plain HTTP).
- :mod:`kit.cli`: the ``kiel`` command run as an operator runs it.
"""
