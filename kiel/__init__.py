"""Kiel: a filesystem-only preservation archiver for AMF records.

Implements the Kiel protocol (Krichel and Pottossin, 2008). The on-disk
contract is described in docs/contract.md.
"""

__version__ = "0.1.0"

AMF_NS = "http://amf.openlib.org"
