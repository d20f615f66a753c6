"""Governance evals: scenarios (data files) run through the one run path, measured from
what the runs left: records, repositories, the world the tools touched."""
