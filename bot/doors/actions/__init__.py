"""The GitHub Actions door: a run on an Actions runner (action.yml calls `agentplane actions`).

context.py reads GITHUB_* and the event JSON; files.py writes $GITHUB_STEP_SUMMARY and
$GITHUB_OUTPUT; sandbox.py picks bubblewrap or Docker; replica.py moves the audit branch
to and from origin; proposal.py opens or updates the pull request; door.py runs it all.
"""
