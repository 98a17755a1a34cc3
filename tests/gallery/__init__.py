"""A gallery of broken adapters: each a small, realistic bug the conformance suite must catch.

``variants.py`` holds the broken variants (of the memory, SQLite and PostgreSQL adapters and
of the core), each registered under its own URL scheme by ``plugin.py`` (a pytest plugin
loaded with ``-p gallery.plugin`` in a subprocess); ``tests/test_gallery.py`` runs the suite
against each and checks that it fails, and which test catches it.
"""
