"""cadesk's benchmarks (issue 7): each figure next to a baseline measured in the same run.

Run with ``.venv/bin/python -m bench`` (``--quick`` for a one-minute check of the harness).
Not part of the test suite.
"""
