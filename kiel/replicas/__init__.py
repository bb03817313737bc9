"""Replicas: copies of the home on back machines, kept by rsync.

``setting`` parses the ``replicas`` setting; ``rsync`` runs the rsync
binary and reads what it says; ``replicate`` brings each replica up to
date; ``audit`` compares the copies and decides which agree; ``repair``
restores the copies that do not. Nothing here prints or exits.
"""
