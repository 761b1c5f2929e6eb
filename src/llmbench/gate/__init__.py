"""The regression gate: rules, statistics, the decision per metric, baselines and the verdict."""
