"""``llmbench ab``: base and head revisions measured side by side, interleaved, and decided from the pairs.

See docs/ab.md. The modules: sides (worktrees, interpreters), collect (what to measure), interleave
(the measurement), save (both runs, marked as a pair), paired (the statistic), verdict, run (the
defaults, the check for more load pairs). The command is :mod:`llmbench.commands.ab`.
"""
