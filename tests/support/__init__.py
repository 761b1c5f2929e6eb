"""Helpers shared by the harness's tests, one module each: where things are (:mod:`.paths`), matrix files
(:mod:`.matrices`), git repositories (:mod:`.git_repos`). Test modules import these, never each other."""
