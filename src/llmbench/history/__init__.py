"""Change points in the saved history (``llmbench history``): see docs/history.md.

:mod:`~llmbench.history.series` turns saved runs into series (one per machine fingerprint, combination
and metric), :mod:`~llmbench.history.detect` finds their change points with Apache Otava,
:mod:`~llmbench.history.analyse` finds those of a storage folder's runs and
:mod:`~llmbench.history.table` renders them; the command is :mod:`llmbench.commands.history`.
"""
